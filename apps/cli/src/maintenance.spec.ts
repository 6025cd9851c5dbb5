import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXIT_CODES } from './lib/exit-codes';
import { runInProcess } from './run-in-process.spec-helper';

const DAY = 24 * 3600 * 1000;

/** The CLI in-process against a real on-disk backup path, with a clock the test sets. */
const makeCli = (backup: string) => {
  let now = Date.now();
  const run = (...argv: string[]) => runInProcess(['--backup-path', backup, ...argv], () => now);
  return { run, setNow: (t: number) => (now = t) };
};

const message = (subject: string, body: string) => `From: a@example.test\nSubject: ${subject}\n\n${body}\n`;

const blobFiles = (items: string): string[] =>
  fs
    .readdirSync(items)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => fs.readdirSync(path.join(items, d)).map((f) => path.join(items, d, f)));

describe('doPurge and doCoherencyCheck on a real backup path', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-maint-'));
    process.env['ZXBACKUP_SERVER_ID'] = 'maintenance-spec';
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('purges what is past retention only, and finds, reports and mends a damaged blob', async () => {
    const maildir = path.join(dir, 'vmail', 'example.test', 'alice', 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) fs.mkdirSync(path.join(maildir, sub), { recursive: true });
    const keep = path.join(maildir, 'cur', '1700000000.M1P1.h:2,S');
    const gone = path.join(maildir, 'cur', '1700000001.M2P1.h:2,S');
    fs.writeFileSync(keep, message('keep me', 'x'.repeat(5000)));
    fs.writeFileSync(gone, message('delete me', 'y'.repeat(5000)));
    const backup = path.join(dir, 'backup');
    const cli = makeCli(backup);
    const t0 = Date.now();

    expect((await cli.run('doSmartScan', 'start', '--source', `maildir:${path.join(dir, 'vmail')}`)).code).toBe(0);
    fs.unlinkSync(gone);
    expect((await cli.run('doSmartScan', 'start')).code).toBe(0);
    const deleted = (await cli.run('--json', 'doItemSearch', 'alice@example.test', '--search-filter', 'deleted')).json() as unknown as { itemId: string }[];
    expect(deleted).toHaveLength(1);

    // Infinite retention: the purge exits at once.
    await cli.run('config', 'set', 'ZxBackup_DataRetentionDays', '0');
    await cli.run('config', 'set', 'ZxBackup_AccountRetentionDays', '0');
    const infinite = await cli.run('doPurge');
    expect(infinite.code).toBe(0);
    expect(infinite.out).toMatch(/infinite retention/i);

    // 30 days of retention; 29 days later nothing goes, 31 days later the deleted item goes.
    await cli.run('config', 'set', 'ZxBackup_DataRetentionDays', '30');
    await cli.run('config', 'set', 'ZxBackup_AccountRetentionDays', '30');
    cli.setNow(t0 + 29 * DAY);
    expect((await cli.run('--json', 'doPurge')).json()).toMatchObject({ itemsRemoved: 0 });
    cli.setNow(t0 + 31 * DAY);
    const dry = await cli.run('doPurge', '--dry-run');
    expect(dry.code).toBe(0);
    expect((await cli.run('--json', 'doItemSearch', 'alice@example.test', '--search-filter', 'deleted')).json()).toHaveLength(1);
    const purgeRun = await cli.run('--json', 'doPurge');
    if (purgeRun.code !== 0) throw new Error(purgeRun.out + purgeRun.err);
    const purged = purgeRun.json();
    expect(purged).toMatchObject({ itemsRemoved: 1 });
    expect((await cli.run('--json', 'doItemSearch', 'alice@example.test', '--search-filter', 'deleted')).json()).toHaveLength(0);
    // What is within retention still restores, byte for byte.
    const restored = await cli.run('doRestoreOnNewAccount', 'alice@example.test', 'alice.r@example.test', 'last', '--target', `maildir:${path.join(dir, 'drill')}`);
    expect(restored.code).toBe(0);
    const drillCur = path.join(dir, 'drill', 'example.test', 'alice.r', 'Maildir', 'cur');
    expect(fs.readdirSync(drillCur).map((f) => fs.readFileSync(path.join(drillCur, f), 'utf8'))).toEqual([fs.readFileSync(keep, 'utf8')]);

    // A clean backup checks clean, deep included.
    expect((await cli.run('doCoherencyCheck', '--deep')).code).toBe(0);

    // Flip a byte in the remaining blob: a plain check does not read it, a deep one finds it.
    const [blob] = blobFiles(path.join(backup, 'items'));
    if (blob === undefined) throw new Error('the scan stored no blob');
    const bytes = fs.readFileSync(blob);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0x55;
    fs.writeFileSync(blob, bytes);
    const found = await cli.run('--json', 'doCoherencyCheck', '--deep');
    expect(found.code).toBe(EXIT_CODES.Problems);
    expect(JSON.stringify(found.json())).toContain('blob-corrupt');

    // --fix fetches the message again from the source (it still exists there), then all is clean.
    const fixed = await cli.run('--json', 'doCoherencyCheck', '--deep', '--fix');
    expect((fixed.json()['fix'] as { mended: string[] }).mended).toHaveLength(1);
    expect((await cli.run('doCoherencyCheck', '--deep')).code).toBe(0);
  }, 120_000);
});
