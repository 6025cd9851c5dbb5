import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { AccountId } from '@zxbackup/item-store';
import { fromPackageError, uploadMetadataArchives, withWriter } from '@zxbackup/runtime';
import { makeMaildirTarget } from '@zxbackup/scanners';
import { buildCli, runCli } from '../cli';

/*
 * The volume commands in-process against the S3 server of tools/services/s3-server.sh:
 *   eval "$(tools/services/s3-server.sh start)" && npx jest -c apps/cli/jest.int.config.cjs
 * The last test stops and restarts the server.
 */

const S3_URL = `http://${process.env['S3_ENDPOINT'] ?? '127.0.0.1'}:${process.env['S3_PORT'] ?? '9000'}`;
const ACCESS = process.env['S3_ACCESS_KEY'] ?? 'test:tester';
const SECRET = process.env['S3_SECRET_KEY'] ?? 'testing';
const REGION = process.env['S3_REGION'] ?? 'us-east-1';
const S3_SCRIPT = path.resolve(__dirname, '../../../../tools/services/s3-server.sh');

const savedEnv = { ...process.env };
let base: string;
let bucket: string;
let n = 0;

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const sink = (chunks: string[]): Writable =>
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });

/** Runs `zxbackup <argv>` in this process; env changes go to process.env (the runtime reads it). */
const zx = async (argv: string[], env: Record<string, string> = {}): Promise<Ran> => {
  Object.assign(process.env, env);
  const out: string[] = [];
  const err: string[] = [];
  let code = 0;
  await runCli(argv, {
    streams: { stdout: sink(out), stderr: sink(err) },
    env: process.env,
    now: () => Date.now(),
    setExitCode: (c) => {
      code = c;
    },
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
};

const s3Args = (extra: string[] = []): string[] => [
  '--bucket-name',
  bucket,
  '--access-key',
  ACCESS,
  '--secret-file',
  path.join(base, 'secret'),
  '--region',
  REGION,
  '--url',
  S3_URL,
  ...extra,
];

const deliverAll = async (tree: string, accounts: AccountId[], perAccount: number): Promise<void> => {
  const target = makeMaildirTarget({ root: tree });
  for (const a of accounts) {
    const run = async <A>(te: TE.TaskEither<unknown, A>): Promise<A> => {
      const r = await te();
      if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
      return r.right;
    };
    await run(target.ensureFolder(a, 'INBOX', { kind: 'folder', path: 'INBOX', view: 'message' }));
    for (let i = 0; i < perAccount; i++) {
      const text = `Subject: ${a} ${i}\r\nMessage-ID: <${i}.${a}>\r\n\r\n${'body '.repeat(50 + i)}${a}\r\n`;
      await run(target.writeMessage(a, 'INBOX', { content: Readable.from([Buffer.from(text)]), flags: i % 2 ? ['\\Seen'] : [], receivedAt: Date.UTC(2026, 2, 1) + i * 1000 }));
    }
    if (target.flush !== undefined) await run(target.flush());
  }
};

const countFiles = async (maildir: string): Promise<number> => {
  let total = 0;
  for (const sub of ['cur', 'new']) total += (await fs.readdir(path.join(maildir, sub)).catch(() => [])).length;
  return total;
};

/** Waits until the S3 volume's cache is empty (the uploads confirmed). */
const drain = async (root: string): Promise<void> => {
  const r = await withWriter(root, { initialize: false }, (s) => {
    const v = s.volume as unknown as { drain: (o: { timeoutMs: number }) => TE.TaskEither<unknown, void> };
    return pipe(v.drain({ timeoutMs: 120_000 }), TE.mapLeft(fromPackageError));
  })();
  if (E.isLeft(r)) throw new Error(r.left.message);
};

/** Blobs waiting in the S3 volume's write cache: the records of its spool files (48-byte header: magic, size at 8, digest). */
const cachedBlobs = async (root: string): Promise<number> => {
  let total = 0;
  const dir = path.join(root, 'cache', 's3', 'spool');
  for (const name of (await fs.readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.spool'))) {
    const bytes = await fs.readFile(path.join(dir, name));
    for (let at = 0; at + 48 <= bytes.length && bytes.readUInt32BE(at) === 0x5a584253; at += 48 + Number(bytes.readBigUInt64BE(at + 8))) total++;
  }
  return total;
};

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-cli-volume-'));
  bucket = `zxb-cli-${Date.now().toString(36)}-${n++}`;
  await fs.writeFile(path.join(base, 'secret'), `${SECRET}\n`, { mode: 0o600 });
  process.env['ZXBACKUP_BUCKETS_FILE'] = path.join(base, 'etc', 'buckets.json');
  process.env['ZXBACKUP_SERVER_ID'] = 'cli-srv-1';
});
afterEach(async () => {
  process.env = { ...savedEnv };
  await fs.rm(base, { recursive: true, force: true });
});

it('every volume command has --help with an example and the exit codes', async () => {
  for (const cmd of ['setBackupVolume', 'migrateBackupVolume', 'listBuckets', 'retrieveMetadataFromArchive']) {
    const deps = { streams: { stdout: sink([]), stderr: sink([]) }, env: process.env, now: () => Date.now(), setExitCode: () => undefined };
    // A parse callback keeps yargs from printing and exiting: the help text comes back here.
    const help = await new Promise<string>((resolve) => {
      void buildCli([cmd, '--help'], deps)
        .exitProcess(false)
        .parse([cmd, '--help'], {}, (_err, _argv, output) => resolve(output));
    });
    expect(help).toContain('Examples:');
    expect(help).toContain(`zxbackup ${cmd}`);
    expect(help).toContain('EXIT STATUS');
  }
});

it('setBackupVolume S3 on a new backup, listBuckets without secrets, a second server by id, a refused Local', async () => {
  const root = path.join(base, 'backup');
  const set = await zx(['--backup-path', root, '--json', 'setBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'server1'])]);
  expect(set.code).toBe(0);
  const result = JSON.parse(set.stdout) as { bucketConfigurationId: string; initialized: boolean; bucketCreated: boolean };
  expect(result).toMatchObject({ initialized: true, bucketCreated: true });
  expect((await fs.stat(path.join(root, 'volume.json'))).mode & 0o777).toBe(0o600);
  expect((await fs.stat(process.env['ZXBACKUP_BUCKETS_FILE'] as string)).mode & 0o777).toBe(0o600);

  const second = await zx(
    ['--backup-path', path.join(base, 'backup2'), 'setBackupVolume', 'S3', '--bucket-configuration-id', result.bucketConfigurationId, '--volume-prefix', 'server2'],
    { ZXBACKUP_SERVER_ID: 'cli-srv-2' },
  );
  expect(second.code).toBe(0);
  expect(second.stdout).toContain('server2/');

  const human = await zx(['listBuckets']);
  const json = await zx(['listBuckets', 'all', '--json']);
  expect(human.code).toBe(0);
  expect(human.stdout).toContain(result.bucketConfigurationId);
  expect(human.stdout).toContain('"server1/"');
  expect(human.stdout).toContain('"server2/"');
  const listed = JSON.parse(json.stdout) as { buckets: Array<{ id: string; bucket: string; prefixes: unknown[] }> };
  expect(listed.buckets).toEqual([expect.objectContaining({ id: result.bucketConfigurationId, bucket, prefixes: expect.any(Array) })]);
  for (const r of [set, second, human, json]) {
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(r.stdout + r.stderr).not.toContain(ACCESS);
  }

  // A second server on the first one's prefix: refused, nothing switched.
  const clash = await zx(['--backup-path', path.join(base, 'backup3'), 'setBackupVolume', 'S3', '--bucket-configuration-id', result.bucketConfigurationId, '--volume-prefix', 'server1'], {
    ZXBACKUP_SERVER_ID: 'cli-srv-3',
  });
  expect(clash.code).toBe(1);
  expect(clash.stderr).toContain('cli-srv-1');

  // Usage errors: Local without its mount point, S3 without its options.
  expect((await zx(['--backup-path', root, 'setBackupVolume', 'Local'])).code).toBe(2);
  expect((await zx(['--backup-path', root, 'setBackupVolume', 'S3', '--bucket-name', bucket])).code).toBe(2);
  const wrongSecret = await zx(['--backup-path', path.join(base, 'b4'), 'setBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'x', '--bucket-configuration-id', result.bucketConfigurationId]).filter((a) => a !== path.join(base, 'secret') && a !== '--secret-file'), '--secret', 'another-secret']);
  expect(wrongSecret.code).toBe(2);
  expect(wrongSecret.stderr).not.toContain('another-secret');
});

it('migrateBackupVolume (dry run, then for real), then retrieveMetadataFromArchive on a new server and a restore', async () => {
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'backup');
  const accounts = ['ann@example.test', 'ben@example.test'] as AccountId[];
  await deliverAll(tree, accounts, 5);
  expect((await zx(['--backup-path', root, 'doSmartScan', 'start', '--source', `maildir:${tree}`])).code).toBe(0);

  // Blobs are local now: setBackupVolume refuses and points to migrateBackupVolume.
  const refused = await zx(['--backup-path', root, 'setBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'm'])]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('migrateBackupVolume');

  const dry = await zx(['--backup-path', root, '--json', 'migrateBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'm', '--dry-run'])]);
  expect(dry.code).toBe(0);
  const plan = JSON.parse(dry.stdout) as { dryRun: boolean; blobs: number; accounts: number };
  expect(plan).toMatchObject({ dryRun: true, blobs: 10 });
  expect(JSON.parse(await fs.readFile(path.join(root, 'volume.json'), 'utf8').catch(() => '{"volume":{"type":"local"}}'))).toMatchObject({ volume: { type: 'local' } });

  const moved = await zx(['--backup-path', root, '--json', 'migrateBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'm'])]);
  expect(moved.code).toBe(0);
  expect(JSON.parse(moved.stdout)).toMatchObject({ switched: true, blobs: 10, removedLocal: 10 });
  const ops = await zx(['--backup-path', root, '--json', 'getAllOperations']);
  expect(ops.stdout).toContain('VolumeMigration');

  // A scan after the migration uploads its metadata (as the lead's --remote-metadata-upload will).
  await deliverAll(tree, ['ann@example.test' as AccountId], 6);
  expect((await zx(['--backup-path', root, 'doSmartScan', 'start'])).code).toBe(0);
  const up = await withWriter(root, { initialize: false }, (s) => uploadMetadataArchives(s))();
  expect(E.isRight(up) && up.right.uploaded).toBe(1);
  await drain(root);

  // A new machine: no backup path, no bucket configuration.
  await fs.rm(root, { recursive: true, force: true });
  const env2 = { ZXBACKUP_SERVER_ID: 'cli-srv-new', ZXBACKUP_BUCKETS_FILE: path.join(base, 'machine-2', 'buckets.json') };
  const fresh = path.join(base, 'machine-2', 'backup');
  const got = await zx(['--backup-path', fresh, '--json', 'retrieveMetadataFromArchive', 'S3', ...s3Args(['--volume-prefix', 'm'])], env2);
  expect(got.code).toBe(0);
  expect(JSON.parse(got.stdout)).toMatchObject({ accounts: 2, previousServer: { serverId: 'cli-srv-1' }, missing: [] });

  const restoredTree = path.join(base, 'restored');
  const restored = await zx(['--backup-path', fresh, 'doRestoreOnNewAccount', 'ann@example.test', 'ann.back@example.test', 'last', '--target', `maildir:${restoredTree}`]);
  expect(restored.code).toBe(0);
  expect(await countFiles(path.join(restoredTree, 'example.test', 'ann.back', 'Maildir'))).toBe(await countFiles(path.join(tree, 'example.test', 'ann', 'Maildir')));

  const unknown = await zx(['--backup-path', path.join(base, 'x'), 'retrieveMetadataFromArchive', 'S3', ...s3Args(['--volume-prefix', 'm', '--accounts', 'nobody@example.test'])]);
  expect(unknown.code).toBe(5);
});

it('the S3 volume set by setBackupVolume: a scan while the server is down goes on, and nothing is lost when it returns', async () => {
  const tree = path.join(base, 'vmail');
  const root = path.join(base, 'backup');
  expect((await zx(['--backup-path', root, 'setBackupVolume', 'S3', ...s3Args(['--volume-prefix', 'outage'])])).code).toBe(0);
  await deliverAll(tree, ['cat@example.test', 'dan@example.test'] as AccountId[], 6);

  execFileSync('bash', [S3_SCRIPT, 'stop'], { stdio: 'ignore' });
  try {
    const scanned = await zx(['--backup-path', root, 'doSmartScan', 'start', '--source', `maildir:${tree}`]);
    expect(scanned.code).toBe(0);
    expect(await cachedBlobs(root)).toBe(12);
  } finally {
    execFileSync('bash', [S3_SCRIPT, 'start'], { stdio: 'ignore' });
  }
  await drain(root);
  expect(await cachedBlobs(root)).toBe(0);

  // Every blob is in the bucket: a restore with an empty cache gives back every message.
  const restoredTree = path.join(base, 'restored');
  const restored = await zx(['--backup-path', root, 'doRestoreOnNewAccount', 'cat@example.test', 'cat.back@example.test', 'last', '--target', `maildir:${restoredTree}`]);
  expect(restored.code).toBe(0);
  expect(await countFiles(path.join(restoredTree, 'example.test', 'cat.back', 'Maildir'))).toBe(6);
}, 300_000);
