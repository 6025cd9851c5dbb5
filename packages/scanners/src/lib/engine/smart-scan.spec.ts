import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, ItemId, MetadataStore, Transaction } from '@zxbackup/item-store';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import { makeFakeSource, type FakeSource } from '../testing/fake-source';
import { makeCounterTxIds, makeManualClock, openTempStore, unwrap, unwrapLeft } from '../testing/harness';
import { currentItems, storeSnapshot } from '../testing/store-snapshot';
import { ACCOUNT_ITEM_ID, folderIdFor, messageIdFor } from './ids';
import { makeScanEngine } from './smart-scan';
import type { EngineDeps } from './types';

const ALICE = 'alice@example.test' as AccountId;
const BOB = 'bob@example.test' as AccountId;

const mail = (subject: string, body = 'hello'): string =>
  `From: =?UTF-8?Q?J=C3=BCrgen?= <jurgen@example.test>\r\nTo: a@example.test, "Doe, Jane" <jane@example.test>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}@example.test>\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\n\r\n${body}\r\n`;

interface World {
  source: FakeSource;
  store: MetadataStore;
  volume: MemoryVolume;
  clock: ReturnType<typeof makeManualClock>;
  deps: EngineDeps;
  close: () => Promise<void>;
}

const makeWorld = async (extra: Partial<EngineDeps> = {}): Promise<World> => {
  const { store, close } = await openTempStore();
  const source = makeFakeSource();
  const volume = makeMemoryVolume();
  const clock = makeManualClock();
  const deps: EngineDeps = { store, volume, source, txIds: makeCounterTxIds(), clock: clock.now, ...extra };
  return { source, store, volume, clock, deps, close };
};

const historyOf = async (store: MetadataStore, account: AccountId, id: ItemId): Promise<Transaction[]> => {
  const h = await unwrap(store.getHistory(account, id));
  if (O.isNone(h)) throw new Error(`no history for ${id}`);
  return h.value;
};

const seedAlice = (source: FakeSource): void => {
  source.addAccount(ALICE, { displayName: 'Alice', passwordHash: '{SHA512-CRYPT}$6$x' });
  source.addFolder(ALICE, '.Projects', 'Projects');
  source.addFolder(ALICE, '.Archive', 'Archive');
  source.putMessage(ALICE, 'INBOX', 'k1', mail('one'), { flags: ['\\Seen'], receivedAt: 1_700_000_000_000 });
  source.putMessage(ALICE, 'INBOX', 'k2', mail('two'), { receivedAt: 1_700_000_001_000 });
  source.putMessage(ALICE, '.Projects', 'k3', mail('three'), { flags: ['$Label1'], receivedAt: 1_700_000_002_000 });
  source.putMessage(ALICE, '.Archive', 'k4', mail('four'), { receivedAt: 1_700_000_003_000 });
};

describe('SmartScan', () => {
  let w: World;
  afterEach(async () => {
    await w.close();
  });

  it('records the account, its folders and messages, with headers and byte-identical blobs', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    w.source.putMessage(ALICE, 'INBOX', 'k5', mail('=?UTF-8?B?w5xiZXJzaWNodA==?= report'), { receivedAt: 1_700_000_004_000 });
    const summary = await unwrap(makeScanEngine(w.deps).smartScan());
    expect(summary).toMatchObject({ accounts: 1, created: 9, deleted: 0, messagesRead: 5, stopped: false, failures: [] });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));

    const account = await unwrap(w.store.stateAt(ALICE, ACCOUNT_ITEM_ID, w.clock.now()));
    expect(O.toUndefined(account)).toMatchObject({ kind: 'account', displayName: 'Alice', passwordHash: '{SHA512-CRYPT}$6$x', op: 'create' });
    const m = O.toUndefined(await unwrap(w.store.stateAt(ALICE, messageIdFor(ALICE, 'k5'), w.clock.now())));
    expect(m).toMatchObject({
      kind: 'message',
      subject: 'Übersicht report',
      from: 'Jürgen <jurgen@example.test>',
      to: ['a@example.test', '"Doe, Jane" <jane@example.test>'],
      messageId: '<UTF8Bw5xiZXJzaWNodAreport@example.test>',
      sentAt: Date.UTC(2026, 2, 3, 10),
      folderId: folderIdFor(ALICE, 'INBOX'),
      start: w.clock.now(),
    });
    const stat = O.toUndefined(await unwrap(w.store.getAccountStat(ALICE)));
    expect(stat?.cursor).toEqual(expect.objectContaining({ INBOX: expect.any(Number) }));
    expect(stat?.lastScanAt).toBe(w.clock.now());
  });

  it('records nothing and reads nothing when nothing changed', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.reads.length = 0;
    w.clock.advance(1000);
    const again = await unwrap(engine.smartScan());
    expect(again).toMatchObject({ recorded: 0, created: 0, updated: 0, deleted: 0, foldersSkipped: 3, foldersScanned: 0, messagesRead: 0 });
    // An Account Scan lists every folder but still reads no blob it has.
    const full = await unwrap(engine.accountScan(ALICE));
    expect(full).toMatchObject({ recorded: 0, foldersScanned: 3, messagesRead: 0 });
    expect(w.source.reads).toEqual([]);
  });

  it('reads only the new messages of the folders that changed', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.reads.length = 0;
    w.source.putMessage(ALICE, '.Projects', 'k6', mail('six'));
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ created: 1, foldersScanned: 1, foldersSkipped: 2, messagesRead: 1, recorded: 1 });
    expect(w.source.reads).toEqual([JSON.stringify(['.Projects', 'k6'])]);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('records a flag change as an update of the same item, at the scan time, without reading it', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    const t0 = w.clock.now();
    w.source.reads.length = 0;
    w.source.setFlags(ALICE, 'INBOX', 'k2', ['\\Flagged', '\\Seen', 'todo']);
    const t1 = w.clock.advance(60_000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ updated: 1, created: 0, recorded: 1 });
    expect(w.source.reads).toEqual([]);
    const h = await historyOf(w.store, ALICE, messageIdFor(ALICE, 'k2'));
    expect(h.map((e) => [e.op, e.start, e.end, e.kind === 'message' ? e.flags : null])).toEqual([
      ['create', t0, t1, []],
      ['update', t1, null, ['\\Flagged', '\\Seen', 'todo']],
    ]);
    expect(h[1]).toMatchObject({ subject: 'two', digest: h[0]?.digest });
  });

  it('records a move (same source key) as a folder change of the same item', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.reads.length = 0;
    w.source.moveMessage(ALICE, 'INBOX', 'k1', '.Archive');
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ moved: 1, created: 0, deleted: 0, recorded: 1 });
    expect(w.source.reads).toEqual([]);
    const h = await historyOf(w.store, ALICE, messageIdFor(ALICE, 'k1'));
    expect(h.map((e) => (e.kind === 'message' ? e.folderId : null))).toEqual([folderIdFor(ALICE, 'INBOX'), folderIdFor(ALICE, '.Archive')]);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('recognises a move under a new source key by its content and received date', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.moveMessage(ALICE, 'INBOX', 'k2', '.Projects', 'k2-renamed');
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ moved: 1, created: 0, deleted: 0 });
    const items = await currentItems(w.store, ALICE);
    expect(items.get(messageIdFor(ALICE, 'k2'))).toMatchObject({ sourceKey: 'k2-renamed', folderId: folderIdFor(ALICE, '.Projects'), op: 'update' });
    expect(items.has(messageIdFor(ALICE, 'k2-renamed'))).toBe(false);
  });

  it('keeps a copy apart from its original', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    // Same bytes and date under a new key while the original stays: a copy, not a move.
    w.source.putMessage(ALICE, '.Projects', 'k1-copy', mail('one'), { flags: ['\\Seen'], receivedAt: 1_700_000_000_000 });
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ created: 1, moved: 0, deleted: 0 });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('marks vanished messages deleted at the scan time; they stay restorable', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    const t0 = w.clock.now();
    w.source.removeMessage(ALICE, '.Projects', 'k3');
    const t1 = w.clock.advance(5000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ deleted: 1, recorded: 1 });
    const refs = await unwrap(w.store.deletedBetween(t1, t1 + 1, ALICE));
    expect(refs.map((r) => r.itemId)).toEqual([messageIdFor(ALICE, 'k3')]);
    expect(O.isSome(await unwrap(w.store.stateAt(ALICE, messageIdFor(ALICE, 'k3'), t0)))).toBe(true);
    expect(O.isNone(await unwrap(w.store.stateAt(ALICE, messageIdFor(ALICE, 'k3'), t1)))).toBe(true);
    const stat = O.toUndefined(await unwrap(w.store.getAccountStat(ALICE)));
    expect(stat?.deletedItems).toBe(1);
  });

  it('records a renamed folder as an update of the same folder item', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    w.source.putMessage(ALICE, '.Projects', 'k7', mail('seven'));
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.reads.length = 0;
    w.source.renameFolder(ALICE, '.Projects', '.Work', 'Work');
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ foldersRenamed: 1, updated: 1, created: 0, deleted: 0, moved: 0, recorded: 1 });
    expect(w.source.reads).toEqual([]);
    const h = await historyOf(w.store, ALICE, folderIdFor(ALICE, '.Projects'));
    expect(h.map((e) => [e.op, e.kind === 'folder' ? e.path : null])).toEqual([
      ['create', 'Projects'],
      ['update', 'Work'],
    ]);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
    // A new folder under the old key gets an id of its own.
    w.source.addFolder(ALICE, '.Projects', 'Projects');
    w.source.putMessage(ALICE, '.Projects', 'k8', mail('eight'));
    w.clock.advance(1000);
    await unwrap(engine.smartScan());
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('records a lone empty folder that vanished while another empty one appeared as a rename', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    w.source.addFolder(ALICE, '.Empty', 'Empty');
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.renameFolder(ALICE, '.Empty', '.Hollow', 'Hollow');
    w.clock.advance(1000);
    expect(await unwrap(engine.smartScan())).toMatchObject({ foldersRenamed: 1, deleted: 0, created: 0 });
    expect(await historyOf(w.store, ALICE, folderIdFor(ALICE, '.Empty'))).toEqual([
      expect.objectContaining({ op: 'create', path: 'Empty' }),
      expect.objectContaining({ op: 'update', path: 'Hollow', sourceKey: '.Hollow' }),
    ]);
  });

  it('marks a removed folder and its messages deleted', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.removeFolder(ALICE, '.Archive');
    w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ deleted: 2 });
    const items = await currentItems(w.store, ALICE);
    expect(items.has(folderIdFor(ALICE, '.Archive'))).toBe(false);
    expect(items.has(messageIdFor(ALICE, 'k4'))).toBe(false);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('marks an account gone from the source deleted and keeps its items', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    w.source.addAccount(BOB);
    w.source.putMessage(BOB, 'INBOX', 'b1', mail('bob'));
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    const t0 = w.clock.now();
    w.source.removeAccount(BOB);
    const t1 = w.clock.advance(1000);
    const s = await unwrap(engine.smartScan());
    expect(s).toMatchObject({ accounts: 1, accountsDeleted: 1 });
    expect(O.toUndefined(await unwrap(w.store.getAccountStat(BOB)))?.deletedAt).toBe(t1);
    expect(O.isNone(await unwrap(w.store.stateAt(BOB, ACCOUNT_ITEM_ID, t1)))).toBe(true);
    expect(await storeSnapshot(w.store, w.volume, BOB, t0)).toEqual({ INBOX: [{ content: mail('bob'), flags: [], receivedAt: 1_700_000_000_000 }] });
    // A second scan does not mark it again.
    w.clock.advance(1000);
    expect(await unwrap(engine.smartScan())).toMatchObject({ accountsDeleted: 0 });
  });

  it('records changed account settings', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    const engine = makeScanEngine(w.deps);
    await unwrap(engine.smartScan());
    w.source.setAccountMeta(ALICE, { passwordHash: '{SHA512-CRYPT}$6$y' });
    w.clock.advance(1000);
    expect(await unwrap(engine.smartScan())).toMatchObject({ updated: 1, recorded: 1 });
    const h = await historyOf(w.store, ALICE, ACCOUNT_ITEM_ID);
    expect(h.map((e) => (e.kind === 'account' ? e.passwordHash : null))).toEqual(['{SHA512-CRYPT}$6$x', '{SHA512-CRYPT}$6$y']);
  });

  it('stops between commits, with what it committed consistent, and a rerun completes', async () => {
    let stop = false;
    w = await makeWorld({ batchSize: 2, concurrency: 1, shouldStop: () => stop });
    seedAlice(w.source);
    for (let i = 0; i < 10; i++) w.source.putMessage(ALICE, 'INBOX', `n${i}`, mail(`n${i}`));
    let commits = 0;
    const store = w.store;
    const counting: MetadataStore = {
      ...store,
      commit: (b) => {
        commits++;
        if (commits === 2) stop = true;
        return store.commit(b);
      },
    };
    const first = await unwrap(makeScanEngine({ ...w.deps, store: counting }).smartScan());
    expect(first.stopped).toBe(true);
    expect(O.toUndefined(await unwrap(store.getAccountStat(ALICE)))?.cursor).toBeUndefined();
    const partial = await currentItems(store, ALICE);
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(18);
    stop = false;
    w.clock.advance(1000);
    const second = await unwrap(makeScanEngine(w.deps).smartScan());
    expect(second.stopped).toBe(false);
    expect(await storeSnapshot(store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
    const items = await currentItems(store, ALICE);
    expect(items.size).toBe(1 + 3 + 14);
    // Nothing recorded twice: every item has one create.
    for (const id of items.keys()) expect((await historyOf(store, ALICE, id)).length).toBe(1);
  });

  it('reruns after a failed commit without duplicating anything', async () => {
    w = await makeWorld({ batchSize: 3 });
    seedAlice(w.source);
    for (let i = 0; i < 8; i++) w.source.putMessage(ALICE, '.Archive', `a${i}`, mail(`a${i}`));
    const store = w.store;
    let commits = 0;
    const failing: MetadataStore = {
      ...store,
      commit: (b) => (++commits === 3 ? TE.left({ _tag: 'IOError', op: 'commit', message: 'disk on fire' }) : store.commit(b)),
    };
    const err = await unwrapLeft(makeScanEngine({ ...w.deps, store: failing }).accountScan(ALICE));
    expect(err).toMatchObject({ _tag: 'EngineStoreError', op: 'commit', cause: { _tag: 'IOError' } });
    w.clock.advance(1000);
    await unwrap(makeScanEngine(w.deps).smartScan());
    expect(await storeSnapshot(store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
    const items = await currentItems(store, ALICE);
    for (const id of items.keys()) expect((await historyOf(store, ALICE, id)).length).toBe(1);
  });

  it('reports a failing account and goes on with the others', async () => {
    w = await makeWorld();
    seedAlice(w.source);
    w.source.addAccount(BOB);
    w.source.putMessage(BOB, 'INBOX', 'b1', mail('bob'));
    w.source.failBlob(JSON.stringify(['INBOX', 'k1']));
    const s = await unwrap(makeScanEngine(w.deps).smartScan());
    expect(s.failures.map((f) => [f.account, f.error._tag, f.error.cause])).toEqual([[ALICE, 'EngineSourceError', expect.objectContaining({ _tag: 'SourceIOError' })]]);
    expect(await storeSnapshot(w.store, w.volume, BOB, 'now')).toEqual(w.source.snapshot(BOB));
    // The failed account kept its old cursor (none): the next scan reads it all.
    expect(O.toUndefined(await unwrap(w.store.getAccountStat(ALICE)))?.cursor).toBeUndefined();
    const left = await unwrapLeft(makeScanEngine(w.deps).accountScan(ALICE));
    expect(left._tag).toBe('EngineSourceError');
  });

  it('flushes the volume before every commit that references new blobs', async () => {
    w = await makeWorld({ batchSize: 2 });
    seedAlice(w.source);
    const events: string[] = [];
    const volume = { ...w.volume, flush: () => (events.push('flush'), w.volume.flush()), put: w.volume.put };
    const store = w.store;
    const spy: MetadataStore = { ...store, commit: (b) => (events.push(b.changes.some((c) => c.kind === 'upsert' && c.digest !== undefined) ? 'commit+blob' : 'commit'), store.commit(b)) };
    await unwrap(makeScanEngine({ ...w.deps, store: spy, volume }).smartScan());
    events.forEach((e, i) => {
      if (e === 'commit+blob') expect(events[i - 1]).toBe('flush');
    });
    expect(events.filter((e) => e === 'commit+blob').length).toBeGreaterThan(1);
  });
});
