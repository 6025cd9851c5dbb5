import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import type { AccountId } from '@zxbackup/item-store';
import { decryptStream, parseKeyFile } from '@zxbackup/volumes-s3';
import { retrieveMetadataFromArchive } from './disaster-recovery';
import { createEncryptionKeyFile } from './encryption-keys';
import { runCoherencyCheck } from './maintenance';
import { uploadMetadataArchives } from './metadata-archives';
import { makeS3RemoteStore, type RemoteStore } from './remote-store';
import { withWriter } from './session';
import { ALICE, BOB, drain, mutate, populate, referencedDigests, restore, run, runLeft, scan, snapshotAccount, volumeDigests, testBucketOptions } from './third-party-store.test-util';
import { bucketsFilePath, readBuckets, readVolumeSettings, storeConfigOf } from './volume-config';
import { executeVolumeMigrationPlan, planVolumeMigration } from './volume-migration';
import { setBackupVolume, type VolumeTargetSpec } from './volume-setup';

/*
 * Client-side encryption end to end, against the S3 server of tools/services/s3-server.sh:
 *   eval "$(tools/services/s3-server.sh start)" && npx jest -c packages/runtime/jest.int.config.cjs
 * Back up onto an encrypted S3 volume, look at the raw bucket (nothing readable), run the
 * Coherency Check through the encryption, lose the backup path, retrieve with the key file
 * (a wrong key or none is refused before anything is written), restore the past exactly.
 */

const BUCKET_OPTIONS = testBucketOptions;

const T1 = Date.UTC(2026, 1, 10, 12, 0, 0);
const T2 = Date.UTC(2026, 1, 11, 12, 0, 0);
const T3 = Date.UTC(2026, 1, 12, 12, 0, 0);

// Strings of the mails and of the metadata (subjects, senders, account names inside archives).
const MARKERS = ['lorem ipsum lorem ipsum', 'Subject: message', 'sender1@example.test', 'Message-ID: <m2@example.test>', '"subject"'];

const savedEnv = { ...process.env };
let base: string;
let bucket: string;

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-encrypted-s3-'));
  bucket = `zxb-enc-${Date.now().toString(36)}`;
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'machine-1', 'buckets.json');
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
});
afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(base, { recursive: true, force: true });
});

const s3 = (prefix: string, encryptionKeyFile?: string): VolumeTargetSpec => ({
  type: 's3',
  bucket: BUCKET_OPTIONS(bucket),
  prefix,
  ...(encryptionKeyFile === undefined ? {} : { encryptionKeyFile }),
});

/** The prefix as it is in the bucket: the same client, without the key. */
const rawStore = async (prefix: string): Promise<RemoteStore> => {
  const b = (await run(readBuckets(bucketsFilePath()))).find((x) => x.bucket === bucket);
  if (b === undefined) throw new Error('no bucket configuration');
  const config = storeConfigOf(b, prefix);
  if (config._tag === 'Left') throw new Error(config.left.message);
  return makeS3RemoteStore(config.right);
};

/** The prefix read through the key. */
const sealedStore = async (prefix: string, keyFile: string, keyId: string): Promise<RemoteStore> => {
  const b = (await run(readBuckets(bucketsFilePath()))).find((x) => x.bucket === bucket);
  if (b === undefined) throw new Error('no bucket configuration');
  const config = storeConfigOf(b, prefix, { keyFile, keyId });
  if (config._tag === 'Left') throw new Error(config.left.message);
  return makeS3RemoteStore(config.right);
};

const readRaw = async (store: RemoteStore, key: string): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of await run(store.get(key))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

/** The plaintext of a sealed blob (one entry of a pack). */
const unseal = async (keyFile: string, bytes: Buffer): Promise<Buffer> => {
  const key = parseKeyFile(await fs.readFile(keyFile, 'utf8'), keyFile);
  if (key._tag === 'Left') throw new Error('bad key file');
  const d = decryptStream(key.right);
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of d as unknown as Readable) chunks.push(c as Buffer);
  })();
  d.end(bytes);
  await done;
  return Buffer.concat(chunks);
};

interface PackDescription {
  readonly pack: string;
  readonly entries: ReadonlyArray<readonly [string, number, number, number]>;
}
/** The index objects under a prefix, read through the key. */
const packIndex = async (opened: RemoteStore, keys: readonly string[]): Promise<PackDescription[]> =>
  Promise.all(keys.filter((k) => k.startsWith('index/')).map(async (k) => JSON.parse(String(await readRaw(opened, k))) as PackDescription));

it('an encrypted S3 backup: nothing readable in the bucket, coherency check, disaster recovery with the key only', async () => {
  const keyFile = path.join(base, 'keys', 'zxbackup.key'); // kept off the machine
  await fs.mkdir(path.dirname(keyFile));
  const key = await run(createEncryptionKeyFile(keyFile));

  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'machine-1', 'backup');
  const set = await run(setBackupVolume(root, s3('server1', keyFile), { now: T1 }));
  expect(set.volume).toEqual({ type: 's3', bucketConfigurationId: set.bucketConfigurationId, prefix: 'server1/', encryption: { keyFile, keyId: key.keyId } });
  expect(await fs.readFile(path.join(root, 'volume.json'), 'utf8')).not.toContain(await fs.readFile(keyFile, 'utf8').then((t) => t.trim()));

  const inbox = await populate(tree);
  await scan(root, tree, T1);
  const alicePast = await snapshotAccount(tree, ALICE);
  const bobPast = await snapshotAccount(tree, BOB);
  await mutate(tree, inbox);
  await scan(root, tree, T2);
  const aliceNow = await snapshotAccount(tree, ALICE);
  const up = await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T2 })));
  expect(up).toMatchObject({ store: `s3:${bucket}/server1/`, failures: [] });
  expect(up.uploaded).toBe(2);
  await drain(root);
  expect(await volumeDigests(root)).toEqual(await referencedDigests(root));

  // The bucket as the provider sees it.
  const raw = await rawStore('server1/');
  const objects = await run(raw.list(''));
  const packs = objects.filter((o) => o.key.startsWith('packs/'));
  const archives = objects.filter((o) => o.key.startsWith('accounts/'));
  expect(packs.length).toBeGreaterThan(0);
  expect(objects.filter((o) => o.key.startsWith('index/')).length).toBe(packs.length);
  expect(archives.length).toBe(2);
  expect(objects.map((o) => o.key)).toEqual(expect.arrayContaining(['server/server.json', 'backupstat']));
  for (const o of objects) {
    const bytes = await readRaw(raw, o.key);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('ZXBE');
    expect(bytes.subarray(8, 16).toString('hex')).toBe(key.keyId);
    for (const m of MARKERS) expect({ key: o.key, marker: m, found: bytes.includes(m) }).toEqual({ key: o.key, marker: m, found: false });
  }
  // ... while through the key every marker is there: the search above could have found them.
  const b = (await run(readBuckets(bucketsFilePath()))).find((x) => x.bucket === bucket);
  const sealedConfig = b && storeConfigOf(b, 'server1/', { keyFile, keyId: key.keyId });
  if (sealedConfig === undefined || sealedConfig._tag === 'Left') throw new Error('no configuration');
  const opened = makeS3RemoteStore(sealedConfig.right);
  // Whole objects (index objects, server files) open with the key; packs blob by blob.
  const descriptions = await packIndex(opened, objects.map((o) => o.key));
  const indexed = descriptions.flatMap((d) => d.entries.map((e) => e[0]));
  expect([...indexed].sort()).toEqual([...(await referencedDigests(root))].sort());
  const plainTexts = await Promise.all(objects.filter((o) => !o.key.startsWith('packs/')).map(async (o) => readRaw(opened, o.key)));
  for (const d of descriptions) {
    const pack = await readRaw(raw, packs.find((p) => p.key.endsWith(d.pack))?.key ?? '');
    for (const [, offset, length] of d.entries) plainTexts.push(await unseal(keyFile, pack.subarray(offset, offset + length)));
  }
  const archiveTexts = await Promise.all(archives.map(async (a) => gunzipSync(await readRaw(opened, a.key))));
  for (const m of MARKERS) expect([m, [...plainTexts, ...archiveTexts].some((t) => t.includes(m))]).toEqual([m, true]);
  for (const a of archives) {
    const bytes = await readRaw(raw, a.key);
    expect(bytes[0] === 0x1f && bytes[1] === 0x8b).toBe(false);
    expect(() => gunzipSync(bytes)).toThrow();
  }

  // The Coherency Check reads every blob back through the key.
  const checked = await run(withWriter(root, { initialize: false }, (s) => runCoherencyCheck(s, { deep: true, fix: false })));
  expect(checked.report.problems).toEqual([]);
  expect(checked.report.blobsRead).toBe(indexed.length);

  // The disaster: nothing left of the backup path nor of the machine's configuration; the key file survived.
  await fs.rm(path.join(base, 'machine-1'), { recursive: true, force: true });
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-new';
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'machine-2', 'buckets.json');
  const fresh = path.join(base, 'machine-2', 'backup');

  // A wrong key, or none: refused with a clear error, and nothing written.
  const wrongKey = path.join(base, 'keys', 'other.key');
  const other = await run(createEncryptionKeyFile(wrongKey));
  const wrong = await runLeft(retrieveMetadataFromArchive(fresh, s3('server1', wrongKey), { now: T3 }));
  expect(wrong._tag).toBe('Usage');
  expect(wrong.message).toContain(`wrong key (fingerprint ${other.keyId}, the object was sealed with ${key.keyId})`);
  const none = await runLeft(retrieveMetadataFromArchive(fresh, s3('server1'), { now: T3 }));
  expect(none._tag).toBe('Usage');
  expect(none.message).toContain('--encryption-key-file');
  expect(existsSync(path.join(base, 'machine-2'))).toBe(false);

  const got = await run(retrieveMetadataFromArchive(fresh, s3('server1', keyFile), { now: T3 }));
  expect(got).toMatchObject({ initialized: true, previousServer: { serverId: 'srv-old' }, accounts: 2, missing: [] });
  expect(await run(readVolumeSettings(fresh))).toMatchObject({ type: 's3', prefix: 'server1/', encryption: { keyId: key.keyId } });

  const restored = path.join(base, 'restored');
  await restore(fresh, ALICE, 'alice.past@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.past@example.test' as AccountId)).toEqual(alicePast);
  await restore(fresh, ALICE, 'alice.now@example.test' as AccountId, T2 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.now@example.test' as AccountId)).toEqual(aliceNow);
  await restore(fresh, BOB, 'bob.past@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'bob.past@example.test' as AccountId)).toEqual(bobPast);

  // A blob damaged in the bucket is found by the Coherency Check as corrupt: the last of a pack.
  const described = descriptions[0];
  const victim = packs.find((p) => described !== undefined && p.key.endsWith(described.pack))?.key as string;
  const last = [...(described?.entries ?? [])].sort((a, b) => b[1] - a[1])[0];
  const damaged = Buffer.from(await readRaw(raw, victim));
  damaged[damaged.length - 3] = (damaged[damaged.length - 3] ?? 0) ^ 0x40;
  const file = path.join(base, 'damaged');
  await fs.writeFile(file, damaged);
  await run(raw.putFile(victim, file));
  const after = await run(withWriter(fresh, { initialize: false }, (s) => runCoherencyCheck(s, { deep: true, fix: false })));
  expect(after.report.problems.map((p) => [p.kind, p.digest])).toEqual([['blob-corrupt', last?.[0]]]);
});

it('a volume opened with a replaced key file is refused; setBackupVolume cannot switch an existing prefix to encryption', async () => {
  const keyFile = path.join(base, 'zxbackup.key');
  await run(createEncryptionKeyFile(keyFile));
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'backup');
  await run(setBackupVolume(root, s3('server1', keyFile), { now: T1 }));
  await populate(tree);
  await scan(root, tree, T1);
  await drain(root);

  // Someone replaces the key file: the volume does not open (nothing is read with the wrong key).
  await fs.rm(keyFile);
  await run(createEncryptionKeyFile(keyFile));
  await expect(scan(root, tree, T2)).rejects.toThrow(/holds the key [0-9a-f]{16}, but this volume is encrypted with the key/);

  // A plain backup on a prefix may not be re-declared encrypted in place.
  const plainRoot = path.join(base, 'plain');
  await run(setBackupVolume(plainRoot, s3('server2'), { now: T1 }));
  await populate(path.join(base, 'vmail2'), 50);
  await scan(plainRoot, path.join(base, 'vmail2'), T1);
  const e = await runLeft(setBackupVolume(plainRoot, s3('server2', keyFile), { now: T2 }));
  expect(e._tag).toBe('Usage');
  expect(e.message).toContain('migrateBackupVolume');
  expect(await run(readVolumeSettings(plainRoot))).not.toHaveProperty('encryption');
});

it('migrateBackupVolume moves a plain S3 backup to an encrypted prefix (never in place); restores read through the key', async () => {
  const keyFile = path.join(base, 'zxbackup.key');
  const key = await run(createEncryptionKeyFile(keyFile));
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'backup');
  await run(setBackupVolume(root, s3('plain'), { now: T1 }));
  await populate(tree);
  await scan(root, tree, T1);
  await drain(root);
  const before = await volumeDigests(root);

  const migrate = (target: VolumeTargetSpec) =>
    withWriter(root, { initialize: false }, (s) => async () => {
      const planned = await planVolumeMigration(s, target, { now: T2 })();
      if (planned._tag === 'Left') return planned;
      return executeVolumeMigrationPlan(s, planned.right, { progress: () => undefined, shouldStop: () => false }, { now: () => T2 })();
    });
  const inPlace = await runLeft(migrate(s3('plain', keyFile)));
  expect(inPlace._tag).toBe('Usage');
  expect(inPlace.message).toContain('another --volume-prefix');

  const done = await run(migrate(s3('sealed', keyFile)));
  expect(done).toMatchObject({ switched: true });
  expect(await run(readVolumeSettings(root))).toMatchObject({ type: 's3', prefix: 'sealed/', encryption: { keyId: key.keyId } });
  expect(await volumeDigests(root)).toEqual(before);
  const raw = await rawStore('sealed/');
  const objects = await run(raw.list(''));
  for (const o of objects) expect((await readRaw(raw, o.key)).subarray(0, 4).toString('latin1')).toBe('ZXBE');
  const moved = (await packIndex(await sealedStore('sealed/', keyFile, key.keyId), objects.map((o) => o.key))).flatMap((d) => d.entries.map((e) => e[0]));
  expect([...moved].sort()).toEqual([...before].sort());

  const restored = path.join(base, 'restored');
  await restore(root, ALICE, 'alice.r@example.test' as AccountId, T1 + 1000, restored);
  expect(await snapshotAccount(restored, 'alice.r@example.test' as AccountId)).toEqual(await snapshotAccount(tree, ALICE));
});
