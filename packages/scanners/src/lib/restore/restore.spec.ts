import { Readable } from 'node:stream';
import type { AccountId, ItemId, MetadataStore, TxId } from '@zxbackup/item-store';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import type { Digest } from '@zxbackup/volume-contract';
import { makeScanEngine, type ScanEngine } from '../engine/smart-scan';
import { messageIdFor } from '../engine/ids';
import { makeFakeSource, type FakeSource } from '../testing/fake-source';
import { makeFakeTarget, type FakeTarget } from '../testing/fake-target';
import { makeCounterTxIds, makeManualClock, openTempStore, unwrap, unwrapLeft } from '../testing/harness';
import type { Snapshot } from '../testing/store-snapshot';
import { makeRestoreEngine, type RestoreEngine } from './restore-engine';

const ALICE = 'alice@example.test' as AccountId;
const mail = (subject: string): string => `From: bob@example.test\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`;

interface World {
  source: FakeSource;
  target: FakeTarget;
  store: MetadataStore;
  volume: MemoryVolume;
  clock: ReturnType<typeof makeManualClock>;
  scan: ScanEngine;
  restore: RestoreEngine;
  close: () => Promise<void>;
}

const makeWorld = async (): Promise<World> => {
  const { store, close } = await openTempStore();
  const source = makeFakeSource();
  const target = makeFakeTarget();
  const volume = makeMemoryVolume();
  const clock = makeManualClock();
  const scan = makeScanEngine({ store, volume, source, txIds: makeCounterTxIds(), clock: clock.now });
  const restore = makeRestoreEngine({ store, volume, target, readTarget: target.openMessage });
  return { source, target, store, volume, clock, scan, restore, close };
};

/** Three states of Alice's mailbox, scanned at t0, t1, t2, with the source's snapshot of each. */
const history = async (w: World): Promise<Array<{ at: number; snap: Snapshot }>> => {
  const out: Array<{ at: number; snap: Snapshot }> = [];
  w.source.addAccount(ALICE, { passwordHash: '{SSHA}abc', settings: { zimbraPrefLocale: 'de' } });
  w.source.addFolder(ALICE, '.Projects', 'Projects');
  w.source.addFolder(ALICE, '.Projects.2026', 'Projects/2026');
  w.source.putMessage(ALICE, 'INBOX', 'k1', mail('one'), { flags: ['\\Seen'], receivedAt: 1_700_000_000_000 });
  w.source.putMessage(ALICE, 'INBOX', 'k2', mail('two'), { receivedAt: 1_700_000_001_000 });
  w.source.putMessage(ALICE, '.Projects', 'k3', mail('three'), { flags: ['$Important'], receivedAt: 1_700_000_002_000 });
  w.source.putMessage(ALICE, '.Projects.2026', 'k4', mail('four'), { receivedAt: 1_700_000_003_000 });
  await unwrap(w.scan.smartScan());
  out.push({ at: w.clock.now(), snap: w.source.snapshot(ALICE) });

  w.clock.advance(3_600_000);
  w.source.setFlags(ALICE, 'INBOX', 'k2', ['\\Answered', '\\Seen']);
  w.source.moveMessage(ALICE, 'INBOX', 'k1', '.Projects');
  w.source.removeMessage(ALICE, '.Projects.2026', 'k4');
  w.source.putMessage(ALICE, 'INBOX', 'k5', mail('five'), { receivedAt: 1_700_000_004_000 });
  await unwrap(w.scan.smartScan());
  out.push({ at: w.clock.now(), snap: w.source.snapshot(ALICE) });

  w.clock.advance(3_600_000);
  w.source.renameFolder(ALICE, '.Projects', '.Work', 'Work');
  w.source.removeMessage(ALICE, 'INBOX', 'k2');
  w.source.removeMessage(ALICE, 'INBOX', 'k5');
  await unwrap(w.scan.smartScan());
  out.push({ at: w.clock.now(), snap: w.source.snapshot(ALICE) });
  return out;
};

describe('restore engine', () => {
  let w: World;
  beforeEach(async () => {
    w = await makeWorld();
  });
  afterEach(async () => {
    await w.close();
  });

  it('restores an account as it was at each instant into a new account', async () => {
    const states = await history(w);
    for (const [i, s] of states.entries()) {
      const dest = `restored${i}@example.test` as AccountId;
      const summary = await unwrap(w.restore.restoreAccount({ account: ALICE, newAccount: dest, at: s.at + 10, undelete: false }));
      expect(w.target.snapshot(dest)).toEqual(s.snap);
      expect(summary.undeleted).toBe(0);
      expect(summary.messages).toBe(Object.values(s.snap).flat().length);
      expect(w.target.accounts.get(dest)?.meta).toMatchObject({ address: dest, passwordHash: '{SSHA}abc', settings: { zimbraPrefLocale: 'de' } });
    }
  });

  it('with undelete, also brings back what was deleted by then, without \\Deleted', async () => {
    const states = await history(w);
    const t2 = states[2]?.at as number;
    const dest = 'hold@example.test' as AccountId;
    const summary = await unwrap(w.restore.restoreAccount({ account: ALICE, newAccount: dest, at: t2, undelete: true }));
    expect(summary.undeleted).toBe(3);
    const snap = w.target.snapshot(dest);
    expect(snap['INBOX']?.map((m) => [m.content, m.flags])).toEqual([
      [mail('five'), []],
      [mail('two'), ['\\Answered', '\\Seen']],
    ]);
    // k4's folder still exists at t2; the message comes back into it.
    expect(snap['Projects/2026']?.map((m) => m.content)).toEqual([mail('four')]);
  });

  it('reports progress and leaves out item kinds a mail target cannot take', async () => {
    const states = await history(w);
    const t = (states[2]?.at as number) + 1;
    await unwrap(
      w.store.commit({
        changes: [{ kind: 'upsert', account: ALICE, itemId: 'c1' as ItemId, tx: 10_000 as TxId, at: t, meta: { kind: 'contact', folderId: 'fx' as ItemId, fields: { fn: 'Bob' } } }],
      }),
    );
    const progress: string[] = [];
    const restore = makeRestoreEngine({ store: w.store, volume: w.volume, target: w.target, onProgress: (p) => void progress.push(p.phase) });
    const s = await unwrap(restore.restoreAccount({ account: ALICE, newAccount: 'p@example.test' as AccountId, at: t + 1, undelete: false }));
    expect(s).toMatchObject({ messages: 2, ignored: 1 });
    expect(progress[0]).toBe('folders');
    expect(progress.filter((p) => p === 'messages')).toHaveLength(2);
    expect(progress[progress.length - 1]).toBe('done');
  });

  it('fetches the first blobs while the folders are made, and writes no message before its folder', async () => {
    const states = await history(w);
    const events: string[] = [];
    const made = new Set<string>();
    // A slow target: each folder takes a while; a message into a folder not made yet is refused.
    const target: typeof w.target = {
      ...w.target,
      ensureFolder: (a, path, meta) => async () => {
        events.push(`folder ${path}`);
        await new Promise((r) => setTimeout(r, 20));
        made.add(`${a}:${path}`);
        return w.target.ensureFolder(a, path, meta)();
      },
      writeMessage: (a, path, message) => async () => {
        if (!made.has(`${a}:${path}`)) return { _tag: 'Left', left: { _tag: 'SourceNotFound', op: 'writeMessage', message: `${path} not made yet` } };
        events.push(`write ${path}`);
        return w.target.writeMessage(a, path, message)();
      },
    };
    const volume = { ...w.volume, get: (d: Digest) => (events.push('get'), w.volume.get(d)) };
    const restore = makeRestoreEngine({ store: w.store, volume, target });
    const dest = 'slow@example.test' as AccountId;
    const s = states[0] as { at: number; snap: Snapshot };
    const summary = await unwrap(restore.restoreAccount({ account: ALICE, newAccount: dest, at: s.at + 10, undelete: false }));
    expect(w.target.snapshot(dest)).toEqual(s.snap);
    expect(summary.messages).toBe(4);
    // Every blob was asked for before the last folder was made.
    const lastFolder = events.map((e) => e.startsWith('folder')).lastIndexOf(true);
    expect(events.filter((e) => e === 'get')).toHaveLength(4);
    expect(events.lastIndexOf('get')).toBeLessThan(lastFolder);
    expect(events.findIndex((e) => e.startsWith('write'))).toBeGreaterThan(lastFolder);
  });

  it('tells a volume that can prefetch the whole list of blobs, before it reads any', async () => {
    const states = await history(w);
    const events: string[] = [];
    const hinted: Digest[][] = [];
    const volume = {
      ...w.volume,
      get: (d: Digest) => (events.push(`get ${d}`), w.volume.get(d)),
      prefetch: (digests: readonly Digest[]) => void (events.push('prefetch'), hinted.push([...digests])),
    };
    const restore = makeRestoreEngine({ store: w.store, volume, target: w.target });
    const dest = 'hinted@example.test' as AccountId;
    const s = states[0] as { at: number; snap: Snapshot };
    const summary = await unwrap(restore.restoreAccount({ account: ALICE, newAccount: dest, at: s.at + 10, undelete: false }));
    expect(w.target.snapshot(dest)).toEqual(s.snap);
    expect(hinted).toHaveLength(1);
    expect(events[0]).toBe('prefetch');
    // Exactly the blobs read, in the order they are read.
    expect(hinted[0]).toEqual(events.filter((e) => e.startsWith('get ')).map((e) => e.slice(4)));
    expect(hinted[0]).toHaveLength(summary.messages);
  });

  it('while it walks the account, gives a volume that can warm up the first blobs of the list it prefetches next', async () => {
    const states = await history(w);
    const events: string[] = [];
    const warmed: Digest[][] = [];
    const hinted: Digest[][] = [];
    const volume = {
      ...w.volume,
      get: (d: Digest) => (events.push('get'), w.volume.get(d)),
      warmUp: (digests: readonly Digest[]) => void (events.push('warmUp'), warmed.push([...digests])),
      prefetch: (digests: readonly Digest[]) => void (events.push('prefetch'), hinted.push([...digests])),
    };
    const restore = makeRestoreEngine({ store: w.store, volume, target: w.target, warmUpAfter: 2 });
    const dest = 'warmed@example.test' as AccountId;
    const s = states[0] as { at: number; snap: Snapshot };
    const summary = await unwrap(restore.restoreAccount({ account: ALICE, newAccount: dest, at: s.at + 10, undelete: false }));
    expect(w.target.snapshot(dest)).toEqual(s.snap);
    expect(summary.messages).toBeGreaterThan(2);
    expect(events.slice(0, 2)).toEqual(['warmUp', 'prefetch']);
    expect(warmed).toHaveLength(1);
    expect(warmed[0]).toHaveLength(2);
    // The first entries of the list (this volume keeps the order it is given): an S3 volume ranks
    // packs by first need, so they name its first packs.
    expect(warmed[0]).toEqual(hinted[0]?.slice(0, 2));
  });

  it('reads the blobs in the order the volume asks for, in a restore and in an undelete', async () => {
    const states = await history(w);
    const reads: Digest[] = [];
    const asked: Digest[][] = [];
    // A volume that wants its lists read backwards by digest.
    const volume = {
      ...w.volume,
      get: (d: Digest) => (reads.push(d), w.volume.get(d)),
      readOrder: async (digests: readonly Digest[]) => {
        asked.push([...digests]);
        return digests.map((d, i) => ({ d, i })).sort((a, b) => (a.d < b.d ? 1 : a.d > b.d ? -1 : 0)).map((e) => e.i);
      },
    };
    const restore = makeRestoreEngine({ store: w.store, volume, target: w.target, readTarget: w.target.openMessage });
    const backwards = (ds: readonly Digest[]): Digest[] => [...ds].sort().reverse();
    const s = states[1] as { at: number; snap: Snapshot };
    await unwrap(restore.restoreAccount({ account: ALICE, newAccount: 'ordered@example.test' as AccountId, at: s.at + 10, undelete: false }));
    expect(w.target.snapshot('ordered@example.test' as AccountId)).toEqual(s.snap);
    expect(asked).toHaveLength(1);
    expect(reads.length).toBeGreaterThan(2);
    expect(reads).toEqual(backwards(asked[0] ?? []));
    reads.length = 0;
    const t0 = states[0]?.at as number;
    const summary = await unwrap(restore.undeleteItems({ account: ALICE, from: t0 + 1, to: w.clock.now(), targetOriginalFolder: true, now: w.clock.now() }));
    expect(summary.restored).toBeGreaterThanOrEqual(2);
    expect(asked).toHaveLength(2);
    expect(reads).toEqual(backwards(asked[1] ?? []));
  });

  it('reports a failure to make the account, not the writes it stopped', async () => {
    await history(w);
    const target: typeof w.target = { ...w.target, ensureAccount: () => async () => ({ _tag: 'Left', left: { _tag: 'SourceIOError', op: 'ensureAccount', message: 'disk full' } }) };
    const restore = makeRestoreEngine({ store: w.store, volume: w.volume, target });
    const e = await unwrapLeft(restore.restoreAccount({ account: ALICE, newAccount: 'full@example.test' as AccountId, at: w.clock.now(), undelete: false }));
    expect(e).toMatchObject({ _tag: 'RestoreTargetError', cause: { _tag: 'SourceIOError', op: 'ensureAccount' } });
    expect(w.target.writes).toBe(0);
  });

  it('refuses to restore into an account that holds anything', async () => {
    await history(w);
    const dest = 'busy@example.test' as AccountId;
    await unwrap(w.target.writeMessage(dest, 'INBOX', { content: Readable.from([Buffer.from('x')]), flags: [], receivedAt: 1 }));
    const e = await unwrapLeft(w.restore.restoreAccount({ account: ALICE, newAccount: dest, at: w.clock.now(), undelete: false }));
    expect(e._tag).toBe('TargetNotEmpty');
    expect(w.target.writes).toBe(1);
  });

  it('says AccountNotFound for an account the backup never saw', async () => {
    const e = await unwrapLeft(w.restore.restoreAccount({ account: 'nobody@example.test' as AccountId, newAccount: 'x@example.test' as AccountId, at: w.clock.now(), undelete: false }));
    expect(e._tag).toBe('AccountNotFound');
  });

  it('fails with the volume tag when a blob is corrupt', async () => {
    const states = await history(w);
    let tampered = 0;
    await unwrap(w.volume.list((d: Digest) => void (w.volume.tamper(d, (b) => Buffer.concat([b, Buffer.from('!')])) && tampered++)));
    expect(tampered).toBeGreaterThan(0);
    const e = await unwrapLeft(w.restore.restoreAccount({ account: ALICE, newAccount: 'c@example.test' as AccountId, at: states[0]?.at as number, undelete: false }));
    expect(e).toMatchObject({ _tag: 'RestoreVolumeError', cause: { _tag: 'BlobCorrupt' } });
  });

  it('undeletes into the original folders (recreated), tagged, without duplicates', async () => {
    const states = await history(w);
    const [t0, t1, t2] = states.map((s) => s.at) as [number, number, number];
    // Alice's mailbox at the target is what the source holds now.
    await unwrap(w.target.ensureAccount(ALICE, { kind: 'account', address: ALICE, status: 'active', settings: {} }));
    const now = Date.UTC(2026, 2, 5, 12);
    const s1 = await unwrap(w.restore.undeleteItems({ account: ALICE, from: t0 + 1, to: t2, targetOriginalFolder: true, now }));
    expect(s1).toMatchObject({ restored: 3, skipped: 0 });
    const snap = w.target.snapshot(ALICE);
    expect(snap['INBOX']?.map((m) => [m.content, m.flags])).toEqual([
      [mail('five'), ['undelete_05_03_26']],
      [mail('two'), ['\\Answered', '\\Seen', 'undelete_05_03_26']],
    ]);
    expect(snap['Projects/2026']?.map((m) => m.content)).toEqual([mail('four')]);
    // Run again: everything is there already.
    const s2 = await unwrap(w.restore.undeleteItems({ account: ALICE, from: t0 + 1, to: t2, targetOriginalFolder: true, now }));
    expect(s2).toMatchObject({ restored: 0, skipped: 3 });
    // Only deletions within the window count.
    const s3 = await unwrap(w.restore.undeleteItems({ account: ALICE, from: t1, to: t1, targetOriginalFolder: false, now }));
    expect(s3).toMatchObject({ restored: 1, folders: ['Undeleted 05-03-26'] });
    expect(w.target.snapshot(ALICE)['Undeleted 05-03-26']?.map((m) => m.content)).toEqual([mail('four')]);
  });

  it('restores one item as of an instant, into its folder or another', async () => {
    const states = await history(w);
    const [t0, , t2] = states.map((s) => s.at) as [number, number, number];
    const id = messageIdFor(ALICE, 'k1');
    const r1 = await unwrap(w.restore.restoreItem({ account: ALICE, itemId: id, at: t0 }));
    expect(r1).toMatchObject({ folder: 'INBOX', written: true });
    const r2 = await unwrap(w.restore.restoreItem({ account: ALICE, itemId: id }));
    // Its last state: in Projects, renamed Work since.
    expect(r2).toMatchObject({ folder: 'Work', written: true });
    const r3 = await unwrap(w.restore.restoreItem({ account: ALICE, itemId: id, restoreFolder: 'Recovered' }));
    expect(r3.folder).toBe('Recovered');
    const again = await unwrap(w.restore.restoreItem({ account: ALICE, itemId: id, restoreFolder: 'Recovered' }));
    expect(again.written).toBe(false);
    const deleted = await unwrap(w.restore.restoreItem({ account: ALICE, itemId: messageIdFor(ALICE, 'k2') }));
    expect(deleted).toMatchObject({ folder: 'INBOX', written: true });
    expect(w.target.snapshot(ALICE)['INBOX']?.find((m) => m.content === mail('two'))?.flags).toEqual(['\\Answered', '\\Seen']);
    const e = await unwrapLeft(w.restore.restoreItem({ account: ALICE, itemId: messageIdFor(ALICE, 'k2'), at: t2 }));
    expect(e._tag).toBe('ItemNotFound');
  });

  it('searches by text, kind and deletion state', async () => {
    const states = await history(w);
    const t2 = states[2]?.at as number;
    const deleted = await unwrap(w.restore.searchItems({ account: ALICE, type: 'message', filter: 'deleted' }));
    expect(deleted.map((h) => h.subject).sort()).toEqual(['five', 'four', 'two']);
    expect(deleted.every((h) => h.deletedAt !== undefined && h.deletedAt <= t2)).toBe(true);
    expect(deleted.find((h) => h.subject === 'four')?.folder).toBe('Projects/2026');
    const byText = await unwrap(w.restore.searchItems({ account: ALICE, searchString: 'THREE', filter: 'all' }));
    expect(byText.map((h) => [h.subject, h.folder, h.from])).toEqual([['three', 'Work', 'bob@example.test']]);
    const byFolder = await unwrap(w.restore.searchItems({ account: ALICE, searchString: 'work', type: 'message', filter: 'not_deleted' }));
    expect(byFolder.map((h) => h.subject).sort()).toEqual(['one', 'three']);
    const folders = await unwrap(w.restore.searchItems({ account: ALICE, type: 'folder', filter: 'all' }));
    expect(folders.map((h) => h.folder).sort()).toEqual(['INBOX', 'Projects/2026', 'Work']);
    const old = await unwrap(w.restore.searchItems({ account: ALICE, type: 'message', filter: 'all', before: 1_700_000_002_000 }));
    expect(old.map((h) => h.subject).sort()).toEqual(['one', 'two']);
  });
});
