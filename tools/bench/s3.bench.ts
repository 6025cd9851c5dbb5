/*
 * Benchmark of the S3 volume (issue 5): whole `zxbackup` processes against `restic` with its s3
 * backend, on the same S3 server, in one run.
 *   npx nx run cli:build                                  # the bench runs apps/cli/bin/zxbackup.cjs (the bundle)
 *   eval "$(bash tools/services/s3-server.sh start)"      # the bench never starts or stops it
 *   node_modules/.bin/ts-node --transpile-only tools/bench/s3.bench.ts [--quick] [--messages N] [--work DIR]
 * 1. Initial SmartScan of the corpus (generate.ts, 2 domains x 5 users, seed 1) onto the S3 volume,
 *    onto the default local volume, and `restic backup` to the S3 server. For the S3 scan the bench
 *    polls <backup path>/cache/s3/spool every 0.5 s (bytes not yet uploaded) and reports the time from the
 *    scan end (the stderr line "SmartScan: N/N done") to the cache being empty and to the exit.
 * 2. Restore of one account at "last" from the S3 volume, vs `restic restore latest --include
 *    /<corpus>/<domain>/<user>` from S3, twice: (a) with the blob cache emptied (every blob comes
 *    from S3: the read cache is in memory; the local pack index stays, as restic keeps its index cache),
 *    (b) with <backup path>/cache/s3 deleted whole (a new machine: the index is read from the
 *    bucket) vs `restic --no-cache restore`.
 * `--backup-only [--rounds N]` reruns part 1's S3 backups alone (zxbackup and restic, each into a
 * new bucket, order alternating) on the corpus of an earlier full run, and reports the medians.
 * `--restore-only [--rounds N]` reruns part 2 alone on the work dir of an earlier full run (its
 * backups and buckets kept), N rounds with (a) and (b) interleaved with restic's, and reports
 * each figure's median: one restore lasts ~2 s, and this VM's noise is larger than that.
 * restic 0.14 (minio-go) signs every PUT over plain HTTP with aws-chunked streaming, which Swift's
 * s3api refuses ("aws-chunked is not supported"); over HTTPS it signs UNSIGNED-PAYLOAD. So restic
 * talks to the same server through a TLS terminator that runs inside this bench process (a
 * self-signed certificate made with openssl, passed with --cacert). Its CPU is not in restic's
 * figures; its latency is in restic's wall time (a handicap for the peer, so a "met" stays honest).
 * Every figure is one process under GNU time (`/usr/bin/time -v`): wall, user+sys CPU, max RSS.
 * The work dir (default /tmp/zxb-bench-s3) is wiped at start and kept after, with logs/. Each run
 * uses new buckets (zxb-bench-<time>, zxb-bench-restic-<time>), left on the test server.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import { join, basename, resolve } from 'node:path';
import * as tls from 'node:tls';
import { diffSnapshots, snapshotMaildirTree } from '../corpus/lib/maildir-snapshot';
import { parseGnuTime } from './lib/gnu-time';

const REPO = resolve(__dirname, '../..');
const CLI = join(REPO, 'apps/cli/bin/zxbackup.cjs');
const TSN = join(REPO, 'node_modules/.bin/ts-node');
const TIME = '/usr/bin/time';
const S3 = { host: '127.0.0.1', port: 9000, access: 'test:tester', secret: 'testing', region: 'us-east-1' };

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const QUICK = argv.includes('--quick');
const RESTORE_ONLY = argv.includes('--restore-only');
const BACKUP_ONLY = argv.includes('--backup-only');
const ROUNDS = Math.max(1, Number(opt('--rounds') ?? 1));
const MESSAGES = Number(opt('--messages') ?? (QUICK ? 2000 : 20000));
const WORK = resolve(opt('--work') ?? '/tmp/zxb-bench-s3');
const P = {
  src: join(WORK, 'corpus'),
  logs: join(WORK, 'logs'),
  zS3: join(WORK, 'zxb-s3'),
  zLocal: join(WORK, 'zxb-local'),
  buckets: join(WORK, 'buckets.json'),
  resticCache: join(WORK, 'restic-cache'),
  tls: join(WORK, 'tls'),
  restoreZ: join(WORK, 'restore-zxb'),
  restoreR: join(WORK, 'restore-restic'),
  /** The name of restic's bucket, for --restore-only. */
  resticBucket: join(WORK, 'restic-bucket'),
};
const STAMP = Date.now().toString(36);

const out = (s: string) => console.log(s);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const uptime = () => spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();

interface Run {
  readonly label: string;
  readonly wall: number;
  readonly cpu: number;
  readonly rssMB: number;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}


let runNo = 0;
/** Runs `cmd args` under GNU time; `onData` sees every chunk of stdout and stderr as it comes. */
const timed = (label: string, cmd: string, args: ReadonlyArray<string>, env: Record<string, string> = {}, onData?: (text: string) => void, cwd = REPO): Promise<Run> => {
  mkdirSync(P.logs, { recursive: true });
  const base = join(P.logs, `${String(++runNo).padStart(2, '0')}-${label.replace(/[^A-Za-z0-9.-]+/g, '_')}`);
  const proc = spawn(TIME, ['-v', '-o', `${base}.time`, cmd, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  proc.stdout.on('data', (b: Buffer) => (chunks.stdout.push(b), onData?.(b.toString())));
  proc.stderr.on('data', (b: Buffer) => (chunks.stderr.push(b), onData?.(b.toString())));
  return new Promise<Run>((resolveRun, reject) => {
    proc.on('error', reject);
    proc.on('close', () => {
      const stdout = Buffer.concat(chunks.stdout).toString();
      const stderr = Buffer.concat(chunks.stderr).toString();
      writeFileSync(`${base}.out`, stdout);
      writeFileSync(`${base}.err`, `$ ${cmd} ${args.join(' ')}\n${stderr}`);
      try {
        const t = parseGnuTime(readFileSync(`${base}.time`, 'utf8'));
        if (t.code !== 0) throw new Error(`${label}: exit ${t.code}\n${stderr.split('\n').slice(-15).join('\n')}\n(logs: ${base}.*)`);
        resolveRun({ label, ...t, stdout, stderr });
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
};

const fmt = (r: Pick<Run, 'wall' | 'cpu' | 'rssMB'>) => `${r.wall.toFixed(2)} s wall, ${r.cpu.toFixed(2)} s CPU, ${r.rssMB.toFixed(0)} MB max RSS`;
const report = (r: Run, note = ''): Run => (out(`  ${r.label.padEnd(30)} ${fmt(r)}${note === '' ? '' : `  (${note})`}`), r);
const duMB = (dir: string) => Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]) / 1024 / 1024;

const zxbEnv = { ZXBACKUP_BUCKETS_FILE: P.buckets };
const zxb = (label: string, backupPath: string, args: ReadonlyArray<string>, onData?: (text: string) => void) =>
  timed(label, process.execPath, [CLI, '--backup-path', backupPath, '--json', ...args], zxbEnv, onData);

/** Points a backup path at a bucket of the test server (`setBackupVolume S3`). */
const setS3Volume = (backupPath: string, bucket: string) =>
  zxb('setBackupVolume S3', backupPath, [
    'setBackupVolume', 'S3', '--bucket-name', bucket, '--access-key', S3.access, '--secret', S3.secret,
    '--region', S3.region, '--url', `http://${S3.host}:${S3.port}`, '--volume-prefix', 'px',
  ]);

// ---------------------------------------------------------------- restic through TLS

let tlsPort = 0;
let resticBucket = `zxb-bench-restic-${STAMP}`;
const resticRepo = () => `s3:https://127.0.0.1:${tlsPort}/${resticBucket}`;
const resticEnv = () => ({
  AWS_ACCESS_KEY_ID: S3.access,
  AWS_SECRET_ACCESS_KEY: S3.secret,
  RESTIC_PASSWORD: 'bench',
  RESTIC_CACHE_DIR: P.resticCache,
  RESTIC_REPOSITORY: resticRepo(),
});
// Run in WORK on the relative path "corpus": the snapshot then holds /corpus/<domain>/<user>.
const restic = (label: string, args: ReadonlyArray<string>) =>
  timed(label, 'restic', ['--cacert', join(P.tls, 'cert.pem'), '-o', `s3.region=${S3.region}`, ...args], resticEnv(), undefined, WORK);

/** A TLS terminator in front of the S3 server: bytes pass unchanged (Host header included, so signatures hold). */
const startTlsProxy = async (): Promise<tls.Server> => {
  mkdirSync(P.tls, { recursive: true });
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { cwd: P.tls, encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`);
  const server = tls.createServer({ key: readFileSync(join(P.tls, 'key.pem')), cert: readFileSync(join(P.tls, 'cert.pem')) }, (client) => {
    const upstream = net.connect(S3.port, S3.host);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  tlsPort = (server.address() as net.AddressInfo).port;
  return server;
};

// ---------------------------------------------------------------- cache watch

/** Bytes of the spool files under dir: the blobs still waiting for their upload (a spool file goes once all its blobs are up). */
const pendingBytes = async (dir: string): Promise<number> => {
  try {
    let n = 0;
    for (const f of await fsp.readdir(dir)) if (f.endsWith('.spool')) n += (await fsp.stat(join(dir, f)).catch(() => ({ size: 0 }))).size;
    return n;
  } catch {
    return 0;
  }
};

interface Table {
  readonly figure: string;
  readonly ours: string;
  readonly peer: string;
  readonly ratio: string;
  readonly target: string;
  readonly met: string;
}
const rows: Table[] = [];
const ratioRow = (figure: string, ours: Run, peerName: string, peer: Run | undefined, target?: number): void => {
  if (peer === undefined) {
    rows.push({ figure, ours: `${ours.wall.toFixed(2)} s`, peer: `${peerName}: n/a`, ratio: '-', target: target === undefined ? '-' : `<= ${target.toFixed(1)}x`, met: 'NO PEER' });
    return;
  }
  const ratio = ours.wall / peer.wall;
  rows.push({
    figure,
    ours: `${ours.wall.toFixed(2)} s`,
    peer: `${peerName} ${peer.wall.toFixed(2)} s`,
    ratio: `${ratio.toFixed(2)}x (cpu ${(ours.cpu / Math.max(0.01, peer.cpu)).toFixed(2)}x)`,
    target: target === undefined ? '-' : `<= ${target.toFixed(1)}x`,
    met: target === undefined ? '-' : ratio <= target ? 'yes' : 'NO',
  });
};

const requirements = (): boolean => {
  let ok = true;
  if (spawnSync('bash', [join(REPO, 'tools/services/s3-server.sh'), 'status'], { stdio: 'ignore' }).status !== 0) {
    out('The S3 server is not running on 127.0.0.1:9000. Start it with:\n  eval "$(bash tools/services/s3-server.sh start)"');
    ok = false;
  }
  if (!existsSync(TIME)) {
    out('GNU time is missing: apt-get install -y time');
    ok = false;
  }
  if (!existsSync(CLI) || spawnSync(process.execPath, [CLI, '--help'], { stdio: 'ignore' }).status !== 0) {
    out('The CLI does not run: npx nx run cli:build');
    ok = false;
  }
  return ok;
};

const main = async (): Promise<void> => {
  if (!requirements()) process.exit(2);
  const hasRestic = spawnSync('restic', ['version'], { encoding: 'utf8' });
  if (RESTORE_ONLY) return restoreOnly(hasRestic.status === 0);
  if (BACKUP_ONLY) return backupOnly(hasRestic.status === 0);
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  out(`S3 benchmark: ${MESSAGES} messages, work dir ${WORK}, ${hasRestic.status === 0 ? hasRestic.stdout.trim() : 'restic MISSING'}`);
  out(`load at start: ${uptime()}`);

  out('Corpus (tools/corpus/generate.ts, 2 domains x 5 users, seed 1)');
  report(
    await timed('generate', process.execPath, [TSN, '--transpile-only', join(REPO, 'tools/corpus/generate.ts'), '--out', P.src, '--messages', String(MESSAGES), '--domains', '2', '--users', '5', '--seed', '1']),
    `${duMB(P.src).toFixed(0)} MB on disk`,
  );

  // ---- 1. initial backups
  out(`1. Initial backup (${uptime()})`);
  await setS3Volume(P.zS3, `zxb-bench-${STAMP}`);
  const cacheDir = join(P.zS3, 'cache', 's3');
  const t0 = Date.now();
  let scanEnd: number | undefined;
  let text = '';
  let running = true;
  let peak = 0;
  let emptyAt: number | undefined;
  const watch = (async () => {
    while (running) {
      const n = await pendingBytes(join(cacheDir, 'spool'));
      peak = Math.max(peak, n);
      if (scanEnd !== undefined && n === 0 && emptyAt === undefined) emptyAt = Date.now();
      if (n > 0) emptyAt = undefined;
      await sleep(500);
    }
  })();
  const zS3 = report(
    await zxb('zxbackup SmartScan -> S3', P.zS3, ['doSmartScan', 'start', '--source', `maildir:${P.src}`], (chunk) => {
      text += chunk;
      for (const m of text.matchAll(/SmartScan: (\d+)\/(\d+) done/g)) if (m[1] === m[2] && scanEnd === undefined) scanEnd = Date.now();
      text = text.slice(-200);
    }),
  );
  const exitAt = Date.now();
  running = false;
  await watch;
  const leftover = await pendingBytes(join(cacheDir, 'spool'));
  if (scanEnd === undefined) out('  (no "SmartScan: N/N done" line seen: scan-end figures unavailable)');
  else {
    const empty = emptyAt ?? (leftover === 0 ? exitAt : undefined);
    out(`  scan itself ${((scanEnd - t0) / 1000).toFixed(2)} s; scan end -> cache empty ${empty === undefined ? `NOT EMPTY (${(leftover / 1e6).toFixed(1)} MB left)` : `${(Math.max(0, empty - scanEnd) / 1000).toFixed(1)} s`} (polled every 0.5 s); scan end -> exit ${((exitAt - scanEnd) / 1000).toFixed(2)} s; peak ${(peak / 1e6).toFixed(1)} MB waiting in the cache`);
  }
  const zLocal = report(await zxb('zxbackup SmartScan -> local', P.zLocal, ['doSmartScan', 'start', '--source', `maildir:${P.src}`]));

  let proxy: tls.Server | undefined;
  let rBackup: Run | undefined;
  let resticProblem: string | undefined;
  if (hasRestic.status !== 0) resticProblem = 'restic is not installed (apt-get install -y restic)';
  else {
    try {
      proxy = await startTlsProxy();
      await restic('restic init', ['init']);
      writeFileSync(P.resticBucket, resticBucket);
      rBackup = report(await restic('restic backup -> S3', ['backup', basename(P.src)]));
    } catch (e) {
      resticProblem = String(e).split('\n').slice(0, 4).join(' | ');
    }
  }
  if (resticProblem !== undefined) out(`  RESTIC COULD NOT RUN AGAINST THE S3 SERVER: ${resticProblem}`);
  ratioRow('initial backup: SmartScan -> S3', zS3, 'restic backup s3', rBackup, 1.0);
  ratioRow('SmartScan -> S3 vs -> local', zS3, 'SmartScan local', zLocal);

  // ---- 2. restore of one account
  await restoreSection(cacheDir, rBackup !== undefined, 1);
  proxy?.close();
  printTable();
};

/** Part 2 alone, on the backups and buckets of an earlier full run in WORK. */
const restoreOnly = async (hasRestic: boolean): Promise<void> => {
  if (!existsSync(join(P.zS3, 'server.json'))) throw new Error(`--restore-only: ${P.zS3} holds no backup; run the full bench with --work ${WORK} first`);
  out(`S3 benchmark, restores only: work dir ${WORK}, ${ROUNDS} round(s)`);
  out(`load at start: ${uptime()}`);
  let proxy: tls.Server | undefined;
  let resticReady = false;
  if (hasRestic && existsSync(P.resticBucket)) {
    resticBucket = readFileSync(P.resticBucket, 'utf8').trim();
    proxy = await startTlsProxy();
    resticReady = true;
  } else out('  restic, or the name of its bucket (restic-bucket), is missing: no peer figures');
  await restoreSection(join(P.zS3, 'cache', 's3'), resticReady, ROUNDS);
  proxy?.close();
  printTable();
};

/**
 * Part 1's S3 figures alone, N rounds on the corpus of an earlier full run in WORK: each round a
 * SmartScan into a new backup path and bucket and a `restic backup` into a new repository, the
 * order alternating (one backup leaves the test server busy for a while: Swift's updater and
 * replicator run after it). One pair lasts ~30 s, and the two tools' times swing 13-18 s from
 * run to run here: a single pair does not say which is faster.
 */
const backupOnly = async (hasRestic: boolean): Promise<void> => {
  if (!existsSync(P.src)) throw new Error(`--backup-only: ${P.src} holds no corpus; run the full bench with --work ${WORK} first`);
  if (!hasRestic) throw new Error('--backup-only compares with restic: apt-get install -y restic');
  out(`S3 benchmark, initial backups only: work dir ${WORK}, ${ROUNDS} round(s), order alternating`);
  out(`load at start: ${uptime()}`);
  const proxy = await startTlsProxy();
  const figures = { z: [] as Run[], r: [] as Run[] };
  const ratios: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    out(` round ${i + 1}/${ROUNDS} (${uptime()})`);
    const ours = async (): Promise<Run> => {
      const backupPath = `${P.zS3}-b${i}`;
      rmSync(backupPath, { recursive: true, force: true });
      await setS3Volume(backupPath, `zxb-bench-${STAMP}-b${i}`);
      const run = report(await zxb('zxbackup SmartScan -> S3', backupPath, ['doSmartScan', 'start', '--source', `maildir:${P.src}`]));
      rmSync(backupPath, { recursive: true, force: true });
      return run;
    };
    const theirs = async (): Promise<Run> => {
      resticBucket = `zxb-bench-restic-${STAMP}-b${i}`;
      await restic('restic init', ['init']);
      return report(await restic('restic backup -> S3', ['backup', basename(P.src)]));
    };
    let z: Run;
    let r: Run;
    if (i % 2 === 0) {
      z = await ours();
      r = await theirs();
    } else {
      r = await theirs();
      z = await ours();
    }
    figures.z.push(z);
    figures.r.push(r);
    ratios.push(z.wall / r.wall);
    out(`  = ${(z.wall / r.wall).toFixed(2)}x restic's wall time`);
  }
  proxy.close();
  const sorted = [...ratios].sort((a, b) => a - b);
  out(`same-round ratios: ${ratios.map((x) => x.toFixed(2)).join(', ')} (median ${(sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN).toFixed(2)}x)`);
  ratioRow(`initial backup: SmartScan -> S3 (median of ${ROUNDS})`, median(figures.z), 'restic backup s3', median(figures.r), 1.0);
  printTable();
};

const median = (runs: ReadonlyArray<Run>): Run => {
  const sorted = [...runs].sort((a, b) => a.wall - b.wall);
  return sorted[Math.floor((sorted.length - 1) / 2)] as Run;
};

const restoreSection = async (cacheDir: string, resticReady: boolean, rounds: number): Promise<void> => {
  const accounts = (JSON.parse((await zxb('getAvailableAccounts', P.zS3, ['getAvailableAccounts'])).stdout) as Array<{ account: string }>).map((a) => a.account).sort();
  const account = accounts[0];
  if (account === undefined) throw new Error('no account in the backup');
  const [user = '', domain = ''] = account.split('@');
  const messages = (await fsp.readdir(join(P.src, domain, user), { recursive: true, withFileTypes: true })).filter((e) => e.isFile() && /\/(cur|new)$/.test(e.parentPath)).length;
  out(`2. Restore of ${account} (${messages} message files) at "last" (${uptime()})`);
  // What every restore must give back: the account as the backup saw it (the corpus is not changed after it).
  const source = { [account]: snapshotMaildirTree(P.src)[account] ?? {} };
  const restoreFromS3 = async (label: string, newUser: string, into: string, note: string): Promise<Run> => {
    rmSync(into, { recursive: true, force: true });
    mkdirSync(into, { recursive: true });
    const run = report(await zxb(label, P.zS3, ['doRestoreOnNewAccount', account, `${newUser}@${domain}`, 'last', '--target', `maildir:${into}`]), note);
    const diff = diffSnapshots(source, { [account]: snapshotMaildirTree(into)[`${newUser}@${domain}`] ?? {} });
    if (diff.length > 0) throw new Error(`${label}: the restored account differs from the source (bytes, flags, folders or dates):\n  ${diff.slice(0, 10).join('\n  ')}`);
    out(`  restored ${duMB(into).toFixed(1)} MB, identical to the source account (bytes, flags, keywords, folders, dates)`);
    return run;
  };
  const resticRestore = async (label: string, globalFlags: string[], into: string): Promise<Run | undefined> => {
    if (!resticReady) return undefined;
    rmSync(into, { recursive: true, force: true });
    try {
      const run = report(await restic(label, [...globalFlags, 'restore', 'latest', '--target', into, '--include', `/${basename(P.src)}/${domain}/${user}`]));
      const got = existsSync(into) ? duMB(into) : 0;
      out(`  restored ${got.toFixed(1)} MB`);
      if (got > 0) return run;
      out('  restic restored NOTHING: its figure is not comparable');
    } catch (e) {
      out(`  restic restore failed: ${String(e).split('\n').slice(0, 4).join(' | ')}`);
    }
    return undefined;
  };
  // Each round restores into a new account (a restore refuses a target account that holds anything).
  const round = Date.now().toString(36);
  const figures = { z: [] as Run[], r: [] as Run[], zNew: [] as Run[], rNew: [] as Run[] };
  for (let i = 0; i < rounds; i++) {
    if (rounds > 1) out(` round ${i + 1}/${rounds}`);
    // (a) Every blob from S3: the blob cache (spool/) is emptied (the read cache lives in memory;
    //     packs/ is where builds before session 4 kept it on disk); the local copy of the pack
    //     index stays, as restic keeps its index cache (RESTIC_CACHE_DIR).
    rmSync(join(cacheDir, 'spool'), { recursive: true, force: true });
    rmSync(join(cacheDir, 'packs'), { recursive: true, force: true });
    figures.z.push(await restoreFromS3('zxbackup restore <- S3', `${user}-r${round}${i}`, P.restoreZ, 'blob cache emptied first'));
    const r = await resticRestore('restic restore <- S3', [], P.restoreR);
    if (r !== undefined) figures.r.push(r);
    // (b) A new machine: no local index either (read from the bucket's index objects), vs restic
    //     without its cache.
    rmSync(cacheDir, { recursive: true, force: true });
    figures.zNew.push(await restoreFromS3('zxbackup restore <- S3, no cache', `${user}-n${round}${i}`, `${P.restoreZ}-new`, 'cache/s3 deleted first'));
    const rNew = await resticRestore('restic --no-cache restore', ['--no-cache'], `${P.restoreR}-new`);
    if (rNew !== undefined) figures.rNew.push(rNew);
  }
  const peer = (runs: Run[]) => (runs.length === 0 ? undefined : median(runs));
  const of = rounds > 1 ? `, median of ${rounds}` : '';
  ratioRow(`restore ${account} <- S3 (empty blob cache${of})`, median(figures.z), 'restic restore s3', peer(figures.r), 1.0);
  ratioRow(`restore ${account} <- S3 (no local index${of})`, median(figures.zNew), 'restic --no-cache restore', peer(figures.rNew), 1.0);
};

const printTable = (): void => {
  out('');
  const head: Table = { figure: 'figure', ours: 'ours', peer: 'peer', ratio: 'ratio (wall)', target: 'target', met: 'met?' };
  const all = [head, ...rows];
  const w = (k: keyof Table) => Math.max(...all.map((r) => r[k].length));
  for (const r of all) out(`${r.figure.padEnd(w('figure'))} | ${r.ours.padStart(w('ours'))} | ${r.peer.padEnd(w('peer'))} | ${r.ratio.padEnd(w('ratio'))} | ${r.target.padEnd(w('target'))} | ${r.met}`);
  out('');
  out(`load at end: ${uptime()}`);
  out(`logs: ${P.logs}`);
};

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
