import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { generateCorpus, makeWorkDir, removeWorkDir, snapshotMaildirTree } from './lib/corpus';
import { assertCliBuilt, CLI, describeRun, need, startRealTimeScanner, stopWith, zx, zxJson, type Background, type CliResult, type OperationView, type ScanSummary } from './lib/zxbackup';

/*
 * What an administrator sees when something is wrong: one line on stderr starting with
 * "zxbackup: ", and the exit code documented under EXIT STATUS in `zxbackup --help`.
 * And the `--json` output that scripts parse.
 */

const EXIT = { usage: 2, backupPath: 3, busy: 4, notFound: 5 } as const;

const expectOneLineError = (r: CliResult, code: number, pattern: RegExp): void => {
  const lines = r.stderr.trim().split('\n');
  expect({ code: r.code, lines: lines.length, first: lines[0] }).toEqual({ code, lines: 1, first: expect.stringMatching(/^zxbackup: /) });
  if (!pattern.test(r.stderr)) throw new Error(`expected the message to match ${pattern}:\n${describeRun(r)}`);
};

describe('zxbackup errors and --json output', () => {
  let work: string;
  let mail: string;
  let bp: string;
  let accounts: string[];
  let account: string;
  let scan: ScanSummary;
  let scanner: Background | undefined;

  beforeAll(async () => {
    assertCliBuilt();
    work = makeWorkDir('errors');
    mail = join(work, 'mail');
    bp = join(work, 'backup');
    generateCorpus(mail, { messages: 40, domains: 1, users: 2, seed: 'e2e-errors', maxSize: 200_000 });
    accounts = Object.keys(snapshotMaildirTree(mail)).sort();
    account = need(accounts[0], 'an account');
    scan = await zxJson<ScanSummary>(bp, ['doSmartScan', 'start', '--source', `maildir:${mail}`]);
  });

  afterAll(async () => {
    if (scanner?.isRunning()) await stopWith(scanner, 'SIGKILL');
    removeWorkDir(work);
  });

  it('a bad date is a usage error (exit 2)', async () => {
    const drill = `maildir:${join(work, 'drill')}`;
    expectOneLineError(await zx(bp, ['doRestoreOnNewAccount', account, 'new@alpha.test', '31/02/2026 10:00:00', '--target', drill]), EXIT.usage, /date/);
    expectOneLineError(await zx(bp, ['doRestoreOnNewAccount', account, 'new@alpha.test', 'yesterday', '--target', drill]), EXIT.usage, /not a date/);
    expectOneLineError(await zx(bp, ['doUndelete', account, 'first', '2026-13-45']), EXIT.usage, /end/);
  });

  it('an unknown attribute is a usage error (exit 2) that lists the known ones', async () => {
    expectOneLineError(await zx(bp, ['config', 'set', 'ZxBackup_NoSuchAttribute', '1']), EXIT.usage, /unknown attribute .*ZxBackup_Source/);
    expectOneLineError(await zx(bp, ['config', 'get', 'ZxBackup_NoSuchAttribute']), EXIT.usage, /unknown attribute/);
  });

  it('a missing account, item or operation is "not found" (exit 5)', async () => {
    const drill = `maildir:${join(work, 'drill-missing')}`;
    const cases: Array<readonly [string, ReadonlyArray<string>, RegExp]> = [
      ['getAccountInfo', ['getAccountInfo', 'nobody@alpha.test'], /nobody@alpha\.test/],
      ['doRestoreOnNewAccount', ['doRestoreOnNewAccount', 'nobody@alpha.test', 'nobody.r@alpha.test', 'last', '--target', drill], /nobody@alpha\.test/],
      ['getItem', ['getItem', account, 'm0000000000000000'], /m0000000000000000/],
      ['doItemRestore', ['doItemRestore', account, 'm0000000000000000', '--target', drill], /m0000000000000000/],
      ['monitor', ['monitor', '00000000-0000-4000-8000-000000000000'], /00000000-0000-4000-8000-000000000000/],
    ];
    const results: Array<{ readonly name: string; readonly result: CliResult; readonly pattern: RegExp }> = [];
    for (const [name, args, pattern] of cases) results.push({ name, result: await zx(bp, args), pattern });
    // All exit codes in one comparison, so one wrong mapping does not hide another.
    expect(Object.fromEntries(results.map((r) => [r.name, r.result.code]))).toEqual(Object.fromEntries(results.map((r) => [r.name, EXIT.notFound])));
    for (const r of results) expectOneLineError(r.result, EXIT.notFound, r.pattern);

    const json = await zx(bp, ['--json', 'monitor', '00000000-0000-4000-8000-000000000000']);
    expect(json.code).toBe(EXIT.notFound);
    expect(JSON.parse(json.stdout)).toEqual({ error: { kind: 'NotFound', message: expect.any(String) } });
  });

  it('an account name that is not an address is a usage error (exit 2)', async () => {
    expectOneLineError(await zx(bp, ['getAccountInfo', 'not-an-address']), EXIT.usage, /not-an-address/);
  });

  it('a reader that closes the pipe early ends the command quietly (no EPIPE trace, exit 0)', async () => {
    // The read end closes before the CLI writes anything (it starts in ~100 ms): its first
    // write to stdout fails with EPIPE, as in `zxbackup getAvailableAccounts | head -0`.
    const child = spawn(process.execPath, [CLI, '--backup-path', bp, 'getAvailableAccounts'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('a backup path that does not exist is exit 3', async () => {
    expectOneLineError(await zx(join(work, 'no-such-backup'), ['getAllOperations']), EXIT.backupPath, /no-such-backup/);
  });

  it('getAllOperations, monitor and getAvailableAccounts print parseable JSON', async () => {
    const ops = await zxJson<OperationView[]>(bp, ['getAllOperations']);
    expect(ops).toEqual(expect.arrayContaining([expect.objectContaining({ id: scan.operation, kind: 'SmartScan', state: 'succeeded' })]));
    expect(await zxJson<OperationView>(bp, ['monitor', scan.operation])).toEqual(expect.objectContaining({ id: scan.operation, state: 'succeeded' }));
    const listed = await zxJson<Array<{ account: string; items: number }>>(bp, ['getAvailableAccounts']);
    expect(listed.map((a) => a.account).sort()).toEqual(accounts);
    for (const a of listed) expect(a.items).toBeGreaterThan(0);
  });

  it('a second writer while realTimeScanner run holds the backup path is refused (exit 4), naming the holder', async () => {
    scanner = await startRealTimeScanner(bp);
    expectOneLineError(await zx(bp, ['doSmartScan', 'start']), EXIT.busy, new RegExp(`process ${scanner.pid}\\b`));
    expectOneLineError(await zx(bp, ['doAccountScan', account]), EXIT.busy, new RegExp(`process ${scanner.pid}\\b`));
    const stopped = await stopWith(scanner, 'SIGTERM');
    expect(stopped.code).toBe(0);
    // Once it stopped, the path is free again.
    expect((await zxJson<ScanSummary>(bp, ['doSmartScan', 'start'])).failures).toEqual([]);
  });
});
