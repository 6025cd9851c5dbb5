// Stops and restarts the S3 server of tools/services/s3-server.sh (run as root, one jest worker).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import { Client } from 'minio';
import { expectRight, mailLikeText, pseudoRandomBytes, readAll, sha256Hex, streamOf } from '@zxbackup/volume-contract/testing';
import { ensureBucket, listBuckets } from './archives';
import type { S3StoreConfig } from './config';
import { makeS3Volume, type S3VolumeStatus } from './s3-volume';
import { storedBlob, testServer } from './test-server.spec-helper';

const script = path.resolve(__dirname, '../../../../tools/services/s3-server.sh');
const server = (cmd: 'start' | 'stop'): void => {
  execFileSync(script, [cmd], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 });
};
const store: S3StoreConfig = testServer('zxb-volumes-s3-int', '');
const prefix = `outage-${Date.now()}-${randomBytes(3).toString('hex')}/`;
const client = new Client({ ...store, pathStyle: true });
const cacheDir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-outage-'));

beforeAll(async () => {
  const reachable = await listBuckets(store)();
  if (E.isLeft(reachable))
    throw new Error(
      `the S3 server at ${store.endPoint}:${store.port} is not usable (${reachable.left._tag}). ` +
        'Start it first: eval "$(tools/services/s3-server.sh start)"',
    );
  if (E.isLeft(await ensureBucket(store)())) throw new Error(`cannot create bucket ${store.bucket}`);
});

afterAll(async () => {
  server('start'); // leave it running whatever happened
  const keys: string[] = [];
  for await (const o of client.listObjectsV2(store.bucket, prefix, true)) if (o.name) keys.push(o.name);
  if (keys.length > 0) await client.removeObjects(store.bucket, keys);
  rmSync(cacheDir, { recursive: true, force: true });
});

it('the S3 server goes down during a series of puts: puts go on, the status says so, and all is uploaded once it is back', async () => {
  const volume = await expectRight(
    makeS3Volume({ ...store, prefix, cacheDir, retry: { initialDelayMs: 200, maxDelayMs: 2000 } }),
  );
  const statuses: S3VolumeStatus[] = [];
  volume.onStatus((s) => statuses.push(s));
  const contents = Array.from({ length: 30 }, (_, i) => (i % 2 ? mailLikeText(2000 + i * 9000, i) : pseudoRandomBytes(1000 + i * 7000, i)));

  for (const bytes of contents.slice(0, 10)) await expectRight(volume.put(streamOf(bytes)));
  server('stop');
  for (const bytes of contents.slice(10, 25)) expect((await expectRight(volume.put(streamOf(bytes)))).size).toBe(bytes.length);
  await expectRight(volume.flush());
  // The next pack goes up once no put came for a moment: that attempt finds the store gone.
  for (let i = 0; i < 100 && volume.status().state !== 'unreachable'; i++) await new Promise((r) => setTimeout(r, 50));
  expect(volume.status().state).toBe('unreachable');
  expect(volume.status().lastError?._tag).toBe('VolumeUnavailable');
  expect(volume.pending().blobs).toBeGreaterThanOrEqual(15);
  // Reads of not yet uploaded blobs come from the cache.
  const late = contents[20] ?? Buffer.alloc(0);
  expect((await readAll(await expectRight(volume.get(sha256Hex(late))))).equals(late)).toBe(true);

  server('start');
  for (const bytes of contents.slice(25)) await expectRight(volume.put(streamOf(bytes)));
  await expectRight(volume.drain({ timeoutMs: 90_000 }));
  expect(volume.pending()).toEqual({ blobs: 0, bytes: 0 });
  expect(volume.status().state).toBe('ok');
  expect(statuses.some((s) => s.state === 'unreachable')).toBe(true);

  for (const bytes of contents) {
    const d = sha256Hex(bytes);
    expect(sha256Hex((await storedBlob(client, store.bucket, volume, d)).bytes)).toBe(d);
  }
  await expectRight(volume.close());
});
