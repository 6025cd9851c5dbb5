import * as O from 'fp-ts/Option';
import type { AccountId, ItemId, MetadataStore, Transaction } from '@zxbackup/item-store';
import { openChangeLog, type ChangeLog } from '@zxbackup/transaction-log';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import { makeFakeSource, type FakeSource } from '../testing/fake-source';
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
    expect(rts.stats()).toMatchObject({ received: 1, foldersRescanned: 1, recorded: 1, failedBatches: 0 });
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
