// A SIGKILL while packs upload, against the S3 server: eval "$(tools/services/s3-server.sh start)" first.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import { Client } from 'minio';
import type { Digest } from '@zxbackup/volume-contract';
import { expectRight, readAll } from '@zxbackup/volume-contract/testing';
import { ensureBucket } from './archives';
import { blobContent } from './kill-uploader.spec-helper';
import { makeS3Volume } from './s3-volume';
import { testServer } from './test-server.spec-helper';

const bucket = 'zxb-volumes-s3-int';
const prefix = `crash-${Date.now()}-${randomBytes(3).toString('hex')}/`;
const store = testServer(bucket, prefix);
const client = new Client({ ...store, pathStyle: true });
const cacheDir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-crash-'));

const keysUnder = async (p: string): Promise<string[]> => {
  const keys: string[] = [];
  for await (const o of client.listObjectsV2(bucket, p, true)) if (o.name) keys.push(o.name);
  return keys;
};

beforeAll(async () => {
  if (E.isLeft(await ensureBucket(store)())) throw new Error('the S3 server is not usable: eval "$(tools/services/s3-server.sh start)" first');
});
afterAll(async () => {
  const keys = await keysUnder(prefix);
  if (keys.length > 0) await client.removeObjects(bucket, keys);
  rmSync(cacheDir, { recursive: true, force: true });
});

// The uploader is a real process (ts-node on our sources), so SIGKILL stops it wherever it is.
const runAndKill = async (): Promise<Digest[]> => {
  const packageDir = path.join(__dirname, '../..');
  const child = spawn(
    process.execPath,
    ['--conditions=@zxbackup/source', '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'kill-uploader.spec-helper.ts'), bucket, prefix, cacheDir],
    {
      env: {
        ...process.env,
        TS_NODE_PROJECT: path.join(packageDir, 'tsconfig.spec.json'),
        TS_NODE_COMPILER_OPTIONS: JSON.stringify({ rootDir: path.join(packageDir, '../..') }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const end = out.indexOf('\n');
      if (end >= 0) resolve(out.slice(0, end));
    });
    child.once('exit', (code, signal) => reject(new Error(`the uploader exited early (${code ?? signal}): ${stderr}`)));
  });
  // Packs are uploading now (64 KiB packs, four at a time, while puts go on).
  await new Promise((r) => setTimeout(r, 700));
  child.kill('SIGKILL');
  await exited;
  return (JSON.parse(line) as { flushed: Digest[] }).flushed;
};

it('a process killed while packs upload loses nothing it flushed; the next run finishes and leaves no half-made pack', async () => {
  const flushed = await runAndKill();
  expect(flushed).toHaveLength(300);
  const volume = await expectRight(makeS3Volume({ ...store, cacheDir, packSize: 64 * 1024 }));
  await expectRight(volume.drain({ timeoutMs: 60_000 }));
  for (const [i, d] of flushed.entries()) expect((await readAll(await expectRight(volume.get(d)))).equals(blobContent(i))).toBe(true);
  // Every pack has its index object and the other way round; every blob is in one pack only.
  const packs = (await keysUnder(`${prefix}packs/`)).map((k) => k.slice(k.lastIndexOf('/') + 1)).sort();
  const indexes = (await keysUnder(`${prefix}index/`)).map((k) => k.slice(k.lastIndexOf('/') + 1)).sort();
  expect(packs.length).toBeGreaterThan(3);
  expect(indexes).toEqual(packs);
  const owners = new Map<string, number>();
  for (const id of indexes) {
    const described = JSON.parse((await readAll(await client.getObject(bucket, `${prefix}index/${id}`))).toString()) as { entries: string[][] };
    for (const [d] of described.entries) owners.set(d ?? '', (owners.get(d ?? '') ?? 0) + 1);
  }
  for (const d of flushed) expect([d, owners.get(d)]).toEqual([d, 1]);
  expect([...owners.values()].every((n) => n === 1)).toBe(true);
  expect(volume.pending().blobs).toBe(0);
  await expectRight(volume.close());
});
