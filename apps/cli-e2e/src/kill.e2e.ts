import { join } from 'node:path';
import { diffAccount, drillAccount, generateCorpus, makeWorkDir, messageCount, mutateCorpus, removeWorkDir, snapshotMaildirTree, type MaildirSnapshot } from './lib/corpus';
import {
  assertCliBuilt,
  describeRun,
  need,
  sleep,
  startCli,
  startRealTimeScanner,
  stopWith,
  waitUntilScannerSettles,
  zxAfterKill,
  zxJson,
  type Background,
  type OperationView,
  type RestoreSummary,
  type ScanSummary,
  type SearchHit,
} from './lib/zxbackup';

/*
 * Kill tests: SIGKILL (no clean-up, as a crash or the OOM killer) in the middle of a first
 * SmartScan and right after a burst of live changes. After a rerun / restart, a restore of
 * every account at "last" must equal the tree: nothing lost, nothing duplicated.
 */

describe('zxbackup killed with SIGKILL loses nothing', () => {
  let work: string;
  let mail: string;
  let bp: string;
  let drills = 0;
  let scanner: Background | undefined;

  beforeAll(() => {
    assertCliBuilt();
    work = makeWorkDir('kill');
    mail = join(work, 'mail');
    bp = join(work, 'backup');
    generateCorpus(mail, { messages: 1200, domains: 2, users: 4, seed: 'e2e-kill', maxSize: 1_000_000 });
  });

  afterAll(async () => {
    if (scanner?.isRunning()) await stopWith(scanner, 'SIGKILL');
    removeWorkDir(work);
  });

  /** Restores every account at "last" into a fresh drill tree and compares it with `expected`. */
  const expectBackupEquals = async (expected: MaildirSnapshot): Promise<void> => {
    const drill = join(work, `drill-${++drills}`);
    const accounts = Object.keys(expected);
    for (const account of accounts) {
      const r = await zxJson<RestoreSummary>(bp, ['doRestoreOnNewAccount', account, drillAccount(account, 'r'), 'last', '--target', `maildir:${drill}`]);
      expect({ account, messages: r.messages }).toEqual({ account, messages: messageCount(expected, account) });
    }
    const tree = snapshotMaildirTree(drill);
    for (const account of accounts) expect({ account, diff: diffAccount(expected, account, tree, drillAccount(account, 'r')) }).toEqual({ account, diff: [] });
  };

  it('a first SmartScan killed midway is marked interrupted, and a rerun completes it without loss or duplicates', async () => {
    const tree = snapshotMaildirTree(mail);
    const scan = startCli(bp, ['doSmartScan', 'start', '--source', `maildir:${mail}`]);
    const started = await scan.waitForStderr(/SmartScan started: operation ([0-9a-f-]{36})/, 60_000);
    const operation = need(started[1], 'the operation id');
    // Kill as soon as the progress (a plain line every 2 s) shows messages being copied.
    await scan.waitForStderr(/ messages [1-9]\d* /, 120_000);
    expect(scan.isRunning()).toBe(true);
    const killed = await stopWith(scan, 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');

    const rerun = await zxAfterKill(bp, ['--json', 'doSmartScan', 'start']);
    if (rerun.code !== 0) throw new Error(describeRun(rerun));
    const summary = JSON.parse(rerun.stdout) as ScanSummary;
    expect(summary.failures).toEqual([]);

    const ops = await zxJson<OperationView[]>(bp, ['getAllOperations']);
    expect(ops.find((o) => o.id === operation)).toEqual(expect.objectContaining({ kind: 'SmartScan', state: 'interrupted' }));
    expect(ops.find((o) => o.id === summary.operation)).toEqual(expect.objectContaining({ state: 'succeeded' }));

    for (const account of Object.keys(tree)) {
      // A message copied twice (once by each run) would show as an extra item, live or deleted.
      const items = await zxJson<SearchHit[]>(bp, ['doItemSearch', account, '--type', 'message', '--search-filter', 'all', '--limit', '100000']);
      const deleted = items.filter((h) => h.deletedAt !== undefined && h.deletedAt !== null).length;
      expect({ account, live: items.length - deleted, deleted }).toEqual({ account, live: messageCount(tree, account), deleted: 0 });
    }
    await expectBackupEquals(tree);
  });

  it('the Real Time Scanner killed right after a burst of changes, once restarted, has recorded them all', async () => {
    scanner = await startRealTimeScanner(bp);
    const burst = mutateCorpus({ root: mail, fraction: 0.1, seed: 'e2e-burst', renameFolder: true, renameFrom: 'Drafts', renameTo: 'Old Drafts' });
    expect(burst.totals.changed + burst.totals.moved + burst.totals.deleted + burst.totals.new).toBeGreaterThan(50);
    // Mid-event: the watcher has seen (some of) the burst, batches are in flight.
    await sleep(300);
    const killed = await stopWith(scanner, 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    const tree = snapshotMaildirTree(mail);

    scanner = await startRealTimeScanner(bp);
    await waitUntilScannerSettles(scanner, { requireChanges: false });
    const stopped = await stopWith(scanner, 'SIGTERM');
    expect({ code: stopped.code, stderr: stopped.code === 0 ? '' : stopped.stderr }).toEqual({ code: 0, stderr: '' });
    await expectBackupEquals(tree);
  });
});
