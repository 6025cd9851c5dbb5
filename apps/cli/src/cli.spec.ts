import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EXIT_CODES } from './lib/exit-codes';
import { runInProcess } from './run-in-process.spec-helper';

const zxbackup = (argv: string[]) => runInProcess(argv, () => Date.UTC(2026, 10, 26));

describe('zxbackup (in-process)', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'zxb-cli-'));
    process.env['ZXBACKUP_SERVER_ID'] = 'cli-spec';
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('sets, gets and lists attributes, validating values and names', async () => {
    const bp = ['--backup-path', path.join(root, 'backup')];
    expect((await zxbackup([...bp, 'config', 'set', 'ZxBackup_DataRetentionDays', '60'])).code).toBe(0);
    const got = await zxbackup([...bp, '--json', 'config', 'get', 'zxbackup_dataretentiondays']);
    expect(JSON.parse(got.out)).toEqual({ attribute: 'ZxBackup_DataRetentionDays', value: '60', isDefault: false });
    const listed = JSON.parse((await zxbackup([...bp, '--json', 'config', 'list'])).out) as { attribute: string; value: string; isDefault: boolean }[];
    expect(listed.find((r) => r.attribute === 'ZxBackup_AccountRetentionDays')).toEqual({ attribute: 'ZxBackup_AccountRetentionDays', value: '30', isDefault: true });

    const bad = await zxbackup([...bp, 'config', 'set', 'ZxBackup_DataRetentionDays', 'soon']);
    expect(bad.code).toBe(EXIT_CODES.Usage);
    expect(bad.err).toMatch(/ZxBackup_DataRetentionDays: "soon" is not valid/);
    const unknown = await zxbackup([...bp, 'config', 'set', 'ZxBackup_Nope', '1']);
    expect(unknown.code).toBe(EXIT_CODES.Usage);
    expect(unknown.err).toContain('unknown attribute "ZxBackup_Nope"');
    const relative = await zxbackup([...bp, 'config', 'set', 'ZxBackup_Source', 'maildir:vmail']);
    expect(relative.code).toBe(EXIT_CODES.Usage);
  });

  it('marks a SmartScan as required when the Real Time Scanner is re-enabled', async () => {
    const bp = ['--backup-path', path.join(root, 'backup')];
    await zxbackup([...bp, 'config', 'set', 'ZxBackup_RealTimeScanner', 'FALSE']);
    const on = await zxbackup([...bp, '--json', 'config', 'set', 'ZxBackup_RealTimeScanner', 'true']);
    expect(JSON.parse(on.out)).toEqual({ attribute: 'ZxBackup_RealTimeScanner', value: 'TRUE', smartScanRequired: true });
    expect(on.err).toContain('a SmartScan is required');
  });

  it('gives one clear line and the documented exit code for bad input and missing things', async () => {
    const bp = ['--backup-path', path.join(root, 'nothing-here')];
    const missing = await zxbackup([...bp, 'getAllOperations']);
    expect(missing.code).toBe(EXIT_CODES.BackupPath);
    expect(missing.err.trim().split('\n')).toHaveLength(1);
    expect(missing.err).toContain('doSmartScan start');

    await zxbackup(['--backup-path', path.join(root, 'b2'), 'config', 'set', 'ZxBackup_PurgeDay', 'sun']);
    const noOp = await zxbackup(['--backup-path', path.join(root, 'b2'), 'monitor', '00000000-0000-0000-0000-000000000000']);
    expect(noOp.code).toBe(EXIT_CODES.NotFound);

    const badDate = await zxbackup(['--backup-path', path.join(root, 'b2'), 'doRestoreOnNewAccount', 'a@example.test', 'b@example.test', 'yesterday']);
    expect(badDate.code).toBe(EXIT_CODES.Usage);
    expect(badDate.err).toContain('"yesterday" is not a date');

    const badAccount = await zxbackup(['--backup-path', path.join(root, 'b2'), 'getAccountInfo', 'not-an-address']);
    expect(badAccount.code).toBe(EXIT_CODES.Usage);

    const unknownCommand = await zxbackup(['doSmartScna']);
    expect(unknownCommand.code).toBe(2);
  });

  it('prints its version with --version, and exits 0', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    const run = await zxbackup(['--version']);
    expect(run.code).toBe(0);
    expect(run.out.trim()).toBe(version);
    expect(run.err).toBe('');
  });

  it('documents every command with an example in --help', async () => {
    const help = await zxbackup(['--help']);
    const commands = [...help.out.matchAll(/^ {2}zxbackup (\w+)/gm)].map((m) => m[1] ?? '');
    expect(commands).toEqual(expect.arrayContaining(['doSmartScan', 'doRestoreOnNewAccount', 'doPurge', 'doCoherencyCheck', 'realTimeScanner', 'monitor']));
    for (const command of commands) {
      const sub = await zxbackup(command === 'config' ? ['config', 'set', '--help'] : [command, '--help']);
      expect(`${command}: ${sub.out}`).toContain('Examples:');
    }
    expect(help.out).toContain('EXIT STATUS');
  });
});
