import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  accountAs,
  deletedMessages,
  diffAccount,
  diffSnapshots,
  drillAccount,
  generateCorpus,
  listMaildirTree,
  makeWorkDir,
  messageCount,
  mutateCorpus,
  removeWorkDir,
  snapshotMaildirTree,
  withMessages,
  type DeletedMessage,
  type MaildirSnapshot,
  type MutationSummary,
} from './lib/corpus';
import {
  assertCliBuilt,
  describeRun,
  iso,
  need,
  quietInstant,
  startRealTimeScanner,
  stopWith,
  waitUntilScannerSettles,
  zx,
  zxJson,
  type Background,
  type RealTimeStats,
  type RestoreSummary,
  type ScanSummary,
  type SearchHit,
  type UndeleteSummary,
} from './lib/zxbackup';

/*
 * The product's main promise, end to end on a generated Maildir tree: a first SmartScan, live
 * changes recorded by the Real Time Scanner, more changes recorded by a second SmartScan, then
 * every account restored at three instants equals the tree as it was at each (bytes, flags,
 * keywords, folders, received dates). Then the deleted messages: search, blob dump, undelete,
 * and the "latest state of an emptied folder" corner case. The steps share one backup path
 * and run in order; each says what it needs from the previous ones.
 */

const ddmmyy = (ms: number): string => {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}_${two(d.getUTCMonth() + 1)}_${two(d.getUTCFullYear() % 100)}`;
};

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('zxbackup round trip: SmartScan, Real Time Scanner, second SmartScan, restore at three instants', () => {
  let work: string;
  let mail: string;
  let bp: string;
  let accounts: string[] = [];
  /** The account whose Trash is emptied and Archive renamed while the Real Time Scanner runs. */
  let emptied: string;
  /** The account whose Sent is renamed before the second SmartScan. */
  let renamed: string;
  const instants: Array<{ readonly name: string; readonly at: number; readonly snapshot: MaildirSnapshot }> = [];
  const deleted: DeletedMessage[] = [];
  let m1: MutationSummary | undefined;
  let scanner: Background | undefined;

  beforeAll(() => {
    assertCliBuilt();
    work = makeWorkDir('round-trip');
    mail = join(work, 'mail');
    bp = join(work, 'backup');
    const summary = generateCorpus(mail, { messages: 480, domains: 2, users: 4, seed: 'e2e-round-trip', maxSize: 1_500_000 });
    expect(summary.messages).toBe(480);
  });

  afterAll(async () => {
    if (scanner?.isRunning()) await stopWith(scanner, 'SIGKILL');
    removeWorkDir(work);
  });

  it('the first SmartScan initializes the backup path and copies every message', async () => {
    const set = await zx(bp, ['config', 'set', 'ZxBackup_Source', `maildir:${mail}`]);
    expect({ code: set.code, stderr: set.stderr }).toEqual({ code: 0, stderr: '' });

    const scan = await zxJson<ScanSummary>(bp, ['doSmartScan', 'start']);
    const s0 = snapshotMaildirTree(mail);
    accounts = Object.keys(s0);
    expect(accounts.length).toBe(4);
    expect(scan.failures).toEqual([]);
    expect(scan.accounts).toBe(4);
    expect(scan.messagesRead).toBe(messageCount(s0));
    expect(scan.created).toBeGreaterThan(messageCount(s0));

    const info = await zxJson<{ firstRunAt: number | null; lastSmartScanAt: number | null; accounts: number }>(bp, ['getBackupInfo']);
    expect(info.firstRunAt).not.toBeNull();
    expect(info.lastSmartScanAt).not.toBeNull();

    const trashOf = (a: string): number => s0[a]?.['Trash']?.length ?? 0;
    emptied = need([...accounts].sort((a, b) => trashOf(b) - trashOf(a))[0], 'an account');
    renamed = need(
      accounts.find((a) => a !== emptied),
      'a second account',
    );
    instants.push({ name: 'T0', at: await quietInstant(), snapshot: s0 });
  });

  it('the Real Time Scanner records flag changes, moves, deletes, new mail, a folder rename and an emptied folder', async () => {
    const t0 = need(instants[0], 'T0');
    scanner = await startRealTimeScanner(bp);
    const before = listMaildirTree(mail, { hash: true });
    m1 = mutateCorpus({ root: mail, fraction: 0.06, seed: 'e2e-live', renameFolder: true, emptyFolder: true, account: emptied });
    expect(m1.totals.changed + m1.totals.moved + m1.totals.deleted + m1.totals.new).toBeGreaterThan(10);
    expect(m1.renamedFolders).toHaveLength(1);
    expect(m1.emptiedFolders).toEqual([expect.objectContaining({ account: emptied, folder: 'Trash' })]);
    deleted.push(...deletedMessages(before, m1, emptied));

    await waitUntilScannerSettles(scanner);
    const s1 = snapshotMaildirTree(mail);
    expect(diffSnapshots(t0.snapshot, s1).length).toBeGreaterThan(0);
    instants.push({ name: 'T1', at: await quietInstant(), snapshot: s1 });

    const stopped = await stopWith(scanner, 'SIGTERM');
    expect({ code: stopped.code, signal: stopped.signal }).toEqual({ code: 0, signal: null });
    const stats = JSON.parse(stopped.stdout) as RealTimeStats;
    expect(stats.received).toBeGreaterThan(0);
    expect(stats.recorded).toBeGreaterThan(0);
    // An emptied folder of 10 messages or more is what the scanner cannot tell from a burst of deletes: a Safety Scan.
    if (need(m1.emptiedFolders[0], 'the emptied folder').count >= 10) expect(stats.accountScans).toBeGreaterThan(0);
  });

  it('a second SmartScan records further changes and skips the unchanged folders', async () => {
    need(instants[1], 'T1');
    const before = listMaildirTree(mail, { hash: true });
    const m2 = mutateCorpus({ root: mail, fraction: 0.05, seed: 'e2e-smart', renameFolder: true, renameFrom: 'Sent', renameTo: 'Sent Items', account: renamed });
    expect(m2.renamedFolders).toEqual([expect.objectContaining({ account: renamed, from: 'Sent', to: 'Sent Items' })]);
    deleted.push(...deletedMessages(before, m2, emptied));

    const scan = await zxJson<ScanSummary>(bp, ['doSmartScan', 'start']);
    expect(scan.failures).toEqual([]);
    expect(scan.foldersSkipped).toBeGreaterThan(0);
    expect(scan.foldersRenamed).toBeGreaterThanOrEqual(1);
    expect(scan.recorded).toBeGreaterThan(0);
    expect(scan.created).toBe(m2.totals.new);
    expect(scan.deleted).toBe(m2.totals.deleted);
    instants.push({ name: 'T2', at: await quietInstant(), snapshot: snapshotMaildirTree(mail) });
  });

  it('a SmartScan with nothing changed records nothing', async () => {
    need(instants[2], 'T2');
    const scan = await zxJson<ScanSummary>(bp, ['doSmartScan', 'start']);
    expect(scan.failures).toEqual([]);
    expect({ recorded: scan.recorded, created: scan.created, updated: scan.updated, moved: scan.moved, deleted: scan.deleted }).toEqual({
      recorded: 0,
      created: 0,
      updated: 0,
      moved: 0,
      deleted: 0,
    });
    expect(scan.foldersSkipped).toBeGreaterThan(0);
  });

  it.each([0, 1, 2])('every account restored at T%i equals the tree as it was then', async (i) => {
    const instant = need(instants[i], `instant T${i}`);
    const drill = join(work, `drill-${instant.name}`);
    for (const account of accounts) {
      const restored = await zxJson<RestoreSummary>(bp, ['doRestoreOnNewAccount', account, drillAccount(account, instant.name.toLowerCase()), iso(instant.at), '--target', `maildir:${drill}`]);
      expect(restored.messages).toBe(messageCount(instant.snapshot, account));
    }
    const tree = snapshotMaildirTree(drill);
    expect(Object.keys(tree).sort()).toEqual(accounts.map((a) => drillAccount(a, instant.name.toLowerCase())).sort());
    for (const account of accounts) {
      expect({ account, diff: diffAccount(instant.snapshot, account, tree, drillAccount(account, instant.name.toLowerCase())) }).toEqual({ account, diff: [] });
    }
  });

  it('doItemSearch finds the deleted messages and getItem --dump-blob gives their exact bytes', async () => {
    const t2 = need(instants[2], 'T2');
    expect(deleted.length).toBeGreaterThan(0);
    const hits = await zxJson<SearchHit[]>(bp, ['doItemSearch', emptied, '--type', 'message', '--search-filter', 'deleted']);
    expect(hits).toHaveLength(deleted.length);
    for (const hit of hits) expect(hit.deletedAt).toEqual(expect.any(Number));
    // Each dump is a process (about a second of CPU): a spread-out sample of them.
    const sample = hits.filter((_, i) => i % Math.ceil(hits.length / 5) === 0);
    const remaining = deleted.map((d) => d.message.sha256);
    for (const hit of sample) {
      const r = await zx(bp, ['getItem', emptied, hit.itemId, '--date', String(need(hit.deletedAt, 'deletedAt') - 1), '--dump-blob']);
      if (r.code !== 0) throw new Error(describeRun(r));
      const digest = sha256(r.stdoutBytes);
      const at = remaining.indexOf(digest);
      expect({ itemId: hit.itemId, bytes: r.stdoutBytes.length, isADeletedFile: at >= 0 }).toEqual({ itemId: hit.itemId, bytes: r.stdoutBytes.length, isADeletedFile: true });
      remaining.splice(at, 1);
    }

    const live = await zxJson<SearchHit[]>(bp, ['doItemSearch', emptied, '--type', 'message', '--search-filter', 'not_deleted']);
    expect(live).toHaveLength(messageCount(t2.snapshot, emptied));
  });

  it('restoring "last" of the account whose folder was emptied gives the emptied folder; --undelete brings the messages back', async () => {
    const t2 = need(instants[2], 'T2');
    const emptiedFolder = need(need(m1, 'live changes').emptiedFolders[0], 'the emptied folder').folder;
    const drill = join(work, 'drill-last');
    const latest = await zxJson<RestoreSummary>(bp, ['doRestoreOnNewAccount', emptied, drillAccount(emptied, 'last'), 'last', '--target', `maildir:${drill}`]);
    expect(latest.undeleted).toBe(0);
    const tree = snapshotMaildirTree(drill);
    expect(tree[drillAccount(emptied, 'last')]?.[emptiedFolder]).toEqual([]);
    expect(diffAccount(t2.snapshot, emptied, tree, drillAccount(emptied, 'last'))).toEqual([]);

    const legal = await zxJson<RestoreSummary>(bp, ['doRestoreOnNewAccount', emptied, drillAccount(emptied, 'legal'), 'last', '--undelete', '--target', `maildir:${drill}`]);
    expect(legal.undeleted).toBe(deleted.length);
    const expected = withMessages(
      t2.snapshot,
      emptied,
      deleted.map((d) => ({ folder: d.folder, message: { ...d.message, flags: d.message.flags.filter((f) => f !== '\\Deleted') } })),
    );
    expect(diffAccount(expected, emptied, snapshotMaildirTree(drill), drillAccount(emptied, 'legal'))).toEqual([]);
  });

  it('doUndelete brings deleted messages back into their folders, tagged undelete_DD_MM_YY without \\Deleted, and never twice', async () => {
    const t0 = need(instants[0], 'T0');
    const t2 = need(instants[2], 'T2');
    const first = await zxJson<UndeleteSummary>(bp, ['doUndelete', emptied, iso(t0.at), 'last']);
    const keyword = `undelete_${ddmmyy(Date.now())}`;
    expect({ restored: first.restored, skipped: first.skipped }).toEqual({ restored: deleted.length, skipped: 0 });
    const expected = withMessages(
      t2.snapshot,
      emptied,
      deleted.map((d) => ({
        folder: d.folder,
        message: { ...d.message, flags: [...d.message.flags.filter((f) => f !== '\\Deleted'), keyword].sort() },
      })),
    );
    const after = snapshotMaildirTree(mail);
    expect(diffSnapshots(expected, accountAs(after, emptied, emptied))).toEqual([]);
    // The other accounts are untouched.
    for (const account of accounts.filter((a) => a !== emptied)) expect(diffAccount(t2.snapshot, account, after, account)).toEqual([]);

    const second = await zxJson<UndeleteSummary>(bp, ['doUndelete', emptied, iso(t0.at), 'last']);
    expect({ restored: second.restored, skipped: second.skipped }).toEqual({ restored: 0, skipped: deleted.length });
    expect(diffSnapshots(after, snapshotMaildirTree(mail))).toEqual([]);
  });
});
