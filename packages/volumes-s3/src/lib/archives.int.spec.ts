// Bucket and metadata-archive helpers against the S3 server of tools/services/s3-server.sh.
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { pseudoRandomBytes, readAll, streamOf } from '@zxbackup/volume-contract/testing';
import { accountArchiveKey, downloadArchive, ensureBucket, listArchives, listBuckets, removeArchive, uploadArchive } from './archives';
import type { S3StoreConfig } from './config';
import type { S3Error } from './errors';
import { makeMinioClient } from './minio-store';
import { testServer } from './test-server.spec-helper';

const bucket = `zxb-archives-int-${Date.now()}-${randomBytes(2).toString('hex')}`;
const config: S3StoreConfig = { ...testServer(bucket, 'server1'), partSize: 5 * 1024 * 1024 };
const right = async <A>(te: TE.TaskEither<S3Error, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${r.left._tag} during ${r.left.op}: ${String(r.left.cause)}`);
  return r.right;
};

beforeAll(async () => {
  const r = await listBuckets(config)();
  if (E.isLeft(r))
    throw new Error(`the S3 server at ${config.endPoint}:${config.port} is not usable (${r.left._tag}). Start it first: eval "$(tools/services/s3-server.sh start)"`);
});

afterAll(async () => {
  const client = makeMinioClient(config);
  const keys: string[] = [];
  for await (const o of client.listObjectsV2(bucket, '', true)) if (o.name) keys.push(o.name);
  if (keys.length > 0) await client.removeObjects(bucket, keys);
  await client.removeBucket(bucket);
});

it('ensureBucket creates the bucket once, listBuckets shows it', async () => {
  expect(await right(ensureBucket(config))).toBe(true);
  expect(await right(ensureBucket(config))).toBe(false);
  expect((await right(listBuckets(config))).map((b) => b.name)).toContain(bucket);
});

it('uploads, lists and downloads per-account metadata archives under the volume prefix', async () => {
  const account = 'alice@example.com';
  const older = accountArchiveKey(account, new Date('2026-01-25T03:00:00Z'));
  const newer = accountArchiveKey(account, new Date('2026-01-26T03:00:00.123Z'));
  expect(newer).toBe('accounts/alice@example.com/20260126T030000123Z.tar.gz');
  const big = pseudoRandomBytes(7 * 1024 * 1024 + 5, 1); // two parts of 5 MiB at most
  const small = Buffer.from('not really a tar.gz');
  await right(uploadArchive(config, newer, streamOf(big), big.length));
  await right(uploadArchive(config, older, streamOf(small), small.length));
  await right(uploadArchive({ ...config, prefix: 'server2/' }, older, streamOf(small), small.length));

  const listed = await right(listArchives(config, `accounts/${account}/`));
  expect(listed.map((a) => [a.key, a.size])).toEqual([
    [older, small.length],
    [newer, big.length],
  ]);
  expect((await readAll(await right(downloadArchive(config, newer)))).equals(big)).toBe(true);
  const client = makeMinioClient(config);
  expect((await client.statObject(bucket, `server1/${newer}`)).etag).toMatch(/-2$/);

  const missing = await downloadArchive(config, 'accounts/nobody/1.tar.gz')();
  expect(E.isLeft(missing) && missing.left._tag).toBe('ObjectNotFound');

  // Pruning an older archive touches neither the newer one nor another server's prefix.
  await right(removeArchive(config, older));
  await right(removeArchive(config, older)); // a missing key is fine
  expect((await right(listArchives(config, `accounts/${account}/`))).map((a) => a.key)).toEqual([newer]);
  expect((await right(listArchives({ ...config, prefix: 'server2/' }, `accounts/${account}/`))).map((a) => a.key)).toEqual([older]);
});
