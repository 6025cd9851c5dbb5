import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AccountId } from '@zxbackup/item-store';
import { retrieveMetadataFromArchive } from './disaster-recovery';
import { uploadMetadataArchives } from './metadata-archives';
import { makeS3RemoteStore } from './remote-store';
import { withWriter } from './session';
import {
  ALICE,
  BOB,
  drain,
  mutate,
  populate,
  referencedDigests,
  restore,
  run,
  runLeft,
  scan,
  snapshotAccount,
  volumeDigests, testBucketOptions } from './third-party-store.test-util';
import { bucketsFilePath, readBuckets, readVolumeSettings, storeConfigOf, type BucketOptions } from './volume-config';
import { executeVolumeMigrationPlan, planVolumeMigration } from './volume-migration';
import { setBackupVolume, type VolumeTargetSpec } from './volume-setup';

/*
 * Against the S3 server of tools/services/s3-server.sh:
 *   eval "$(tools/services/s3-server.sh start)" && npx jest -c packages/runtime/jest.int.config.cjs
 * The disaster recovery end to end, two servers sharing one bucket, and a migration to S3.
 */

const BUCKET_OPTIONS = testBucketOptions;

const T1 = Date.UTC(2026, 1, 10, 12, 0, 0);
const T2 = Date.UTC(2026, 1, 11, 12, 0, 0);
const T3 = Date.UTC(2026, 1, 12, 12, 0, 0);

const savedEnv = { ...process.env };
let base: string;
let bucket: string;
let n = 0;

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-third-party-s3-'));
  bucket = `zxb-rt-${Date.now().toString(36)}-${n++}`;
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'machine-1', 'buckets.json');
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
});
afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(base, { recursive: true, force: true });
});

const s3 = (prefix: string, options: BucketOptions = BUCKET_OPTIONS(bucket)): VolumeTargetSpec => ({ type: 's3', bucket: options, prefix });

const archivesUnder = async (prefix: string): Promise<string[]> => {
  const b = (await run(readBuckets(bucketsFilePath()))).find((x) => x.bucket === bucket);
  if (b === undefined) throw new Error('no bucket configuration');
  const config = storeConfigOf(b, prefix);
  if (config._tag === 'Left') throw new Error(config.left.message);
  return (await run(makeS3RemoteStore(config.right).list('accounts/'))).map((o) => o.key);
};

it('disaster recovery: back up onto S3, lose the backup path, retrieve on a new server, restore the past exactly', async () => {
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'machine-1', 'backup');
  const set = await run(setBackupVolume(root, s3('server1'), { now: T1 }));
  expect(set).toMatchObject({ initialized: true, changed: true, bucketCreated: true });

  const inbox = await populate(tree);
  await scan(root, tree, T1);
  const alicePast = await snapshotAccount(tree, ALICE);
  const bobPast = await snapshotAccount(tree, BOB);
  await mutate(tree, inbox);
  await scan(root, tree, T2);
  const aliceNow = await snapshotAccount(tree, ALICE);
  expect(aliceNow).not.toEqual(alicePast);

  const up = await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T2 })));
  expect(up).toMatchObject({ store: `s3:${bucket}/server1/`, failures: [] });
  expect(up.uploaded).toBeGreaterThanOrEqual(2);
  await drain(root);
  expect(await volumeDigests(root)).toEqual(await referencedDigests(root));

  // The disaster: nothing left of the backup path nor of the machine's bucket configurations.
  await fs.rm(path.join(base, 'machine-1'), { recursive: true, force: true });
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-new';
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'machine-2', 'buckets.json');
  const fresh = path.join(base, 'machine-2', 'backup');
  const got = await run(retrieveMetadataFromArchive(fresh, s3('server1'), { now: T3 }));
  expect(got).toMatchObject({ initialized: true, previousServer: { serverId: 'srv-old' }, accounts: up.uploaded, missing: [] });
  expect(existsSync(path.join(fresh, 'map_srv-old'))).toBe(true);
  expect((await fs.stat(process.env['ZXBACKUP_BUCKETS_FILE'] as string)).mode & 0o777).toBe(0o600);
  const settings = await run(readVolumeSettings(fresh));
  expect(settings).toMatchObject({ type: 's3', prefix: 'server1/' });

  // Restores read the blobs from the bucket: the local cache stays empty.
  const restored = path.join(base, 'restored');
  await restore(fresh, ALICE, 'alice.past@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.past@example.test' as AccountId)).toEqual(alicePast);
  await restore(fresh, ALICE, 'alice.now@example.test' as AccountId, T2 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.now@example.test' as AccountId)).toEqual(aliceNow);
  await restore(fresh, BOB, 'bob.past@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'bob.past@example.test' as AccountId)).toEqual(bobPast);
  const cached = path.join(fresh, 'cache', 's3', 'items');
  expect(await fs.stat(path.join(fresh, 'cache', 's3')).then((st) => st.isDirectory())).toBe(true);
  const shards = await fs.readdir(cached).catch(() => [] as string[]);
  for (const shard of shards) expect(await fs.readdir(path.join(cached, shard))).toEqual([]);

  // The old server's prefix now belongs to the new one; the old id may not write it again.
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
  const e = await runLeft(setBackupVolume(path.join(base, 'machine-3', 'backup'), s3('server1'), { now: T3 }));
  expect(e.message).toContain('srv-new');
  expect(e.message).not.toContain(BUCKET_OPTIONS(bucket).secret as string);
});

it('two servers share one bucket with their own prefixes and never see each other’s blobs or archives', async () => {
  const treeA = path.join(base, 'vmail-a');
  const treeB = path.join(base, 'vmail-b');
  const rootA = path.join(base, 'backup-a');
  const rootB = path.join(base, 'backup-b');
  const setA = await run(setBackupVolume(rootA, s3('server1'), { now: T1 }));
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-b';
  const setB = await run(setBackupVolume(rootB, s3('server2', { bucketConfigurationId: setA.bucketConfigurationId as string }), { now: T1 }));
  expect(setB.bucketConfigurationId).toBe(setA.bucketConfigurationId);
  expect(setB.bucketCreated).toBe(false);
  // server2 may not take server1's prefix
  expect((await runLeft(setBackupVolume(path.join(base, 'backup-c'), s3('server1', { bucketConfigurationId: setA.bucketConfigurationId as string }), { now: T1 })))._tag).toBe('Failed');

  await populate(treeA, 0);
  await populate(treeB, 100); // other contents: no blob in common
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
  await scan(rootA, treeA, T1);
  await run(withWriter(rootA, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T1 })));
  await drain(rootA);
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-b';
  await scan(rootB, treeB, T1);
  await run(withWriter(rootB, { initialize: false }, (s) => uploadMetadataArchives(s, { accounts: [BOB], clock: () => T1 })));
  await drain(rootB);

  const refB = await referencedDigests(rootB);
  const blobsB = await volumeDigests(rootB);
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
  const refA = await referencedDigests(rootA);
  const blobsA = await volumeDigests(rootA);
  expect(blobsA).toEqual(refA);
  expect(blobsB).toEqual(refB);
  expect(blobsA.filter((d) => blobsB.includes(d))).toEqual([]);

  const archivesA = await archivesUnder('server1/');
  const archivesB = await archivesUnder('server2/');
  expect(archivesA.some((k) => k.startsWith(`accounts/${ALICE}/`))).toBe(true);
  expect(archivesB.map((k) => k.split('/')[1])).toEqual([BOB]);

  const buckets = await run(readBuckets(bucketsFilePath()));
  expect(buckets).toHaveLength(1);
  expect(buckets[0]?.uses.map((u) => [u.prefix, u.serverId]).sort()).toEqual([
    ['server1/', 'srv-old'],
    ['server2/', 'srv-b'],
  ]);
});

it('migrateBackupVolume to S3: stopped, resumed, switched; restores then read from the bucket', async () => {
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'backup');
  await populate(tree);
  await scan(root, tree, T1);
  const before = await volumeDigests(root);

  let seen = 0;
  const stopped = await run(
    withWriter(root, { initialize: false }, (s) => async () => {
      const planned = await planVolumeMigration(s, s3('migrated'), { now: T2 })();
      if (planned._tag === 'Left') return planned;
      return executeVolumeMigrationPlan(s, planned.right, { progress: (p) => void (p.phase === 'blobs' && (seen = p.done)), shouldStop: () => seen >= 2 }, { now: () => T2 })();
    }),
  );
  expect(stopped).toMatchObject({ stopped: true, switched: false });
  expect(await run(readVolumeSettings(root))).toEqual({ type: 'local' });

  const done = await run(
    withWriter(root, { initialize: false }, (s) => async () => {
      const planned = await planVolumeMigration(s, s3('migrated'), { now: T2 })();
      if (planned._tag === 'Left') return planned;
      return executeVolumeMigrationPlan(s, planned.right, { progress: () => undefined, shouldStop: () => false }, { now: () => T2 })();
    }),
  );
  expect(done).toMatchObject({ switched: true, removedLocal: before.length });
  expect(done.copied + done.alreadyOnTarget).toBe(before.length);
  expect(await run(readVolumeSettings(root))).toMatchObject({ type: 's3', prefix: 'migrated/' });
  expect(await volumeDigests(root)).toEqual(before);
  expect((await archivesUnder('migrated/')).filter((k) => k.startsWith(`accounts/${ALICE}/`))).toHaveLength(1);

  const restored = path.join(base, 'restored');
  await restore(root, ALICE, 'alice.r@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.r@example.test' as AccountId)).toEqual(await snapshotAccount(tree, ALICE));
});
