// The writer process of local-volume-crash.spec.ts, which SIGKILLs it once it reports:
//   1. in <flushedRoot>: puts three blobs and flushes;
//   2. in <pendingRoot>: puts three blobs and three files (putFile: written by an I/O worker), no
//      flush;
//   prints {"flushed": [digests], "pending": [digests]} on one line, then
//   3. in <endlessRoot>: puts an endless stream, printing "streaming" once 16 MB went in.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import { makeLocalVolume, type LocalVolume } from '../index';

export const blobContent = (i: number): Buffer => Buffer.from(`blob ${i} `.repeat(1000 * (i + 1)));

const fail = (why: unknown): never => {
  process.stderr.write(`kill-writer: ${String(why)}\n`);
  process.exit(2);
};

const open = async (root: string): Promise<LocalVolume> => {
  const opened = await makeLocalVolume({ root })();
  return E.isLeft(opened) ? fail(opened.left._tag) : opened.right;
};

const putThree = async (volume: LocalVolume): Promise<string[]> => {
  const digests: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const put = await volume.put(Readable.from([blobContent(i)]))();
    if (E.isLeft(put)) return fail(put.left._tag);
    digests.push(put.right.digest);
  }
  return digests;
};

/** Puts blobs 3..5 as files (written beside the volume's root). */
const putThreeFiles = async (volume: LocalVolume, root: string): Promise<string[]> => {
  const digests: string[] = [];
  for (let i = 3; i < 6; i += 1) {
    const file = path.join(path.dirname(root), `source-${i}.eml`);
    writeFileSync(file, blobContent(i));
    const put = await volume.putFile(file)();
    if (E.isLeft(put)) return fail(put.left._tag);
    digests.push(put.right.digest);
  }
  return digests;
};

const endlessStream = (): Readable => {
  let sent = 0;
  return new Readable({
    read() {
      const chunk = randomBytes(256 * 1024);
      sent += chunk.length;
      this.push(chunk);
      if (sent === 16 * 1024 * 1024) process.stdout.write('streaming\n');
    },
  });
};

const main = async (): Promise<void> => {
  const [flushedRoot, pendingRoot, endlessRoot] = process.argv.slice(2);
  if (flushedRoot === undefined || pendingRoot === undefined || endlessRoot === undefined) {
    return fail('usage: kill-writer.fixture <flushedRoot> <pendingRoot> <endlessRoot>');
  }
  const flushedVolume = await open(flushedRoot);
  const flushed = await putThree(flushedVolume);
  if (E.isLeft(await flushedVolume.flush()())) return fail('flush');
  const pendingVolume = await open(pendingRoot);
  const pending = [...(await putThree(pendingVolume)), ...(await putThreeFiles(pendingVolume, pendingRoot))];
  process.stdout.write(`${JSON.stringify({ flushed, pending })}\n`);
  await (await open(endlessRoot)).put(endlessStream())();
  return fail('the endless put ended');
};

if (require.main === module) main().catch(fail);
