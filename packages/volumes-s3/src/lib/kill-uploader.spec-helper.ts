// The process of s3-volume-crash.int.spec.ts, which SIGKILLs it while packs are uploading:
//   args: <bucket> <prefix> <cacheDir>
//   puts 300 blobs into an S3 volume with small packs, flushes, prints {"flushed": [digests]},
//   then goes on putting (and flushing now and then) until it is killed.
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import { makeS3Volume } from './s3-volume';
import { testServer } from './test-server.spec-helper';

export const blobContent = (i: number): Buffer => Buffer.from(`crash blob ${i} `.repeat(300 + (i % 50) * 20));

const fail = (why: unknown): never => {
  process.stderr.write(`kill-uploader: ${String(why)}\n`);
  process.exit(2);
};

const main = async (): Promise<void> => {
  const [bucket = '', prefix = '', cacheDir = ''] = process.argv.slice(2);
  const opened = await makeS3Volume({
    ...testServer(bucket, prefix),
    cacheDir,
    packSize: 64 * 1024,
    retry: { initialDelayMs: 50, maxDelayMs: 200 },
  })();
  if (E.isLeft(opened)) return fail(opened.left._tag);
  const volume = opened.right;
  const put = async (i: number): Promise<string> => {
    const r = await volume.put(Readable.from([blobContent(i)]))();
    return E.isLeft(r) ? fail(r.left._tag) : r.right.digest;
  };
  const flushed: string[] = [];
  for (let i = 0; i < 300; i++) flushed.push(await put(i));
  if (E.isLeft(await volume.flush()())) fail('flush');
  process.stdout.write(`${JSON.stringify({ flushed })}\n`);
  for (let i = 300; ; i++) {
    await put(i);
    if (i % 20 === 0 && E.isLeft(await volume.flush()())) fail('flush');
  }
};

if (require.main === module) void main();
