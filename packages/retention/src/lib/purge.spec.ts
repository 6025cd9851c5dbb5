import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as O from 'fp-ts/Option';
import { openMetadataStore, type AccountId, type MetadataStore } from '@zxbackup/item-store';
import { makeMemoryVolume } from '@zxbackup/volume-contract/testing';
import type { BlobVolume, Digest } from '@zxbackup/volume-contract';
import { checkCoherency } from './coherency';
import {
  acc,
  daysAgo,
  deletionRowKey,
  failingDeletes,
  iid,
  left,
  listDigests,
  makeMemoryStore,
  makeWriter,
  NOW,
  right,
  snapshotStore,
  txRowKey,
  withAges,
} from './fixtures.test-util';
import { DAY_MS, type RetentionPolicy } from './policy';
import { executePurgePlan, formatPurgePlan, INFINITE_RETENTION_NOTE, planPurge } from './purge';

const POLICY: RetentionPolicy = { dataRetentionDays: 30, accountRetentionDays: 60 };
const alice = acc('alice@example.test');
const bob = acc('bob@example.test'); // deleted 10 days ago: within the account retention
const carol = acc('carol@example.test'); // deleted 70 days ago: past the account retention
const dave = acc('dave@example.test'); // deleted exactly 60 days ago: kept

/** Items and accounts on both sides of each boundary. Returns the blobs by role. */
const buildScenario = async (store: MetadataStore, volume: BlobVolume) => {
  const w = makeWriter(store, volume);
  const b = {
    expired: await w.blob(1),
    kept: await w.blob(2),
    shared: await w.blob(3),
    oldVersion: await w.blob(4),
    newVersion: await w.blob(5),
    bobOld: await w.blob(6),
    bobKept: await w.blob(7),
    carol: await w.blob(8),
    dave: await w.blob(9),
    boundary: await w.blob(10),
    orphan: await w.blob(11),
  };
  // alice, live
  await w.upsert(alice, 'a1', daysAgo(100), b.expired);
  await w.remove(alice, 'a1', daysAgo(40)); // expired
  await w.upsert(alice, 'a2', daysAgo(100), b.kept);
  await w.remove(alice, 'a2', daysAgo(20)); // within
  await w.upsert(alice, 'a3', daysAgo(90), b.shared); // live, shares a blob with a4
  await w.upsert(alice, 'a4', daysAgo(90), b.shared);
  await w.remove(alice, 'a4', daysAgo(50)); // expired, its blob survives through a3
  await w.upsert(alice, 'a5', daysAgo(90), b.boundary);
  await w.remove(alice, 'a5', daysAgo(30)); // exactly at the boundary: kept
  await w.upsert(alice, 'a6', daysAgo(90));
  await w.remove(alice, 'a6', daysAgo(30) - 1); // 1 ms past: expired
  await w.upsert(alice, 'a7', daysAgo(90), b.oldVersion);
  await w.upsert(alice, 'a7', daysAgo(45), b.newVersion); // live item: its old version stays
  // bob, deleted 10 days ago
  await w.upsert(bob, 'b1', daysAgo(100), b.bobOld);
  await w.remove(bob, 'b1', daysAgo(45)); // expired already when bob was deleted (40 days before now-10)
  await w.upsert(bob, 'b2', daysAgo(100), b.bobKept);
  await w.remove(bob, 'b2', daysAgo(35)); // past data retention, kept with its deleted account
  await w.upsert(bob, 'b3', daysAgo(100));
  await w.remove(bob, 'b3', daysAgo(10));
  await w.upsert(bob, 'b4', daysAgo(100));
  await w.deleteAccount(bob, daysAgo(10));
  // carol, deleted 70 days ago
  await w.upsert(carol, 'c1', daysAgo(200), b.carol);
  await w.upsert(carol, 'c2', daysAgo(200));
  await w.remove(carol, 'c2', daysAgo(80));
  await w.deleteAccount(carol, daysAgo(70));
  // dave, deleted exactly 60 days ago
  await w.upsert(dave, 'd1', daysAgo(200), b.dave);
  await w.deleteAccount(dave, daysAgo(60));
  return { w, b };
};

const expectedGone = ['alice@example.test/a1', 'alice@example.test/a4', 'alice@example.test/a6', 'bob@example.test/b1', 'carol@example.test/c1', 'carol@example.test/c2'];

/** Point-in-time states the purge must not change: every item, at instants within retention. */
const statesWithinRetention = async (store: MetadataStore, items: ReadonlyArray<string>): Promise<Map<string, unknown>> => {
  const windows: Record<string, number> = { [alice]: NOW - 30 * DAY_MS, [bob]: daysAgo(10) - 30 * DAY_MS, [dave]: daysAgo(60) - 30 * DAY_MS };
  const out = new Map<string, unknown>();
  for (const key of items) {
    const [account, itemId] = key.split('/') as [AccountId, string];
    const from = windows[account];
    if (from === undefined) continue; // carol: past every retention
    for (let at = from; at <= NOW; at += 9 * 3_600_000 + 7) {
      out.set(`${key}@${at}`, O.toUndefined(await right(store.stateAt(account, iid(itemId), at))));
    }
  }
  return out;
};

describe('planPurge / executePurgePlan', () => {
  it('removes what is past each retention, keeps the rest, and every state within retention is unchanged', async () => {
    const { store } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const { b } = await buildScenario(store, volume);
    const before = await snapshotStore(store);
    const statesBefore = await statesWithinRetention(store, [...before.keys()]);

    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, volume, graceMs: 0 }));
    expect(plan.items.map((i) => `${i.account}/${i.itemId}`).sort()).toEqual(['alice@example.test/a1', 'alice@example.test/a4', 'alice@example.test/a6', 'bob@example.test/b1']);
    expect(plan.accounts.map((a) => [a.account, a.items])).toEqual([[carol, 2]]);
    expect(plan.keptWithDeletedAccount).toBe(1); // b2
    expect(plan.blobs).toMatchObject({ sweepable: 4, unreferenced: 4 }); // expired, bobOld, carol, orphan
    const printed = formatPurgePlan(plan).join('\n');
    expect(printed).toContain('deleted items to remove: 4');
    expect(printed).toMatch(/carol@example\.test: whole account .* 2 items/);
    expect(printed).toMatch(/alice@example\.test: 3 deleted items/);

    const summary = await right(executePurgePlan(plan, { store, volume }));
    expect(summary).toMatchObject({ itemsRemoved: 4, itemsSkipped: 0, accountsRemoved: 1, historiesOfAccountsRemoved: 2, blobsDeleted: 4, stopped: false });
    // the purged account is gone, account stat included; the deleted accounts within retention stay
    expect([...(await right(store.listAccounts()))].sort()).toEqual([alice, bob, dave]);

    const after = await snapshotStore(store);
    expect([...before.keys()].filter((k) => !after.has(k)).sort()).toEqual(expectedGone);
    for (const [k, n] of after) expect(before.get(k)).toBe(n); // survivors untouched
    const blobs = await listDigests(volume);
    expect([...blobs].sort()).toEqual([b.kept, b.shared, b.oldVersion, b.newVersion, b.bobKept, b.dave, b.boundary].sort());
    expect(await statesWithinRetention(store, [...before.keys()])).toEqual(statesBefore);
    expect((await right(store.getBackupStat())).lastPurgeAt).toBe(NOW);
    const report = await right(checkCoherency({ store, volume, deep: true }));
    expect(report.problems).toEqual([]);

    // A second purge at the same instant finds nothing more.
    const again = await right(planPurge({ store, policy: POLICY, now: NOW, volume, graceMs: 0 }));
    expect(again.items).toEqual([]);
    expect(again.accounts).toEqual([]);
    expect(again.blobs?.sweepable).toBe(0);
  });

  it('does nothing with infinite retention, orphans included', async () => {
    const { store } = makeMemoryStore();
    const volume = makeMemoryVolume();
    await buildScenario(store, volume);
    const before = await snapshotStore(store);
    const blobsBefore = await listDigests(volume);
    const plan = await right(planPurge({ store, policy: { dataRetentionDays: 0, accountRetentionDays: 0 }, now: NOW, volume, graceMs: 0 }));
    expect(plan.note).toBe(INFINITE_RETENTION_NOTE);
    expect(formatPurgePlan(plan)).toContain(INFINITE_RETENTION_NOTE);
    const summary = await right(executePurgePlan(plan, { store, volume }));
    expect(summary).toMatchObject({ itemsRemoved: 0, blobsDeleted: 0 });
    expect(await snapshotStore(store)).toEqual(before);
    expect(await listDigests(volume)).toEqual(blobsBefore);
  });

  it('with infinite data retention but finite account retention purges only expired accounts', async () => {
    const { store } = makeMemoryStore();
    const volume = makeMemoryVolume();
    await buildScenario(store, volume);
    const plan = await right(planPurge({ store, policy: { dataRetentionDays: 0, accountRetentionDays: 60 }, now: NOW }));
    expect(plan.items).toEqual([]);
    expect(plan.accounts.map((a) => a.account)).toEqual([carol]);
    expect(plan.blobs).toBeUndefined();
  });

  it('keeps unreferenced blobs younger than the grace period or of unknown age', async () => {
    const { store } = makeMemoryStore();
    const memory = makeMemoryVolume();
    const w = makeWriter(store, memory);
    const old = await w.blob(21);
    const young = await w.blob(22);
    const unknown = await w.blob(23);
    const exactly = await w.blob(24);
    const grace = 6 * 3_600_000;
    const volume = withAges(memory, new Map<string, number | undefined>([[old, NOW - grace - 1], [young, NOW - 3_600_000], [unknown, undefined], [exactly, NOW - grace]]));
    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, volume, graceMs: grace }));
    expect(plan.blobs).toMatchObject({ unreferenced: 4, sweepable: 2, withinGrace: 1, unknownAge: 1 });
    const summary = await right(executePurgePlan(plan, { store, volume }));
    expect(summary).toMatchObject({ blobsDeleted: 2, blobsWithinGrace: 1, blobsUnknownAge: 1 });
    expect([...(await listDigests(memory))].sort()).toEqual([young, unknown].sort());
  });

  it('skips a planned item that was re-created before the execution', async () => {
    const { store } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const w = makeWriter(store, volume);
    const d = await w.blob(31);
    await w.upsert(alice, 'x', daysAgo(90), d);
    await w.remove(alice, 'x', daysAgo(40));
    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 }));
    expect(plan.items).toHaveLength(1);
    await w.upsert(alice, 'x', daysAgo(1), d);
    const summary = await right(executePurgePlan(plan, { store, volume }));
    expect(summary).toMatchObject({ itemsRemoved: 0, itemsSkipped: 1, blobsDeleted: 0 });
    expect(O.isSome(await right(store.getHistory(alice, iid('x'))))).toBe(true);
    expect(await listDigests(volume)).toEqual(new Set([d]));
  });

  describe('interrupted and rerun', () => {
    const reference = async () => {
      const { store } = makeMemoryStore();
      const volume = makeMemoryVolume();
      await buildScenario(store, volume);
      let polls = 0;
      await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume, shouldStop: () => (polls++, false) }));
      return { items: await snapshotStore(store), blobs: await listDigests(volume), polls };
    };

    it.each([0, 1, 3, 4, 5, 6, 8, 9])('stopped after %i steps, then rerun: same end state, coherent at every stop', async (steps) => {
      const expected = await reference();
      expect(steps).toBeLessThan(expected.polls); // so that it does stop there
      const { store } = makeMemoryStore();
      const volume = makeMemoryVolume();
      await buildScenario(store, volume);
      let polls = 0;
      const first = await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume, shouldStop: () => polls++ >= steps }));
      expect(first.stopped).toBe(true);
      // Whatever was done, nothing references a missing blob.
      const midway = await right(checkCoherency({ store, volume, deep: false }));
      expect(midway.problems.filter((p) => p.kind !== 'blob-orphan')).toEqual([]);
      const second = await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume }));
      expect(second.stopped).toBe(false);
      expect(await snapshotStore(store)).toEqual(expected.items);
      expect(await listDigests(volume)).toEqual(expected.blobs);
      expect((await right(checkCoherency({ store, volume, deep: true }))).problems).toEqual([]);
    });

    it('a volume failing in the middle of the sweep: Left, coherent, and a rerun finishes', async () => {
      const expected = await reference();
      const { store } = makeMemoryStore();
      const volume = makeMemoryVolume();
      await buildScenario(store, volume);
      const error = await left(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume: failingDeletes(volume, 2) }));
      expect(error).toMatchObject({ _tag: 'VolumeFailed', op: 'delete' });
      const midway = await right(checkCoherency({ store, volume, deep: true }));
      expect(midway.problems.map((p) => p.kind)).toEqual(['blob-orphan', 'blob-orphan']);
      await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume }));
      expect(await snapshotStore(store)).toEqual(expected.items);
      expect(await listDigests(volume)).toEqual(expected.blobs);
    });

    it('on a real classic-level store: a purge stopped halfway, the store closed and reopened, then rerun', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-retention-'));
      try {
        const expected = await reference();
        const volume = makeMemoryVolume();
        const store = await right(openMetadataStore(path.join(dir, 'metadata')));
        await buildScenario(store, volume);
        let polls = 0;
        const first = await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume, shouldStop: () => polls++ >= 3 }));
        expect(first.stopped).toBe(true);
        await right(store.close());
        const reopened = await right(openMetadataStore(path.join(dir, 'metadata')));
        try {
          const second = await right(executePurgePlan(await right(planPurge({ store: reopened, policy: POLICY, now: NOW, graceMs: 0 })), { store: reopened, volume }));
          expect(second.stopped).toBe(false);
          expect(await snapshotStore(reopened)).toEqual(expected.items);
          expect(await listDigests(volume)).toEqual(expected.blobs);
          expect((await right(checkCoherency({ store: reopened, volume, deep: true }))).problems).toEqual([]);
        } finally {
          await right(reopened.close());
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  it('purges an expired account whose histories cannot be read, and one with only its account stat left', async () => {
    const { store, db } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const w = makeWriter(store, volume);
    const kept = await w.blob(41);
    const gone = await w.blob(42);
    await w.upsert(alice, 'a1', daysAgo(100), kept);
    await w.upsert(carol, 'c1', daysAgo(200), gone);
    await w.upsert(carol, 'c2', daysAgo(200));
    await w.deleteAccount(carol, daysAgo(70));
    await right(store.putAccountStat({ format: 1, account: dave, items: 0, deletedItems: 0, deletedAt: daysAgo(90) }));
    await db.put(txRowKey(carol, 'c2', 3), 'garbage');

    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, volume, graceMs: 0 }));
    expect(plan.accounts.map((a) => [a.account, a.items, a.transactions])).toEqual([
      [carol, 2, 1],
      [dave, 0, 0],
    ]);
    expect(plan.blobs).toMatchObject({ sweepable: 1 });
    const summary = await right(executePurgePlan(plan, { store, volume }));
    expect(summary).toMatchObject({ accountsRemoved: 2, historiesOfAccountsRemoved: 2, blobsDeleted: 1 });
    expect(await right(store.listAccounts())).toEqual([alice]);
    expect(await listDigests(volume)).toEqual(new Set([kept]));
    expect((await right(checkCoherency({ store, volume, deep: true }))).problems).toEqual([]);
  });

  it('never sweeps while a history that stays cannot be read', async () => {
    const { store, db } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const w = makeWriter(store, volume);
    await w.upsert(alice, 'a1', daysAgo(100), await w.blob(43));
    await w.blob(44); // an orphan
    await db.put(txRowKey(alice, 'a1', 1), 'garbage');
    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 }));
    expect(await left(executePurgePlan(plan, { store, volume }))).toMatchObject({ _tag: 'StoreFailed' });
    expect((await listDigests(volume)).size).toBe(2);
  });

  it('never purges a live item, whatever the deletion index says', async () => {
    const { store, db } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const w = makeWriter(store, volume);
    const d = await w.blob(51);
    await w.upsert(alice, 'live', daysAgo(90), d);
    await db.put(deletionRowKey(daysAgo(40), alice, 'live'), JSON.stringify({ format: 1, tx: 1 }));
    const plan = await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 }));
    expect(plan.items).toEqual([]);
    expect(plan.staleIndexEntries).toBe(1);
    await right(executePurgePlan(plan, { store, volume }));
    expect(O.isSome(await right(store.getHistory(alice, iid('live'))))).toBe(true);
    expect(await listDigests(volume)).toEqual(new Set([d]));
  });

  it('a shared blob survives while any history references it', async () => {
    const { store } = makeMemoryStore();
    const volume = makeMemoryVolume();
    const w = makeWriter(store, volume);
    const shared: Digest = await w.blob(41);
    await w.upsert(alice, 'p', daysAgo(90), shared);
    await w.remove(alice, 'p', daysAgo(40));
    await w.upsert(bob, 'q', daysAgo(90), shared);
    await w.remove(bob, 'q', daysAgo(5));
    await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW, graceMs: 0 })), { store, volume }));
    expect(await listDigests(volume)).toEqual(new Set([shared]));
    // Once the last reference expires too, it goes.
    await right(executePurgePlan(await right(planPurge({ store, policy: POLICY, now: NOW + 40 * DAY_MS, graceMs: 0 })), { store, volume }));
    expect(await listDigests(volume)).toEqual(new Set());
  });
});
