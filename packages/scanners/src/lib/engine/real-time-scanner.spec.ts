import * as O from 'fp-ts/Option';
import type { AccountId, ItemId, MetadataStore, Transaction } from '@zxbackup/item-store';
import { openChangeLog, type ChangeLog } from '@zxbackup/transaction-log';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import { makeMaildirSource } from '../maildir/maildir-source';
import type { Source } from '../source';
import { makeFakeSource, type FakeSource } from '../testing/fake-source';
import { deliver, maildirOf, moveFile, removeFile, setFlagLetters, treeSnapshot } from '../testing/maildir-tree';
import { makeCounterTxIds, makeManualClock, makeTempDir, openTempStore, unwrap } from '../testing/harness';
import { storeSnapshot } from '../testing/store-snapshot';
import { folderIdFor, messageIdFor } from './ids';
import { LiveChangeRecord, startRealTimeScanner, type RealTimeScanner } from './real-time-scanner';
import { makeAccountLocks } from './account-locks';
import { makeScanEngine } from './smart-scan';
import type { EngineDeps, Logger } from './types';

const ALICE = 'alice@example.test' as AccountId;
const mail = (s: string): string => `Subject: ${s}\r\n\r\n${s}\r\n`;

interface World {
  source: FakeSource;
  store: MetadataStore;
  volume: MemoryVolume;
  clock: ReturnType<typeof makeManualClock>;
  deps: EngineDeps;
  logDir: string;
  changeLog: ChangeLog<LiveChangeRecord>;
  warnings: string[];
  close: () => Promise<void>;
}

const makeWorld = async (): Promise<World> => {
  const { store, close } = await openTempStore();
  const { dir: logDir, cleanup } = makeTempDir('zxb-rts-log-');
  const changeLog = await unwrap(openChangeLog(logDir, LiveChangeRecord));
  const source = makeFakeSource();
  const volume = makeMemoryVolume();
  const clock = makeManualClock();
  const warnings: string[] = [];
  const log: Logger = { info: () => undefined, warn: (m) => void warnings.push(m), error: (m, f) => void warnings.push(`${m} ${JSON.stringify(f)}`) };
  const deps: EngineDeps = { store, volume, source, txIds: makeCounterTxIds(), clock: clock.now, log };
  source.addAccount(ALICE);
  source.addFolder(ALICE, '.Work', 'Work');
  for (let i = 0; i < 12; i++) source.putMessage(ALICE, 'INBOX', `k${i}`, mail(`m${i}`), { receivedAt: 1_700_000_000_000 + i });
  await unwrap(makeScanEngine(deps).smartScan());
  return {
    source,
    store,
    volume,
    clock,
    deps,
    logDir,
    changeLog,
    warnings,
    close: async () => {
      await changeLog.close()();
      await close();
      cleanup();
    },
  };
};

const last = async (store: MetadataStore, id: ItemId): Promise<Transaction> => {
  const h = await unwrap(store.getHistory(ALICE, id));
  if (O.isNone(h)) throw new Error(`no ${id}`);
  return h.value[h.value.length - 1] as Transaction;
};

const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 3000): Promise<void> => {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('Real Time Scanner', () => {
  let w: World;
  let rts: RealTimeScanner | undefined;
  beforeEach(async () => {
    w = await makeWorld();
    rts = undefined;
  });
  afterEach(async () => {
    await rts?.stop();
    await w.close();
  });

  it('records a live flag change at the change time, then checkpoints the log', async () => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 10 }));
    const at = w.clock.advance(5000);
    w.source.setFlags(ALICE, 'INBOX', 'k3', ['\\Seen']);
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at });
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(await last(w.store, messageIdFor(ALICE, 'k3'))).toMatchObject({ op: 'update', start: at, flags: ['\\Seen'] });
    expect(await unwrap(w.changeLog.checkpointed())).toBe(1);
    expect(rts.stats()).toMatchObject({ received: 1, foldersRescanned: 1, foldersHinted: 0, recorded: 1, failedBatches: 0 });
    // A change without names is a relist: nothing was looked up by name.
    expect(w.source.statted).toEqual([]);
  });

  it('coalesces a burst on one folder into one rescan and records a move between two dirty folders as a move', async () => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 40 }));
    const at = w.clock.advance(5000);
    w.source.moveMessage(ALICE, 'INBOX', 'k1', '.Work');
    w.source.setFlags(ALICE, 'INBOX', 'k2', ['\\Flagged']);
    w.source.listed.length = 0;
    for (let i = 0; i < 5; i++) w.source.notify({ account: ALICE, folderKey: 'INBOX', at: at + i });
    w.source.notify({ account: ALICE, folderKey: '.Work', at: at + 5 });
    await waitFor(() => rts?.stats().checkpoint === 6);
    expect(w.source.listed.sort()).toEqual(['.Work', 'INBOX']);
    expect(await last(w.store, messageIdFor(ALICE, 'k1'))).toMatchObject({ op: 'update', folderId: folderIdFor(ALICE, '.Work'), start: at + 5 });
    expect(rts.stats().recorded).toBe(2);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('stores the blob of a new message and deletes a vanished one', async () => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 5 }));
    const at = w.clock.advance(1000);
    w.source.putMessage(ALICE, '.Work', 'n1', mail('new'));
    w.source.removeMessage(ALICE, 'INBOX', 'k0');
    w.source.notify({ account: ALICE, folderKey: '.Work', at });
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at });
    await waitFor(() => rts?.stats().checkpoint === 2);
    expect(await last(w.store, messageIdFor(ALICE, 'n1'))).toMatchObject({ op: 'create', start: at, subject: 'new' });
    expect(await last(w.store, messageIdFor(ALICE, 'k0'))).toMatchObject({ op: 'delete', start: at });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('turns an account-wide change or an unknown folder into an account scan', async () => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 5 }));
    w.source.putMessage(ALICE, '.Work', 'w1', mail('w1'));
    w.source.notify({ account: ALICE, folderKey: '.Work', at: w.clock.advance(10) });
    await waitFor(() => rts?.stats().checkpoint === 1);
    const at = w.clock.advance(1000);
    w.source.renameFolder(ALICE, '.Work', '.Job', 'Job');
    w.source.notify({ account: ALICE, at });
    await waitFor(() => rts?.stats().checkpoint === 2);
    expect(await last(w.store, folderIdFor(ALICE, '.Work'))).toMatchObject({ op: 'update', path: 'Job', start: at });
    w.source.addFolder(ALICE, '.New', 'New');
    w.source.putMessage(ALICE, '.New', 'x1', mail('x1'));
    w.source.notify({ account: ALICE, folderKey: '.New', at: at + 1 });
    await waitFor(() => rts?.stats().checkpoint === 3);
    expect(rts.stats().accountScans).toBe(2);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('runs a Safety Scan when a folder that held many messages is suddenly empty', async () => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 5 }));
    const at = w.clock.advance(1000);
    w.source.emptyFolder(ALICE, 'INBOX');
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at });
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(rts.stats().safetyScans).toBe(1);
    expect(w.warnings).toContain('Safety Scan: full Account Scan');
    expect(await last(w.store, messageIdFor(ALICE, 'k5'))).toMatchObject({ op: 'delete', start: at });
  });

  it('runs a Safety Scan when the watcher loses track', async () => {
    const told: Array<string | undefined> = [];
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs: 5, onUncertain: (a) => void told.push(a) }));
    w.clock.advance(1000);
    // A change the watcher never reported:
    w.source.setFlags(ALICE, 'INBOX', 'k7', ['\\Answered']);
    w.source.uncertain(ALICE, 'overflow');
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(told).toEqual([ALICE]);
    expect(rts.stats().safetyScans).toBe(1);
    expect(await last(w.store, messageIdFor(ALICE, 'k7'))).toMatchObject({ op: 'update', flags: ['\\Answered'] });
  });

  it('applies on start what the log holds beyond its checkpoint', async () => {
    const at = w.clock.advance(2000);
    w.source.setFlags(ALICE, 'INBOX', 'k4', ['\\Seen']);
    // As if the scanner had logged the change and died before committing it.
    await unwrap(w.changeLog.append([{ account: ALICE, folderKey: 'INBOX', at }]));
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog }));
    expect(await last(w.store, messageIdFor(ALICE, 'k4'))).toMatchObject({ op: 'update', start: at, flags: ['\\Seen'] });
    expect(await unwrap(w.changeLog.checkpointed())).toBe(1);
  });

  it('reads the account index once across batches, and again after another writer ran', async () => {
    let loads = 0;
    const store = w.store;
    const counting: MetadataStore = { ...store, forEachItemAt: (a, at, visit) => (loads++, store.forEachItemAt(a, at, visit)) };
    const locks = makeAccountLocks();
    rts = await unwrap(startRealTimeScanner({ ...w.deps, store: counting, locks, changeLog: w.changeLog, windowMs: 5 }));
    for (let i = 1; i <= 3; i++) {
      w.source.setFlags(ALICE, 'INBOX', `k${i}`, ['\\Seen']);
      w.source.notify({ account: ALICE, folderKey: 'INBOX', at: w.clock.advance(10) });
      await waitFor(() => rts?.stats().checkpoint === i);
    }
    expect(loads).toBe(1);
    // A SmartScan sharing the locks changes the account: the next batch must not trust its copy.
    w.source.putMessage(ALICE, '.Work', 'w9', mail('w9'));
    w.clock.advance(10);
    await unwrap(makeScanEngine({ ...w.deps, store: counting, locks }).smartScan());
    const afterScan = loads;
    w.source.moveMessage(ALICE, '.Work', 'w9', 'INBOX');
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at: w.clock.advance(10) });
    w.source.notify({ account: ALICE, folderKey: '.Work', at: w.clock.now() });
    await waitFor(() => rts?.stats().checkpoint === 5);
    expect(loads).toBe(afterScan + 1);
    expect(await last(w.store, messageIdFor(ALICE, 'w9'))).toMatchObject({ op: 'update', folderId: folderIdFor(ALICE, 'INBOX') });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('does not checkpoint a batch that failed, and applies it on a retry', async () => {
    let fail = true;
    const store = w.store;
    const flaky: MetadataStore = { ...store, commit: (b) => (fail ? async () => ({ _tag: 'Left', left: { _tag: 'IOError', op: 'commit', message: 'boom' } }) : store.commit(b)) };
    rts = await unwrap(startRealTimeScanner({ ...w.deps, store: flaky, changeLog: w.changeLog, windowMs: 5, retryDelayMs: 20 }));
    const at = w.clock.advance(1000);
    w.source.setFlags(ALICE, 'INBOX', 'k9', ['\\Seen']);
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at });
    await waitFor(() => (rts?.stats().failedBatches ?? 0) > 0);
    expect(await unwrap(w.changeLog.checkpointed())).toBe(0);
    fail = false;
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(await last(store, messageIdFor(ALICE, 'k9'))).toMatchObject({ op: 'update', start: at });
  });
});

describe('Real Time Scanner with per-message hints', () => {
  let w: World;
  let rts: RealTimeScanner | undefined;
  beforeEach(async () => {
    w = await makeWorld();
    rts = undefined;
  });
  afterEach(async () => {
    await rts?.stop();
    await w.close();
  });

  const start = async (windowMs = 20): Promise<RealTimeScanner> => {
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog, windowMs }));
    w.source.listed.length = 0;
    return rts;
  };

  const historyOf = async (id: ItemId): Promise<Transaction[]> => {
    const h = await unwrap(w.store.getHistory(ALICE, id));
    return O.isSome(h) ? [...h.value] : [];
  };

  it('records a flag change, a new message, a delete and moves from the named messages alone', async () => {
    await start();
    const at = w.clock.advance(5000);
    w.source.setFlags(ALICE, 'INBOX', 'k3', ['\\Seen']);
    w.source.putMessage(ALICE, '.Work', 'n1', mail('new'), { receivedAt: 1_700_000_100_000 });
    w.source.removeMessage(ALICE, 'INBOX', 'k0');
    w.source.moveMessage(ALICE, 'INBOX', 'k1', '.Work');
    // Moved under a new source key (Maildir: a new file name): found by content and date.
    w.source.moveMessage(ALICE, 'INBOX', 'k2', '.Work', 'k2-renamed');
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: ['k3'] });
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at: at + 1, names: ['k0', 'k1', 'k2'] });
    w.source.notify({ account: ALICE, folderKey: '.Work', at: at + 2, names: ['n1', 'k1', 'k2-renamed'] });
    await waitFor(() => rts?.stats().checkpoint === 3);

    expect(w.source.listed).toEqual([]);
    expect(w.source.statted.map((s) => s.folderKey).sort()).toEqual(['.Work', 'INBOX']);
    expect(rts?.stats()).toMatchObject({ foldersRescanned: 0, foldersHinted: 2, accountScans: 0, safetyScans: 0, failedBatches: 0 });
    const work = folderIdFor(ALICE, '.Work');
    expect(await last(w.store, messageIdFor(ALICE, 'k3'))).toMatchObject({ op: 'update', start: at + 2, flags: ['\\Seen'] });
    expect(await last(w.store, messageIdFor(ALICE, 'n1'))).toMatchObject({ op: 'create', start: at + 2, subject: 'new', folderId: work });
    expect(await last(w.store, messageIdFor(ALICE, 'k0'))).toMatchObject({ op: 'delete', start: at + 2 });
    // Moves keep the id: one update each, never a delete and a create.
    for (const [id, key] of [[messageIdFor(ALICE, 'k1'), 'k1'], [messageIdFor(ALICE, 'k2'), 'k2-renamed']] as const) {
      const h = await historyOf(id);
      expect(h.map((t) => t.op)).toEqual(['create', 'update']);
      expect(h[1]).toMatchObject({ folderId: work, sourceKey: key, start: at + 2 });
    }
    expect(await historyOf(messageIdFor(ALICE, 'k2-renamed'))).toEqual([]);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('records a move to a folder whose change named its messages, from a folder that is relisted', async () => {
    await start();
    const at = w.clock.advance(1000);
    w.source.moveMessage(ALICE, 'INBOX', 'k5', '.Work');
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at }); // no names: relisted
    w.source.notify({ account: ALICE, folderKey: '.Work', at, names: ['k5'] });
    await waitFor(() => rts?.stats().checkpoint === 2);
    expect(w.source.listed).toEqual(['INBOX']);
    expect(rts?.stats()).toMatchObject({ foldersRescanned: 1, foldersHinted: 1 });
    expect((await historyOf(messageIdFor(ALICE, 'k5'))).map((t) => t.op)).toEqual(['create', 'update']);
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('relists a folder when one of its coalesced changes named nothing', async () => {
    await start(40);
    const at = w.clock.advance(1000);
    w.source.setFlags(ALICE, 'INBOX', 'k1', ['\\Flagged']);
    w.source.setFlags(ALICE, 'INBOX', 'k2', ['\\Flagged']); // its change names nothing
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: ['k1'] });
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at: at + 1 });
    await waitFor(() => rts?.stats().checkpoint === 2);
    expect(w.source.listed).toEqual(['INBOX']);
    expect(w.source.statted).toEqual([]);
    expect(await last(w.store, messageIdFor(ALICE, 'k2'))).toMatchObject({ op: 'update', flags: ['\\Flagged'] });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('relists when one source key is present in two named folders at once', async () => {
    await start();
    const at = w.clock.advance(1000);
    // A copy under the same name: not a move.
    w.source.putMessage(ALICE, '.Work', 'k4', mail('m4'), { receivedAt: 1_700_000_000_004 });
    w.source.setFlags(ALICE, 'INBOX', 'k4', ['\\Seen']);
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: ['k4'] });
    w.source.notify({ account: ALICE, folderKey: '.Work', at, names: ['k4'] });
    await waitFor(() => rts?.stats().checkpoint === 2);
    expect(w.source.listed.sort()).toEqual(['.Work', 'INBOX']);
    expect(await last(w.store, messageIdFor(ALICE, 'k4'))).toMatchObject({ op: 'update', folderId: folderIdFor(ALICE, 'INBOX'), flags: ['\\Seen'] });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('runs a Safety Scan when the named messages are every message of a folder and all are gone', async () => {
    await start();
    const at = w.clock.advance(1000);
    w.source.emptyFolder(ALICE, 'INBOX');
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: Array.from({ length: 12 }, (_v, i) => `k${i}`) });
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(rts?.stats()).toMatchObject({ safetyScans: 1, foldersHinted: 0 });
    expect(await last(w.store, messageIdFor(ALICE, 'k5'))).toMatchObject({ op: 'delete', start: at });
  });

  it('deletes named messages without a Safety Scan while the folder keeps others', async () => {
    await start();
    const at = w.clock.advance(1000);
    const gone = Array.from({ length: 11 }, (_v, i) => `k${i}`);
    for (const k of gone) w.source.removeMessage(ALICE, 'INBOX', k);
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: gone });
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(rts?.stats()).toMatchObject({ safetyScans: 0, foldersHinted: 1, recorded: 11 });
    expect(await storeSnapshot(w.store, w.volume, ALICE, 'now')).toEqual(w.source.snapshot(ALICE));
  });

  it('relists a named folder when the source cannot look messages up', async () => {
    const { statEntries: _none, ...withoutLookup } = w.source;
    rts = await unwrap(startRealTimeScanner({ ...w.deps, source: withoutLookup, changeLog: w.changeLog, windowMs: 10 }));
    const at = w.clock.advance(1000);
    w.source.setFlags(ALICE, 'INBOX', 'k8', ['\\Seen']);
    w.source.notify({ account: ALICE, folderKey: 'INBOX', at, names: ['k8'] });
    await waitFor(() => rts?.stats().checkpoint === 1);
    expect(w.source.listed).toEqual(['INBOX']);
    expect(await last(w.store, messageIdFor(ALICE, 'k8'))).toMatchObject({ op: 'update', start: at, flags: ['\\Seen'] });
  });

  it('applies a logged change with names on start', async () => {
    const at = w.clock.advance(2000);
    w.source.setFlags(ALICE, 'INBOX', 'k6', ['\\Seen']);
    await unwrap(w.changeLog.append([{ account: ALICE, folderKey: 'INBOX', at, names: ['k6'] }]));
    rts = await unwrap(startRealTimeScanner({ ...w.deps, changeLog: w.changeLog }));
    expect(await last(w.store, messageIdFor(ALICE, 'k6'))).toMatchObject({ op: 'update', start: at, flags: ['\\Seen'] });
    expect(w.source.listed).toEqual([]);
    expect(w.source.statted).toEqual([{ folderKey: 'INBOX', keys: ['k6'] }]);
  });

  it('processes a burst of 500 flag changes in a folder of 5,000 messages without listing it', async () => {
    for (let i = 0; i < 5000; i++) w.source.putMessage(ALICE, '.Work', `b${i}`, mail(`b${i}`), { receivedAt: 1_700_000_000_000 + i });
    await unwrap(makeScanEngine(w.deps).smartScan());
    await start(30);
    const at = w.clock.advance(1000);
    for (let i = 0; i < 500; i++) {
      const key = `b${i * 10}`;
      w.source.setFlags(ALICE, '.Work', key, ['\\Seen']);
      w.source.notify({ account: ALICE, folderKey: '.Work', at: at + i, names: [key] });
    }
    await waitFor(() => rts?.stats().checkpoint === 500, 30_000);
    expect(w.source.listed).toEqual([]);
    expect(rts?.stats()).toMatchObject({ foldersRescanned: 0, recorded: 500, failedBatches: 0 });
    // Only the named messages were looked up.
    expect(new Set(w.source.statted.flatMap((s) => s.keys)).size).toBe(500);
    expect(await last(w.store, messageIdFor(ALICE, 'b4990'))).toMatchObject({ op: 'update', flags: ['\\Seen'] });
    expect(await last(w.store, messageIdFor(ALICE, 'b4991'))).toMatchObject({ op: 'create', flags: [] });
  }, 60_000);
});

describe('Real Time Scanner on a real Maildir tree', () => {
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('records flag changes, deliveries, moves and deletions from the watcher\'s names, without listing a folder', async () => {
    const { dir: root, cleanup } = makeTempDir('zxb-rts-tree-');
    cleanups.push(cleanup);
    const { store, close } = await openTempStore();
    cleanups.push(close);
    const { dir: logDir, cleanup: logCleanup } = makeTempDir('zxb-rts-log-');
    cleanups.push(logCleanup);
    const changeLog = await unwrap(openChangeLog(logDir, LiveChangeRecord));
    cleanups.push(async () => void (await changeLog.close()()));
    const maildir = maildirOf(root, ALICE);
    const keys: string[] = [];
    for (let i = 0; i < 30; i++) keys.push(await deliver(root, ALICE, i % 3 === 0 ? 'Projects' : 'INBOX', mail(`t${i}`), i % 2 === 0 ? ['\\Seen'] : [], 1_700_000_000_000 + i * 1000));
    const maildirSource = makeMaildirSource({ root });
    const listed: string[] = [];
    const source: Source = { ...maildirSource, listFolder: (a, k) => (listed.push(k), maildirSource.listFolder(a, k)) };
    const volume = makeMemoryVolume();
    const deps: EngineDeps = { store, volume, source, txIds: makeCounterTxIds() };
    await unwrap(makeScanEngine(deps).smartScan());
    const scanner = await unwrap(startRealTimeScanner({ ...deps, changeLog, windowMs: 20 }));
    cleanups.push(() => scanner.stop());

    const [k0, k1, k2, k3, k4, k5] = keys as [string, string, string, string, string, string];
    await setFlagLetters(maildir, '', k1, 'FS');
    await setFlagLetters(maildir, '.Projects', k0, 'R');
    await moveFile(maildir, '', k2, '.Projects');
    await moveFile(maildir, '.Projects', k3, '');
    await removeFile(maildir, '', k4);
    const fresh = await deliver(root, ALICE, 'Projects', mail('fresh'), [], 1_700_000_100_000);
    await setFlagLetters(maildir, '', k5, 'S');
    const want = await treeSnapshot(root, ALICE, maildirSource);
    const canonical = (snap: Record<string, unknown>): string => JSON.stringify(Object.entries(snap).sort(([x], [y]) => x.localeCompare(y)));
    await waitFor(async () => canonical(await storeSnapshot(store, volume, ALICE, 'now')) === canonical(want), 10_000);
    await waitFor(() => scanner.stats().checkpoint === scanner.stats().received);
    expect(listed).toEqual([]);
    expect(scanner.stats()).toMatchObject({ foldersRescanned: 0, accountScans: 0, safetyScans: 0, failedBatches: 0 });
    expect(scanner.stats().foldersHinted).toBeGreaterThan(0);
    for (const moved of [k2, k3]) {
      const h = await unwrap(store.getHistory(ALICE, messageIdFor(ALICE, moved)));
      expect(O.isSome(h) && h.value.map((t) => t.op)).toEqual(['create', 'update']);
    }
    expect(await last(store, messageIdFor(ALICE, k4))).toMatchObject({ op: 'delete' });
    expect(await last(store, messageIdFor(ALICE, fresh))).toMatchObject({ op: 'create', subject: 'fresh' });
  }, 30_000);
});
