import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AccountId } from '@zxbackup/item-store';
import { retrieveMetadataFromArchive } from './disaster-recovery';
import { uploadMetadataArchives } from './metadata-archives';
import { withWriter } from './session';
import {
  ALICE,
  BOB,
  countMessages,
  mutate,
  populate,
  referencedDigests,
  restore,
  run,
  runLeft,
  scan,
  snapshotAccount,
  volumeDigests,
  deliver,
} from './third-party-store.test-util';
import { readVolumeSettings } from './volume-config';
import { executeVolumeMigrationPlan, planVolumeMigration } from './volume-migration';
import { setBackupVolume, type VolumeTargetSpec } from './volume-setup';

/*
 * The external Local volume end to end, with a directory standing in for the NFS/FUSE mount:
 * setBackupVolume, scans onto it, incremental metadata archives, the disaster recovery onto
 * another server and a point-in-time restore, and a migration stopped and resumed.
 * (The same flows against the S3 server: third-party-store.int.spec.ts.)
 */

const T1 = Date.UTC(2026, 0, 10, 12, 0, 0);
const T2 = Date.UTC(2026, 0, 11, 12, 0, 0);
const T3 = Date.UTC(2026, 0, 12, 12, 0, 0);

jest.setTimeout(60_000);

const savedEnv = { ...process.env };
let base: string;
let tree: string;
let mount: string;

const files = async (dir: string): Promise<string[]> => {
  const out: string[] = [];
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.name === '.tmp') continue;
      if (e.isDirectory()) await walk(path.join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  await walk(dir, '');
  return out.sort();
};

const blobNames = async (dir: string): Promise<string[]> => (await files(dir)).map((f) => path.basename(f)).sort();

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-third-party-'));
  tree = path.join(base, 'vmail');
  mount = path.join(base, 'nfs');
  await fs.mkdir(mount);
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'buckets.json');
  process.env['ZXBACKUP_SERVER_ID'] = 'srv-old';
});
afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(base, { recursive: true, force: true });
});

const onMount = (): VolumeTargetSpec => ({ type: 'external-local', mountPath: mount });

describe('setBackupVolume Local', () => {
  it('a new backup keeps its blobs on the mount and its metadata local; a path with blobs is refused', async () => {
    const root = path.join(base, 'backup');
    const set = await run(setBackupVolume(root, onMount(), { now: T1 }));
    expect(set).toMatchObject({ initialized: true, changed: true, volume: { type: 'external-local', mountPath: mount } });
    expect(JSON.parse(await fs.readFile(path.join(mount, 'server', 'server.json'), 'utf8'))).toMatchObject({ serverId: 'srv-old' });

    await populate(tree);
    const summary = await scan(root, tree, T1);
    expect(summary.failures).toEqual([]);
    const referenced = await referencedDigests(root);
    expect(referenced.length).toBeGreaterThan(0);
    expect(await blobNames(path.join(mount, 'items'))).toEqual(referenced);
    expect(await blobNames(path.join(root, 'items'))).toEqual([]);
    expect(await blobNames(path.join(root, 'cache', 'mount'))).toEqual([]);

    expect((await run(setBackupVolume(root, onMount(), { now: T2 }))).changed).toBe(false);
    const other = path.join(base, 'nfs2');
    await fs.mkdir(other);
    expect((await runLeft(setBackupVolume(root, { type: 'external-local', mountPath: other }, { now: T2 })))._tag).toBe('Usage');

    // A backup already holding local blobs must migrate instead.
    const local = path.join(base, 'local-backup');
    await scan(local, tree, T1);
    expect((await runLeft(setBackupVolume(local, { type: 'external-local', mountPath: other }, { now: T2 })))._tag).toBe('Usage');
    expect(await readVolumeSettings(local)()).toEqual({ _tag: 'Right', right: { type: 'local' } });

    // Another server never takes a store that holds a backup.
    process.env['ZXBACKUP_SERVER_ID'] = 'srv-other';
    const e = await runLeft(setBackupVolume(path.join(base, 'other-server'), onMount(), { now: T2 }));
    expect(e.message).toContain('srv-old');
  });
});

describe('metadata archives and disaster recovery', () => {
  it('uploads changed accounts only; a new server rebuilds the backup from the mount and restores the past exactly', async () => {
    const root = path.join(base, 'backup');
    await run(setBackupVolume(root, onMount(), { now: T1 }));
    const inbox = await populate(tree);
    await scan(root, tree, T1);
    const alicePast = await snapshotAccount(tree, ALICE);
    const bobPast = await snapshotAccount(tree, BOB);
    expect(countMessages(alicePast)).toBe(4);

    const first = await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T1 })));
    expect(first).toMatchObject({ store: `local:${mount}`, unchanged: 0, failures: [] });
    expect(first.uploaded).toBeGreaterThanOrEqual(2);
    const again = await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T1 + 1 })));
    expect(again).toMatchObject({ uploaded: 0, unchanged: first.uploaded, failures: [] });

    await mutate(tree, inbox);
    await scan(root, tree, T2);
    const aliceNow = await snapshotAccount(tree, ALICE);
    expect(aliceNow).not.toEqual(alicePast);
    const third = await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { clock: () => T2 })));
    expect(third.uploaded).toBeGreaterThanOrEqual(1);
    const archives = (await files(path.join(mount, 'accounts'))).filter((f) => f.endsWith('.tar.gz'));
    expect(archives.filter((f) => f.startsWith(`${ALICE}/`))).toHaveLength(2);
    expect(archives.filter((f) => f.startsWith(`${BOB}/`))).toHaveLength(1);

    // The disaster: the backup path is gone; a new machine retrieves the metadata.
    await fs.rm(root, { recursive: true, force: true });
    process.env['ZXBACKUP_SERVER_ID'] = 'srv-new';
    process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'new-machine', 'buckets.json');
    const fresh = path.join(base, 'new-machine', 'backup');
    const got = await run(retrieveMetadataFromArchive(fresh, onMount(), { now: T3 }));
    expect(got).toMatchObject({ initialized: true, previousServer: { serverId: 'srv-old' }, missing: [] });
    expect(got.accounts).toBe(first.uploaded);
    expect(existsSync(path.join(fresh, 'map_srv-old'))).toBe(true);
    expect(JSON.parse(await fs.readFile(path.join(fresh, 'server.json'), 'utf8'))).toMatchObject({ serverId: 'srv-new' });
    expect(JSON.parse(await fs.readFile(path.join(mount, 'server', 'server.json'), 'utf8'))).toMatchObject({ serverId: 'srv-new' });
    expect(await readVolumeSettings(fresh)()).toEqual({ _tag: 'Right', right: { type: 'external-local', mountPath: mount } });

    const restored = path.join(base, 'restored');
    await restore(fresh, ALICE, 'alice.past@example.test' as AccountId, T1 + 1000, restored);
    expect(await snapshotAccount(restored, 'alice.past@example.test' as AccountId)).toEqual(alicePast);
    await restore(fresh, ALICE, 'alice.now@example.test' as AccountId, T2 + 1000, restored);
    expect(await snapshotAccount(restored, 'alice.now@example.test' as AccountId)).toEqual(aliceNow);
    await restore(fresh, BOB, 'bob.past@example.test' as AccountId, T1 + 1000, restored);
    expect(await snapshotAccount(restored, 'bob.past@example.test' as AccountId)).toEqual(bobPast);

    // The recovered backup goes on: new transactions get ids above the retrieved ones.
    await deliver(tree, BOB, 'INBOX', 'Subject: after the recovery\r\n\r\nhello\r\n', [], T3);
    const next = await scan(fresh, tree, T3);
    expect(next.failures).toEqual([]);
    expect(next.created).toBeGreaterThanOrEqual(1);
    await restore(fresh, BOB, 'bob.now@example.test' as AccountId, T3 + 1000, restored);
    expect(await snapshotAccount(restored, 'bob.now@example.test' as AccountId)).toEqual(await snapshotAccount(tree, BOB));

    // Only some accounts; an unknown one is reported.
    const partial = await run(
      retrieveMetadataFromArchive(path.join(base, 'partial'), onMount(), { now: T3, accounts: [BOB, 'nobody@example.test' as AccountId] }),
    );
    expect(partial).toMatchObject({ accounts: 1, missing: ['nobody@example.test'] });
  });

  it('keeps the newest archives of each account and removes the older ones after an upload', async () => {
    const root = path.join(base, 'backup');
    await run(setBackupVolume(root, onMount(), { now: T1 }));
    await populate(tree);
    await scan(root, tree, T1);
    const keysOf = async (account: AccountId): Promise<string[]> =>
      (await files(path.join(mount, 'accounts'))).filter((f) => f.startsWith(`${account}/`) && f.endsWith('.tar.gz')).sort();
    const uploads = [];
    for (let i = 0; i < 5; i += 1) {
      uploads.push(await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s, { force: true, keepArchives: 2, clock: () => T1 + i * 60_000 }))));
    }
    expect(uploads.map((u) => u.pruned)).toEqual([0, 0, uploads[0]?.uploaded, uploads[0]?.uploaded, uploads[0]?.uploaded]);
    expect(uploads.every((u) => u.failures.length === 0)).toBe(true);
    // The two newest remain: the uploads at minutes 3 and 4.
    const kept = await keysOf(ALICE);
    expect(kept).toHaveLength(2);
    expect(kept[0]).toContain(new Date(T1 + 3 * 60_000).toISOString().replace(/[-:.]/g, ''));
    expect(kept[1]).toContain(new Date(T1 + 4 * 60_000).toISOString().replace(/[-:.]/g, ''));
    // A disaster recovery still finds everything it needs.
    await fs.rm(root, { recursive: true, force: true });
    process.env['ZXBACKUP_SERVER_ID'] = 'srv-new';
    process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'new-machine', 'buckets.json');
    const got = await run(retrieveMetadataFromArchive(path.join(base, 'new-machine', 'backup'), onMount(), { now: T3 }));
    expect(got).toMatchObject({ accounts: uploads[0]?.uploaded, missing: [] });
  });

  it('the local volume has no third-party store: nothing is uploaded', async () => {
    const root = path.join(base, 'backup');
    await populate(tree);
    await scan(root, tree, T1);
    expect(await run(withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s)))).toMatchObject({ store: null, uploaded: 0 });
  });

  it('retrieving from an empty store is NotFound and writes nothing', async () => {
    await fs.mkdir(path.join(mount, 'items'));
    const fresh = path.join(base, 'fresh');
    expect((await runLeft(retrieveMetadataFromArchive(fresh, onMount(), { now: T1 })))._tag).toBe('NotFound');
    expect(existsSync(fresh)).toBe(false);
  });
});

describe('migrateBackupVolume Local', () => {
  it('stopped midway it keeps the old volume; rerun, it finishes, switches and removes the local copies', async () => {
    const root = path.join(base, 'backup');
    await populate(tree);
    await scan(root, tree, T1);
    const before = await volumeDigests(root);
    expect(before.length).toBeGreaterThan(3);

    let copiedSoFar = 0;
    const stopped = await run(
      withWriter(root, { initialize: false }, (s) => async () => {
        const planned = await planVolumeMigration(s, onMount(), { now: T2 })();
        if (planned._tag === 'Left') return planned;
        expect(planned.right.plan).toMatchObject({ blobs: before.length, alreadyThere: false, from: { type: 'local' } });
        return executeVolumeMigrationPlan(
          s,
          planned.right,
          { progress: (p) => void (p.phase === 'blobs' && (copiedSoFar = p.done)), shouldStop: () => copiedSoFar >= 2 },
          { now: () => T2 },
        )();
      }),
    );
    expect(stopped).toMatchObject({ stopped: true, switched: false });
    expect(await readVolumeSettings(root)()).toEqual({ _tag: 'Right', right: { type: 'local' } });
    expect(await blobNames(path.join(root, 'items'))).toEqual(before);

    const done = await run(
      withWriter(root, { initialize: false }, (s) => async () => {
        const planned = await planVolumeMigration(s, onMount(), { now: T2 })();
        if (planned._tag === 'Left') return planned;
        return executeVolumeMigrationPlan(s, planned.right, { progress: () => undefined, shouldStop: () => false }, { now: () => T2 })();
      }),
    );
    expect(done).toMatchObject({ switched: true, stopped: false, removedLocal: before.length });
    expect(done.alreadyOnTarget).toBeGreaterThanOrEqual(2);
    expect(done.copied + done.alreadyOnTarget).toBe(before.length);
    expect(await readVolumeSettings(root)()).toEqual({ _tag: 'Right', right: { type: 'external-local', mountPath: mount } });
    expect(await blobNames(path.join(root, 'items'))).toEqual([]);
    expect(await blobNames(path.join(mount, 'items'))).toEqual(before);
    const stored = await files(mount);
    expect(stored).toContain('server/server.json');
    expect(stored.filter((f) => f.startsWith(`accounts/${ALICE}/`))).toHaveLength(1);
    expect(stored).toContain('backupstat');

    const restored = path.join(base, 'restored');
    await restore(root, ALICE, 'alice.r@example.test' as AccountId, T1 + 1000, restored);
    expect(await snapshotAccount(restored, 'alice.r@example.test' as AccountId)).toEqual(await snapshotAccount(tree, ALICE));

    const again = await run(withWriter(root, { initialize: false }, (s) => planVolumeMigration(s, onMount(), { now: T3 })));
    expect(again.plan.alreadyThere).toBe(true);
  });
});
