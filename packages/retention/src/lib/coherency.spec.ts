import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { openMetadataStore, type LevelDb, type MetadataStore } from '@zxbackup/item-store';
import { makeMemoryVolume, sha256Hex, streamOf, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import type { Digest } from '@zxbackup/volume-contract';
import { checkCoherency, type CoherencyProblem, type CoherencyReport } from './coherency';
import { executeCoherencyFix, formatCoherencyFixPlan, planCoherencyFix } from './coherency-fix';
import {
  acc,
  daysAgo,
  deletionRowKey,
  iid,
  listDigests,
  makeMemoryStore,
  makeWriter,
  right,
  statRowKey,
  txRowKey,
  type Writer,
} from './fixtures.test-util';
import { makeDirQuarantine } from './quarantine';

const alice = acc('alice@example.test');
const bob = acc('bob@example.test');

interface Fixture {
  store: MetadataStore;
  db: LevelDb;
  volume: MemoryVolume;
  w: Writer;
  blobs: Record<'m1' | 'm2' | 'm3' | 'm4' | 'old' | 'b1', Digest>;
}

/** Two accounts, live and deleted items, several versions. Transaction ids follow the calls (1, 2, ...). */
const build = async (): Promise<Fixture> => {
  const { store, db } = makeMemoryStore();
  const volume = makeMemoryVolume();
  const w = makeWriter(store, volume);
  const blobs = {
    m1: await w.blob(1, 3000),
    m2: await w.blob(2, 70_000),
    m3: await w.blob(3),
    m4: await w.blob(4),
    old: await w.blob(5),
    b1: await w.blob(6),
  };
  await w.upsert(alice, 'm1', daysAgo(20), blobs.m1); // tx 1
  await w.upsert(alice, 'm2', daysAgo(19), blobs.m2); // tx 2
  await w.upsert(alice, 'm3', daysAgo(18), blobs.old); // tx 3
  await w.upsert(alice, 'm3', daysAgo(10), blobs.m3); // tx 4
  await w.upsert(alice, 'm4', daysAgo(9), blobs.m4); // tx 5
  await w.remove(alice, 'm4', daysAgo(2)); // tx 6
  await w.upsert(bob, 'b1', daysAgo(5), blobs.b1); // tx 7
  await w.upsert(bob, 'b2', daysAgo(5)); // tx 8
  return { store, db, volume, w, blobs };
};

const kinds = (r: CoherencyReport): string[] => r.problems.map((p) => p.kind).sort();
const only = (r: CoherencyReport, kind: CoherencyProblem['kind']): CoherencyProblem[] => r.problems.filter((p) => p.kind === kind);

describe('checkCoherency', () => {
  it('finds nothing wrong in an intact backup, shallow and deep', async () => {
    const f = await build();
    const shallow = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(shallow.problems).toEqual([]);
    expect(shallow).toMatchObject({ histories: 6, transactions: 8, blobsReferenced: 6, blobsRead: 0, blobsListed: 6, complete: true });
    const deep = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(deep.problems).toEqual([]);
    expect(deep.blobsRead).toBe(6);
    expect(deep.bytesRead).toBe([...f.w.blobs.values()].reduce((n, b) => n + b.length, 0));
  });

  it('a flipped bit: found by the deep check only, with its item and digest', async () => {
    const f = await build();
    f.volume.tamper(f.blobs.m2, (b) => {
      b[40_000] = (b[40_000] ?? 0) ^ 0x04;
      return b;
    });
    expect((await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }))).problems).toEqual([]);
    const deep = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(deep.problems).toEqual([expect.objectContaining({ kind: 'blob-corrupt', account: alice, itemId: iid('m2'), digest: f.blobs.m2, tx: 2 })]);
  });

  it('a truncated blob: found by size even without reading', async () => {
    const f = await build();
    f.volume.tamper(f.blobs.m1, (b) => b.subarray(0, b.length - 10));
    const shallow = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(shallow.problems).toEqual([expect.objectContaining({ kind: 'blob-corrupt', account: alice, itemId: iid('m1'), digest: f.blobs.m1 })]);
  });

  it('a deleted blob, including one referenced only by an old version', async () => {
    const f = await build();
    await right(f.volume.delete(f.blobs.old));
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'blob-missing', account: alice, itemId: iid('m3'), digest: f.blobs.old, tx: 3 })]);
  });

  it('an orphan blob', async () => {
    const f = await build();
    const orphan = await f.w.blob(99);
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'blob-orphan', digest: orphan })]);
    expect(r.problems[0]?.account).toBeUndefined();
  });

  it('garbage in a history row: that item is reported, the rest is still checked, orphans included', async () => {
    const f = await build();
    await f.db.put(txRowKey(alice, 'm3', 3), '{"tx":3,"start":"yesterday"');
    await right(f.volume.delete(f.blobs.b1)); // damage elsewhere must still be found
    const orphan = await f.w.blob(99);
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(only(r, 'history-unreadable')).toEqual([expect.objectContaining({ account: alice, itemId: iid('m3') })]);
    expect(only(r, 'history-unreadable')[0]?.detail).toContain(txRowKey(alice, 'm3', 3));
    expect(only(r, 'blob-missing')).toEqual([expect.objectContaining({ account: bob, itemId: iid('b1'), digest: f.blobs.b1 })]);
    expect(only(r, 'check-incomplete')).toEqual([]);
    // m3's blobs cannot be told from orphans while its history is unreadable: reported, with the reason
    expect(only(r, 'blob-orphan').map((p) => p.digest).sort()).toEqual([orphan, f.blobs.m3, f.blobs.old].sort());
    expect(only(r, 'blob-orphan')[0]?.detail).toMatch(/could not be read/);
    expect(r).toMatchObject({ complete: true, histories: 6, unreadableHistories: 1 });
    // ... and so no orphan is moved by a fix
    const plan = planCoherencyFix(r);
    expect(plan.quarantine).toEqual([]);
    expect(plan.leftAsIs.map((p) => p.kind).sort()).toEqual(['blob-orphan', 'blob-orphan', 'blob-orphan', 'history-unreadable']);
  });

  it('a history whose invariants are broken (a start going back in time) is unreadable, not a crash', async () => {
    const f = await build();
    const row = JSON.parse((await f.db.get(txRowKey(alice, 'm3', 4))) as string) as Record<string, unknown>;
    await f.db.put(txRowKey(alice, 'm3', 4), JSON.stringify({ ...row, start: daysAgo(30) }));
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(only(r, 'history-unreadable')).toEqual([expect.objectContaining({ account: alice, itemId: iid('m3') })]);
    expect(only(r, 'history-unreadable')[0]?.detail).toMatch(/before the previous start/);
  });

  it('a key naming no valid item stops the pass: reported as incomplete, orphans not looked for', async () => {
    const f = await build();
    await f.db.put(txRowKey(alice, 'bad id', 50), '{}');
    await f.w.blob(99);
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(kinds(r)).toEqual(['check-incomplete']);
    expect(r.complete).toBe(false);
  });

  it('deletion-index entries pointing nowhere, and a deleted item missing from the index', async () => {
    const f = await build();
    await f.db.put(deletionRowKey(daysAgo(3), alice, 'ghost'), JSON.stringify({ format: 1, tx: 999 }));
    await f.db.put(deletionRowKey(daysAgo(3), bob, 'b1'), JSON.stringify({ format: 1, tx: 7 })); // b1 is live
    await f.db.del(deletionRowKey(daysAgo(2), alice, 'm4'));
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(kinds(r)).toEqual(['index-dangling', 'index-dangling', 'index-missing']);
    expect(only(r, 'index-dangling').map((p) => `${p.account}/${p.itemId}`).sort()).toEqual(['alice@example.test/ghost', 'bob@example.test/b1']);
    expect(only(r, 'index-missing')).toEqual([expect.objectContaining({ account: alice, itemId: iid('m4'), tx: 6 })]);
  });

  it('histories of an account that is gone', async () => {
    const f = await build();
    await f.db.del(statRowKey(bob));
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'account-missing', account: bob })]);
  });

  it('checks the given accounts only, without looking for orphans', async () => {
    const f = await build();
    await right(f.volume.delete(f.blobs.b1));
    await right(f.volume.delete(f.blobs.m1));
    await f.w.blob(98);
    const r = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false, accounts: [bob] }));
    expect(r.problems).toEqual([expect.objectContaining({ kind: 'blob-missing', account: bob, digest: f.blobs.b1 })]);
    expect(r.histories).toBe(2);
  });

  it('works on a real classic-level store', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-coherency-'));
    try {
      const store = await right(openMetadataStore(dir));
      try {
        const volume = makeMemoryVolume();
        const w = makeWriter(store, volume);
        const d = await w.blob(1);
        await w.upsert(alice, 'x', daysAgo(3), d);
        expect((await right(checkCoherency({ store, volume, deep: true }))).problems).toEqual([]);
        await right(volume.delete(d));
        expect(kinds(await right(checkCoherency({ store, volume, deep: true })))).toEqual(['blob-missing']);
      } finally {
        await right(store.close());
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('planCoherencyFix / executeCoherencyFix', () => {
  let qdir: string;
  beforeEach(() => {
    qdir = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-quarantine-'));
  });
  afterEach(() => fs.rmSync(qdir, { recursive: true, force: true }));

  /** Every kind of damage at once. */
  const damage = async (f: Fixture): Promise<Digest> => {
    f.volume.tamper(f.blobs.m2, (b) => {
      b[10] = (b[10] ?? 0) ^ 1;
      return b;
    });
    f.volume.tamper(f.blobs.m1, (b) => b.subarray(0, 100));
    await right(f.volume.delete(f.blobs.old));
    await f.db.del(deletionRowKey(daysAgo(2), alice, 'm4'));
    await f.db.put(deletionRowKey(daysAgo(3), alice, 'ghost'), JSON.stringify({ format: 1, tx: 999 }));
    return f.w.blob(77); // orphan
  };

  it('mends corrupt and missing blobs from the source, quarantines orphans and rebuilds the index', async () => {
    const f = await build();
    const orphan = await damage(f);
    const orphanBytes = f.w.blobs.get(orphan) as Buffer;
    const report = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(kinds(report)).toEqual(['blob-corrupt', 'blob-corrupt', 'blob-missing', 'blob-orphan', 'index-dangling', 'index-missing']);
    const plan = planCoherencyFix(report);
    expect(plan.refetch.map((r) => r.digest).sort()).toEqual([f.blobs.m1, f.blobs.m2, f.blobs.old].sort());
    expect(plan.quarantine).toEqual([orphan]);
    expect(plan.reindex).toEqual([
      { reason: 'index-missing', account: alice, itemId: iid('m4') },
      { reason: 'index-dangling', account: alice, itemId: iid('ghost') },
    ]);
    expect(formatCoherencyFixPlan(plan)[0]).toContain('3 blobs to fetch again');

    const summary = await right(
      executeCoherencyFix(plan, { store: f.store, volume: f.volume, refetchBlob: f.w.refetch, quarantine: makeDirQuarantine({ dir: qdir, volume: f.volume }) }),
    );
    expect([...summary.mended].sort()).toEqual([f.blobs.m1, f.blobs.m2, f.blobs.old].sort());
    expect(summary.lost).toEqual([]);
    expect(summary.quarantined).toEqual([orphan]);
    expect(summary.reindexed).toBe(2); // the ghost's entry removed, m4's added

    expect((await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }))).problems).toEqual([]);
    // Nothing was deleted without a copy: the orphan and both damaged copies are in quarantine.
    expect(sha256Hex(fs.readFileSync(path.join(qdir, orphan)))).toBe(orphan);
    expect(fs.readFileSync(path.join(qdir, orphan)).equals(orphanBytes)).toBe(true);
    expect(fs.readFileSync(path.join(qdir, f.blobs.m1))).toHaveLength(100);
    expect(JSON.parse(fs.readFileSync(path.join(qdir, `${f.blobs.m2}.json`), 'utf8'))).toMatchObject({ digest: f.blobs.m2, reason: 'corrupt', bytes: 70_000 });
  });

  it('without a source, damaged blobs are reported lost and left as they are; orphans still go to quarantine', async () => {
    const f = await build();
    const orphan = await damage(f);
    const plan = planCoherencyFix(await right(checkCoherency({ store: f.store, volume: f.volume, deep: true })));
    const summary = await right(executeCoherencyFix(plan, { store: f.store, volume: f.volume, quarantine: makeDirQuarantine({ dir: qdir, volume: f.volume }) }));
    expect(summary.mended).toEqual([]);
    expect(summary.lost.map((l) => [l.digest, l.account, l.itemId, l.reason]).sort()).toEqual(
      [
        [f.blobs.m1, alice, iid('m1'), 'blob-corrupt'],
        [f.blobs.m2, alice, iid('m2'), 'blob-corrupt'],
        [f.blobs.old, alice, iid('m3'), 'blob-missing'],
      ].sort(),
    );
    expect(summary.quarantined).toEqual([orphan]);
    expect(await listDigests(f.volume)).not.toContain(orphan);
    expect(fs.existsSync(path.join(qdir, orphan))).toBe(true);
    const after = await right(checkCoherency({ store: f.store, volume: f.volume, deep: true }));
    expect(kinds(after)).toEqual(['blob-corrupt', 'blob-corrupt', 'blob-missing']); // still reported, never dropped
  });

  it('a source that cannot serve the item, or serves different bytes: lost', async () => {
    const f = await build();
    f.volume.tamper(f.blobs.m2, (b) => b.subarray(1));
    await right(f.volume.delete(f.blobs.m3));
    const plan = planCoherencyFix(await right(checkCoherency({ store: f.store, volume: f.volume, deep: true })));
    const refetchBlob = (_a: unknown, itemId: string) =>
      itemId === 'm2' ? TE.right<unknown, Readable>(streamOf(Buffer.from('not the message'))) : undefined;
    const summary = await right(executeCoherencyFix(plan, { store: f.store, volume: f.volume, refetchBlob, quarantine: makeDirQuarantine({ dir: qdir, volume: f.volume }) }));
    expect(summary.mended).toEqual([]);
    expect(summary.lost.map((l) => [l.itemId, l.why]).sort()).toEqual([
      ['m2', 'the source returned different content (its digest does not match)'],
      ['m3', 'the source cannot provide it'],
    ]);
    // The damaged copy of m2 is kept in quarantine, not thrown away.
    expect(fs.readFileSync(path.join(qdir, f.blobs.m2))).toHaveLength(69_999);
  });

  it('leaves unreadable histories in place', async () => {
    const f = await build();
    await f.db.put(txRowKey(alice, 'm1', 1), 'garbage');
    const report = await right(checkCoherency({ store: f.store, volume: f.volume, deep: false }));
    const plan = planCoherencyFix(report);
    // m1's blob looks orphaned, but it stays where it is while m1's history is unreadable
    expect(plan.leftAsIs.map((p) => p.kind).sort()).toEqual(['blob-orphan', 'history-unreadable']);
    expect(plan.quarantine).toEqual([]);
    const summary = await right(executeCoherencyFix(plan, { store: f.store, volume: f.volume, quarantine: makeDirQuarantine({ dir: qdir, volume: f.volume }) }));
    expect(summary.leftAsIs).toHaveLength(2);
    expect(await f.db.get(txRowKey(alice, 'm1', 1))).toBe('garbage');
    expect(await listDigests(f.volume)).toContain(f.blobs.m1);
    expect(O.isNone(await right(f.store.getHistory(alice, iid('m2'))))).toBe(false);
  });
});
