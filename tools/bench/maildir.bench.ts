/*
 * Product benchmark of zxbackup on a Maildir tree against restic and borg (issues 3 and 4).
 *   node_modules/.bin/ts-node --transpile-only tools/bench/maildir.bench.ts [--messages 20000] [--quick] [--work DIR]
 * Every figure is a whole process measured by GNU time (`/usr/bin/time -v`: wall, user+sys CPU of
 * the process and the children it waited for, max RSS), all on the same generated corpus in one
 * run, so that ratios to the peers hold on a noisy machine. See tools/bench/README.md.
 * Needs: `npx nx run cli:build` done (or --build; it bundles the CLI, see apps/cli/README.md), restic, borg, GNU time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { diffSnapshots, snapshotMaildirTree, type MaildirSnapshot } from '../corpus/lib/maildir-snapshot';
import { formatSummary, summarizeProfiles } from './cpuprofile-summary';
import { parseGnuTime } from './lib/gnu-time';

const REPO = resolve(__dirname, '../..');
const CLI = join(REPO, 'apps/cli/bin/zxbackup.cjs');
const TSN = join(REPO, 'node_modules/.bin/ts-node');
const TIME = '/usr/bin/time';
const FUTURE = '2100-01-01T00:00:00Z';

const USAGE = `usage: ts-node --transpile-only tools/bench/maildir.bench.ts [options]
  --messages N      corpus size (default 20000; 2 domains x 5 users, ~50 KB a message)
  --small N         second corpus for the memory figure (default 5000; --quick: 500)
  --quick           smoke run: 2,000 messages, 5 s of Real Time Scanner load
  --work DIR        all data goes there, wiped at start (default /tmp/zxb-bench)
  --rts-seconds S   Real Time Scanner load duration (default 20)
  --rts-rate R      changes per second (default 200)
  --build           run \`npx nx run cli:build\` first
  --no-profile      do not profile missed targets
  --no-retention-bench  do not run tools/bench/retention.bench.ts (it takes minutes at full size)
  --rts-only        only phase 6 (and its profile), on the tree and backup a previous run left in --work
The work dir is kept after the run (logs/ has every command's output) and wiped at the next.`;

// ---------------------------------------------------------------------------------------------
// Options

const { values: opt } = parseArgs({
  options: {
    messages: { type: 'string' },
    small: { type: 'string' },
    quick: { type: 'boolean', default: false },
    work: { type: 'string', default: '/tmp/zxb-bench' },
    'rts-seconds': { type: 'string' },
    'rts-rate': { type: 'string', default: '200' },
    build: { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    'no-retention-bench': { type: 'boolean', default: false },
    'rts-only': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const positiveInt = (name: string, v: string | undefined, fallback: number): number => {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`--${name} must be a positive integer\n${USAGE}\n`);
    process.exit(2);
  }
  return n;
};
const QUICK = opt.quick;
const MESSAGES = positiveInt('messages', opt.messages, QUICK ? 2_000 : 20_000);
const SMALL = positiveInt('small', opt.small, QUICK ? 500 : 5_000);
const RTS_SECONDS = positiveInt('rts-seconds', opt['rts-seconds'], QUICK ? 5 : 20);
const RTS_RATE = positiveInt('rts-rate', opt['rts-rate'], 200);
const WORK = resolve(opt.work);
if (WORK === '/' || WORK === REPO || REPO.startsWith(WORK + '/')) throw new Error(`refusing to wipe ${WORK}`);

const P = {
  src: join(WORK, 'src'),
  srcSmall: join(WORK, 'src-small'),
  zxb: join(WORK, 'zxb'),
  zxbSmall: join(WORK, 'zxb-small'),
  restic: join(WORK, 'restic-repo'),
  resticCache: join(WORK, 'restic-cache'),
  borg: join(WORK, 'borg-repo'),
  borgHome: join(WORK, 'borg-home'),
  restoreZxb: join(WORK, 'restore-zxb'),
  restoreRestic: join(WORK, 'restore-restic'),
  restoreBorg: join(WORK, 'restore-borg'),
  logs: join(WORK, 'logs'),
  profiles: join(WORK, 'profiles'),
};

const out = (line = '') => process.stdout.write(line + '\n');
const uptime = () => {
  const [a, b, c] = loadavg();
  return `load average ${a?.toFixed(2)}, ${b?.toFixed(2)}, ${c?.toFixed(2)} on ${cpus().length} CPUs`;
};

// ---------------------------------------------------------------------------------------------
// Whole-process measurement with GNU time

interface Run {
  readonly label: string;
  readonly wall: number;
  readonly cpu: number;
  readonly rssMB: number;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Spec {
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** Exit codes that are not a failure of the bench (default: 0 only). */
  readonly ok?: ReadonlyArray<number>;
  /** Called with each chunk of stdout and stderr (to wait for a line). */
  readonly onData?: (text: string) => void;
  /** Flags for `node` itself, before the script (Node refuses --cpu-prof in NODE_OPTIONS). */
  readonly nodeFlags?: ReadonlyArray<string>;
}


let runNo = 0;
const logName = (label: string) => `${String(++runNo).padStart(2, '0')}-${label.replace(/[^A-Za-z0-9.-]+/g, '_')}`;

/** The pid of a process's first child, from /proc (no dependency on procps). */
const childOf = (pid: number): number | undefined => {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) return Number(entry);
    } catch {
      // the process ended while we looked: not the one we want
    }
  }
  return undefined;
};

/** Starts `cmd args` under GNU time; `child()` is the measured process itself (to signal it). */
const start = (label: string, cmd: string, args: ReadonlyArray<string>, spec: Spec = {}): { done: Promise<Run>; child: () => Promise<number | undefined> } => {
  mkdirSync(P.logs, { recursive: true });
  const base = join(P.logs, logName(label));
  const timeFile = `${base}.time`;
  const proc: ChildProcess = spawn(TIME, ['-v', '-o', timeFile, cmd, ...args], {
    cwd: spec.cwd ?? REPO,
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  proc.stdout?.on('data', (b: Buffer) => {
    chunks.stdout.push(b);
    spec.onData?.(b.toString());
  });
  proc.stderr?.on('data', (b: Buffer) => {
    chunks.stderr.push(b);
    spec.onData?.(b.toString());
  });
  const done = new Promise<Run>((resolveRun, reject) => {
    proc.on('error', reject);
    proc.on('close', () => {
      const stdout = Buffer.concat(chunks.stdout).toString();
      const stderr = Buffer.concat(chunks.stderr).toString();
      writeFileSync(`${base}.out`, stdout);
      writeFileSync(`${base}.err`, `$ ${cmd} ${args.join(' ')}\n${stderr}`);
      let t: ReturnType<typeof parseGnuTime>;
      try {
        t = parseGnuTime(readFileSync(timeFile, 'utf8'));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      const run: Run = { label, ...t, stdout, stderr };
      if (!(spec.ok ?? [0]).includes(t.code)) {
        reject(new Error(`${label}: exit ${t.code} (${cmd} ${args.join(' ')})\n${stderr.split('\n').slice(-15).join('\n')}\n(logs: ${base}.*)`));
        return;
      }
      resolveRun(run);
    });
  });
  const child = async (): Promise<number | undefined> => {
    for (let i = 0; i < 40 && proc.pid !== undefined && proc.exitCode === null; i++) {
      const pid = childOf(proc.pid);
      if (pid !== undefined) return pid;
      await sleep(25);
    }
    return undefined;
  };
  return { done, child };
};

const timed = (label: string, cmd: string, args: ReadonlyArray<string>, spec?: Spec): Promise<Run> => start(label, cmd, args, spec).done;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const fmtRun = (r: Pick<Run, 'wall' | 'cpu' | 'rssMB'>) => `${r.wall.toFixed(2)} s wall, ${r.cpu.toFixed(2)} s CPU, ${r.rssMB.toFixed(0)} MB max RSS`;
const report = (r: Run, note = '') => {
  out(`  ${r.label.padEnd(34)} ${fmtRun(r)}${note === '' ? '' : `  (${note})`}`);
  return r;
};

/** The sum of several processes run one after the other (wall and CPU add, RSS is the max). */
const sum = (label: string, runs: ReadonlyArray<Run>): Run => ({
  label,
  wall: runs.reduce((a, r) => a + r.wall, 0),
  cpu: runs.reduce((a, r) => a + r.cpu, 0),
  rssMB: Math.max(...runs.map((r) => r.rssMB)),
  code: 0,
  stdout: '',
  stderr: '',
});

// ---------------------------------------------------------------------------------------------
// The tools

const zxbArgs = (backupPath: string, args: ReadonlyArray<string>, spec?: Spec) => [...(spec?.nodeFlags ?? []), CLI, '--backup-path', backupPath, '--json', ...args];
const zxb = (label: string, backupPath: string, args: ReadonlyArray<string>, spec?: Spec) => timed(label, process.execPath, zxbArgs(backupPath, args, spec), spec);

const resticEnv = { RESTIC_REPOSITORY: P.restic, RESTIC_PASSWORD: 'bench', RESTIC_CACHE_DIR: P.resticCache };
const restic = (label: string, args: ReadonlyArray<string>, cwd?: string) => timed(label, 'restic', args, { env: resticEnv, ...(cwd === undefined ? {} : { cwd }) });
const borgEnv = {
  BORG_REPO: P.borg,
  BORG_BASE_DIR: P.borgHome,
  BORG_PASSPHRASE: '',
  BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
};
const borg = (label: string, args: ReadonlyArray<string>, cwd?: string) => timed(label, 'borg', args, { env: borgEnv, ...(cwd === undefined ? {} : { cwd }) });

/** The JSON document a `--json` command printed on stdout (the last top-level one). */
const jsonOf = <A>(r: Run): A => {
  const text = r.stdout.trim();
  try {
    return JSON.parse(text) as A;
  } catch {
    const at = text.lastIndexOf('\n{');
    if (at >= 0) return JSON.parse(text.slice(at + 1)) as A;
    throw new Error(`${r.label}: no JSON on stdout: ${text.slice(0, 300)}`);
  }
};

const corpus = (label: string, script: string, args: ReadonlyArray<string>) =>
  timed(label, process.execPath, [TSN, '--transpile-only', join(REPO, 'tools/corpus', script), ...args]);

const requireTools = (): void => {
  const missing: string[] = [];
  const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
  if (!existsSync(TIME) || !has(TIME, ['-v', 'true'])) missing.push('GNU time (/usr/bin/time)');
  if (!has('restic', ['version'])) missing.push('restic');
  if (!has('borg', ['--version'])) missing.push('borg');
  if (missing.length > 0) {
    process.stderr.write(`missing: ${missing.join(', ')}\ninstall them with: apt-get install -y restic borgbackup time\n`);
    process.exit(2);
  }
  if (opt.build) {
    out('building the CLI: npx nx run cli:build');
    const b = spawnSync('npx', ['nx', 'run', 'cli:build'], { cwd: REPO, stdio: 'inherit' });
    if (b.status !== 0) {
      process.stderr.write('the CLI does not build\n');
      process.exit(1);
    }
  }
  if (!existsSync(join(REPO, 'apps/cli/dist')) || spawnSync(process.execPath, [CLI, '--help'], { stdio: 'ignore' }).status !== 0) {
    process.stderr.write('the CLI is not built: run `npx nx run cli:build` (or pass --build)\n');
    process.exit(2);
  }
};

const version = (cmd: string, args: string[]) => (spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '').split('\n')[0]?.trim() ?? '?';

const cliHelp = (): string => spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout ?? '';

// ---------------------------------------------------------------------------------------------
// Corpus helpers

const duMB = (dir: string): number => Number((spawnSync('du', ['-sk', dir], { encoding: 'utf8' }).stdout ?? '0').split('\t')[0]) / 1024;

interface Msg {
  readonly maildir: string;
  readonly folder: string; // directory holding cur/ new/ tmp/
  readonly name: string; // file name in cur/
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** Maildirs, their folder directories and the messages in cur/ (for the live load). */
const listTree = (root: string): { maildirs: Map<string, string[]>; messages: Msg[] } => {
  const maildirs = new Map<string, string[]>();
  const messages: Msg[] = [];
  for (const domain of readdirSync(root).sort()) {
    if (!isDir(join(root, domain))) continue;
    for (const user of readdirSync(join(root, domain)).sort()) {
      const maildir = join(root, domain, user, 'Maildir');
      if (!isDir(maildir)) continue;
      const folders = [maildir, ...readdirSync(maildir).sort().filter((n) => n.startsWith('.') && isDir(join(maildir, n, 'cur'))).map((n) => join(maildir, n))];
      maildirs.set(maildir, folders);
      for (const folder of folders) for (const name of readdirSync(join(folder, 'cur')).sort()) messages.push({ maildir, folder, name });
    }
  }
  return { maildirs, messages };
};

/** A small deterministic PRNG (xorshift32): the live load is the same at every run. */
const rng = (seed: number) => {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
};

const splitName = (name: string): { base: string; letters: string } => {
  const at = name.indexOf(':2,');
  return at < 0 ? { base: name, letters: '' } : { base: name.slice(0, at), letters: name.slice(at + 3) };
};
const sortLetters = (l: string) => [...new Set(l)].sort().join('');

const newMessage = (i: number, when: Date): Buffer =>
  Buffer.from(
    [
      `Return-Path: <bench${i % 97}@sender.test>`,
      `Message-ID: <rts-${i}-${when.getTime()}@bench.test>`,
      `Date: ${when.toUTCString()}`,
      `From: Bench Sender <bench${i % 97}@sender.test>`,
      `Subject: Real Time Scanner load ${i}`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      ...Array.from({ length: 20 + (i % 60) }, (_v, k) => `line ${k} of message ${i}: the quick brown fox jumps over the lazy dog`),
      '',
    ].join('\n'),
  );

interface LoadResult {
  readonly applied: number;
  readonly seconds: number;
  readonly kinds: Record<'flag' | 'move' | 'new', number>;
}

/**
 * `rate` changes a second for `seconds`: flag renames (half), moves to another folder of the same
 * account (30%), deliveries into new/ through tmp/ (20%); every existing message touched once.
 */
const applyLiveLoad = async (root: string, rate: number, seconds: number, seed: number): Promise<LoadResult> => {
  const { maildirs, messages } = listTree(root);
  const rnd = rng(seed);
  for (let i = messages.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const a = messages[i];
    const b = messages[j];
    if (a !== undefined && b !== undefined) {
      messages[i] = b;
      messages[j] = a;
    }
  }
  const maildirList = [...maildirs.keys()];
  const total = rate * seconds;
  const kinds = { flag: 0, move: 0, new: 0 };
  const t0 = Date.now();
  let next = 0;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const pick = i % 10;
    const m = pick < 8 ? messages[next++] : undefined;
    if (m !== undefined && pick < 5) {
      const { base, letters } = splitName(m.name);
      const to = `${base}:2,${sortLetters(letters.includes('F') ? letters.replace('F', '') : letters + 'F')}`;
      renameSync(join(m.folder, 'cur', m.name), join(m.folder, 'cur', to));
      kinds.flag++;
    } else if (m !== undefined) {
      const folders = maildirs.get(m.maildir) ?? [];
      const others = folders.filter((f) => f !== m.folder);
      const target = others[Math.floor(rnd() * others.length)] ?? m.folder;
      const { base, letters } = splitName(m.name);
      // Keyword letters are per folder (dovecot-keywords): keep only the system flags on a move.
      renameSync(join(m.folder, 'cur', m.name), join(target, 'cur', `${base}:2,${sortLetters(letters.replace(/[a-z]/g, ''))}`));
      kinds.move++;
    } else {
      const maildir = maildirList[i % maildirList.length];
      if (maildir === undefined) throw new Error('no maildir in the tree');
      const when = new Date();
      const body = newMessage(i, when);
      const name = `${Math.floor(when.getTime() / 1000)}.M${(when.getTime() % 1000) * 1000 + (i % 1000)}P${process.pid}Q${i}.bench.test,S=${body.length}`;
      writeFileSync(join(maildir, 'tmp', name), body);
      renameSync(join(maildir, 'tmp', name), join(maildir, 'new', name));
      kinds.new++;
    }
  }
  return { applied: total, seconds: (Date.now() - t0) / 1000, kinds };
};

// ---------------------------------------------------------------------------------------------
// The table

interface Row {
  readonly figure: string;
  readonly ours: string;
  readonly peer: string;
  readonly ratio: string;
  readonly target: string;
  readonly met: boolean | undefined;
}
const rows: Row[] = [];
/** Named re-runs to profile when their row missed its target. */
const missed: string[] = [];

const ratioRow = (figure: string, ours: Run, peerName: string, peer: Run, limit: number | undefined, profileKey?: string) => {
  const rw = ours.wall / peer.wall;
  const rc = ours.cpu / peer.cpu;
  const met = limit === undefined ? undefined : rw <= limit;
  rows.push({
    figure,
    ours: `${ours.wall.toFixed(2)} s (CPU ${ours.cpu.toFixed(2)})`,
    peer: `${peerName} ${peer.wall.toFixed(2)} s (CPU ${peer.cpu.toFixed(2)})`,
    ratio: `${rw.toFixed(2)}x (CPU ${rc.toFixed(2)}x)`,
    target: limit === undefined ? '-' : `<= ${limit.toFixed(1)}x`,
    met,
  });
  if (met === false && profileKey !== undefined && !missed.includes(profileKey)) missed.push(profileKey);
};
const plainRow = (figure: string, ours: string, target: string, met: boolean | undefined, profileKey?: string, peer = '-', ratio = '-') => {
  rows.push({ figure, ours, peer, ratio, target, met });
  if (met === false && profileKey !== undefined && !missed.includes(profileKey)) missed.push(profileKey);
};

const printTable = () => {
  const head: Row = { figure: 'figure', ours: 'ours', peer: 'peer', ratio: 'ratio (ours/peer)', target: 'target', met: undefined };
  const cells = (r: Row) => [r.figure, r.ours, r.peer, r.ratio, r.target, r === head ? 'met?' : r.met === undefined ? '-' : r.met ? 'yes' : 'NO'];
  const body = rows.map(cells);
  const widths = cells(head).map((c, i) => Math.max(c.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  out(line(cells(head)));
  out(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of body) out(line(r));
};

// ---------------------------------------------------------------------------------------------
// Phases

interface ScanResult {
  readonly recorded: number;
  readonly created: number;
  readonly updated: number;
  readonly moved: number;
  readonly deleted: number;
  readonly messagesRead: number;
  readonly foldersScanned: number;
  readonly foldersSkipped: number;
}
/** Transactions recorded into the main backup (P.zxb) by the timed runs. */
let transactions = 0;
const scanNote = (r: Run, backupPath: string): string => {
  const s = jsonOf<ScanResult>(r);
  if (backupPath === P.zxb) transactions += s.recorded;
  return `${s.recorded} tx: ${s.created} new, ${s.updated} changed, ${s.moved} moved, ${s.deleted} deleted; ${s.messagesRead} read; folders ${s.foldersScanned} scanned, ${s.foldersSkipped} skipped`;
};

const smartScan = async (label: string, backupPath: string, srcDir: string, spec?: Spec) => {
  const r = await zxb(label, backupPath, ['doSmartScan', 'start', '--source', `maildir:${srcDir}`], spec);
  return report(r, scanNote(r, backupPath));
};

interface Account {
  readonly account: string;
}
const accountsOf = async (backupPath: string): Promise<string[]> =>
  jsonOf<Account[]>(await zxb('getAvailableAccounts', backupPath, ['getAvailableAccounts'])).map((a) => a.account);

const restoredName = (account: string) => {
  const [user, domain] = account.split('@');
  return `${user}-r@${domain}`;
};

const restoreAll = async (label: string, backupPath: string, target: string, accounts: ReadonlyArray<string>, spec?: Spec): Promise<Run[]> => {
  const runs: Run[] = [];
  for (const account of accounts) {
    runs.push(await zxb(`${label} ${account}`, backupPath, ['doRestoreOnNewAccount', account, restoredName(account), 'last', '--target', `maildir:${target}`], spec));
  }
  return runs;
};

interface RtsStats {
  readonly received: number;
  readonly batches: number;
  readonly recorded: number;
  readonly accountScans: number;
  readonly latency: { readonly count: number; readonly p50: number; readonly p99: number; readonly max: number };
}

class ExitedByItself extends Error {}

const realTimeRun = async (label: string, seed: number, spec: Spec = {}, statsEvery = 0) => {
  let seen = '';
  let watching: () => void = () => undefined;
  const ready = new Promise<void>((r) => (watching = r));
  const t0 = Date.now();
  const proc = start(label, process.execPath, zxbArgs(P.zxb, ['realTimeScanner', 'run', '--stats-every', String(statsEvery)], spec), {
    ...spec,
    onData: (text) => {
      seen = (seen + text).slice(-4000);
      if (/watching/i.test(seen)) watching();
    },
  });
  let exitedAt: number | undefined;
  const settled = proc.done.then(
    (r) => {
      exitedAt = Date.now();
      return r;
    },
    (e: unknown) => {
      exitedAt = Date.now();
      throw e instanceof Error ? e : new Error(String(e));
    },
  );
  const early = settled.then((r) => Promise.reject(new Error(`exited (code ${r.code}) before saying it was watching: ${r.stderr.slice(-500)}`)));
  early.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error('not watching after 15 min')), 900_000)));
  await Promise.race([ready, early, timeout]).finally(() => clearTimeout(timer));
  const watchingAt = Date.now();
  const startup = (watchingAt - t0) / 1000;
  const load = await applyLiveLoad(P.src, RTS_RATE, RTS_SECONDS, seed);
  await sleep(2_000); // the contract: every change recorded within a second
  const pid = exitedAt === undefined ? await proc.child() : undefined;
  if (pid === undefined) {
    const r = await settled;
    throw new ExitedByItself(
      `the scanner exited by itself (exit ${r.code}) ${(((exitedAt ?? Date.now()) - watchingAt) / 1000).toFixed(1)} s after it said it was watching, before SIGTERM, without final stats (${load.applied} changes applied meanwhile); stdout: ${JSON.stringify(r.stdout.slice(-300))}`,
    );
  }
  const t1 = Date.now();
  process.kill(pid, 'SIGTERM');
  const run = await settled;
  const stop = (Date.now() - t1) / 1000;
  const stats = jsonOf<RtsStats>(run);
  return { run, stats, load, startup, stop };
};

const hasCommand = (help: string, name: string) => new RegExp(`\\b${name}\\b`).test(help);

// ---------------------------------------------------------------------------------------------

/** 6. The Real Time Scanner under a steady load of changes on the backed-up tree. */
const realTimePhase = async (): Promise<void> => {
  out(`6. Real Time Scanner: ${RTS_RATE} changes/s for ${RTS_SECONDS} s on the backed-up tree (${uptime()})`);
  let rtsRun: Awaited<ReturnType<typeof realTimeRun>> | undefined;
  try {
    rtsRun = await realTimeRun('zxbackup realTimeScanner run', 7);
  } catch (e) {
    out(`  Real Time Scanner run failed: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof ExitedByItself) {
      // Known failure mode: with --stats-every 0 nothing keeps the event loop alive (the watches
      // are not persistent), so Node exits 0 while waiting for the signal. A stats timer does.
      out('  again with --stats-every 3600 (its timer keeps the process alive; no stats are printed within the run),');
      out('  after a SmartScan that records the changes the exited scanner missed (else the scanner would find them too):');
      try {
        await smartScan('SmartScan (settle)', P.zxb, P.src);
        rtsRun = await realTimeRun('zxbackup realTimeScanner run (--stats-every 3600)', 7, {}, 3600);
        plainRow('Real Time Scanner stays up with --stats-every 0', 'NO: exits 0 at once', 'runs until SIGTERM', false);
      } catch (again) {
        out(`  failed again: ${again instanceof Error ? again.message : String(again)}`);
      }
    }
    if (rtsRun === undefined) plainRow('Real Time Scanner p99', 'failed', '<= 250 ms', false);
  }
  if (rtsRun !== undefined) {
    const { run, stats, load, startup, stop } = rtsRun;
    transactions += stats.recorded;
    report(run, `whole process: start-up, ${RTS_SECONDS} s of load, 2 s, stop`);
    out(`  watching after ${startup.toFixed(1)} s; load: ${load.applied} changes in ${load.seconds.toFixed(1)} s (${(load.applied / load.seconds).toFixed(0)}/s: ${load.kinds.flag} flag renames, ${load.kinds.move} moves, ${load.kinds.new} new); stopped ${stop.toFixed(1)} s after SIGTERM`);
    out(`  scanner: ${stats.received} events, ${stats.batches} batches, ${stats.recorded} transactions, ${stats.accountScans} account scans; latency (watcher event -> durable transaction, ${stats.latency.count} samples): p50 ${stats.latency.p50} ms, p99 ${stats.latency.p99} ms, max ${stats.latency.max} ms`);
    plainRow(`Real Time Scanner p50 / p99 (${RTS_RATE}/s)`, `${stats.latency.p50} / ${stats.latency.p99} ms`, 'p99 <= 250 ms', stats.latency.p99 <= 250, 'rts');
    plainRow('Real Time Scanner peak RSS', `${run.rssMB.toFixed(0)} MB`, '<= 150 MB', run.rssMB <= 150);
  }
  out();
};

/** Profiles of what missed its target: the same command once more under --cpu-prof. */
const profileMissed = async (accounts: ReadonlyArray<string>): Promise<void> => {
  if (missed.length > 0 && !opt['no-profile']) {
    out(`Profiles of the missed targets (${missed.join(', ')}): the command once more under node --cpu-prof (${uptime()})`);
    for (const key of missed) {
      const dir = join(P.profiles, key);
      mkdirSync(dir, { recursive: true });
      const prof: Spec = { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${dir}`] };
      try {
        let r: Run | undefined;
        switch (key) {
          case 'initial':
            r = await smartScan('profiled SmartScan (initial)', join(WORK, 'zxb-prof'), P.src, prof);
            break;
          case 'no-change':
            await smartScan('settle (no profile)', P.zxb, P.src);
            r = await smartScan('profiled SmartScan (no change)', P.zxb, P.src, prof);
            break;
          case 'one-percent':
            await smartScan('settle (no profile)', P.zxb, P.src);
            out(`  mutation: ${(await corpus('mutate 1% again', 'mutate.ts', ['--root', P.src, '--fraction', '0.01', '--seed', '3'])).stdout.trim()}`);
            r = await smartScan('profiled SmartScan (1% changed)', P.zxb, P.src, prof);
            break;
          case 'restore': {
            const target = join(WORK, 'restore-prof');
            mkdirSync(target, { recursive: true });
            const runs = await restoreAll('profiled restore', P.zxb, target, accounts, prof);
            r = report(sum(`profiled restore (sum of ${runs.length})`, runs));
            break;
          }
          case 'deep-check':
            r = report(await zxb('profiled doCoherencyCheck --deep', P.zxb, ['doCoherencyCheck', '--deep'], { ...prof, ok: [0, 6] }));
            break;
          case 'rts': {
            const again = await realTimeRun('profiled realTimeScanner run', 11, prof, 3600);
            r = report(again.run, `p50 ${again.stats.latency.p50} ms, p99 ${again.stats.latency.p99} ms under the profiler`);
            break;
          }
          case 'memory': {
            // Where the peak lives: V8 heap, Buffers (external), or native memory and code (the rest of RSS).
            const probe = async (label: string, args: ReadonlyArray<string>, flags: ReadonlyArray<string> = [], backupPath = join(WORK, 'zxb-mem')) => {
              const file = join(P.logs, `memprobe-${++runNo}.json`);
              const spec: Spec = { nodeFlags: ['-r', join(REPO, 'tools/bench/memory-probe.cjs'), ...flags], env: { ZXB_MEMPROBE_OUT: file } };
              try {
                const run = await zxb(label, backupPath, args, spec);
                const m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
                report(run, `peaks: heapUsed ${m.heapUsed} MB, heapTotal ${m.heapTotal} MB, external ${m.external} MB (arrayBuffers ${m.arrayBuffers}), rss - heapTotal - external ${m.rssMinusHeapTotalAndExternal} MB`);
              } catch (e) {
                out(`  ${label}: FAILED ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
              }
            };
            await probe('CLI loaded, no work (getBackupInfo)', ['getBackupInfo'], [], P.zxb);
            await probe(`SmartScan (initial, ${MESSAGES}) probed`, ['doSmartScan', 'start', '--source', `maildir:${P.src}`]);
            await probe(`SmartScan (initial, ${SMALL}) probed, V8 heap capped at 64 MB`, ['doSmartScan', 'start', '--source', `maildir:${P.srcSmall}`], ['--max-old-space-size=64'], join(WORK, 'zxb-cap'));
            continue;
          }
        }
        if (r === undefined) continue;
        out(`  ${key}:`);
        for (const line of formatSummary(summarizeProfiles([dir], 12), '    ')) out(line);
      } catch (e) {
        out(`  ${key}: profile run failed: ${e instanceof Error ? e.message.split('\n').slice(0, 4).join(' / ') : String(e)}`);
      }
    }
    out();
  }
};

/** Phase 6 alone, on what a previous run left in the work dir (the scanner is the newest part). */
const realTimeOnly = async (): Promise<void> => {
  requireTools();
  if (!existsSync(join(P.zxb, 'config.json')) || !isDir(P.src)) {
    process.stderr.write(`--rts-only needs ${P.src} and the backup ${P.zxb} of a previous run with the same --work\n`);
    process.exit(2);
  }
  runNo = 100; // keep the logs of the previous run
  rmSync(P.profiles, { recursive: true, force: true });
  out(`zxbackup Real Time Scanner benchmark on ${P.src} (${uptime()})`);
  await smartScan('SmartScan first (the tree may have changed since the backup)', P.zxb, P.src);
  await realTimePhase();
  printTable();
  out();
  await profileMissed([]);
};

const main = async (): Promise<void> => {
  requireTools();
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true });
  const began = Date.now();
  out(`zxbackup Maildir benchmark: ${MESSAGES} messages (memory also at ${SMALL}), work dir ${WORK}`);
  out(`${version('restic', ['version'])}; ${version('borg', ['--version'])}; node ${process.version}; ${uptime()}`);
  out(`${new Date().toISOString()}  every figure is one whole process under ${TIME} -v (wall, user+sys CPU, max RSS)`);
  out();

  out('Corpus (tools/corpus/generate.ts, 2 domains x 5 users, seed 1)');
  report(await corpus('generate', 'generate.ts', ['--out', P.src, '--messages', String(MESSAGES), '--domains', '2', '--users', '5', '--seed', '1']), `${duMB(P.src).toFixed(0)} MB on disk`);
  report(await corpus('generate small', 'generate.ts', ['--out', P.srcSmall, '--messages', String(SMALL), '--domains', '2', '--users', '5', '--seed', '1']), `${duMB(P.srcSmall).toFixed(0)} MB on disk`);
  report(await timed('node -e 0', process.execPath, ['-e', '0']), 'bare Node start-up, for reference');
  const helpRun = report(await timed('zxbackup --help', process.execPath, [CLI, '--help']), 'CLI start-up, for reference');
  out();

  // 1. Initial backup
  out(`1. Initial backup of the ${MESSAGES}-message tree (${uptime()})`);
  const zInit = await smartScan('zxbackup SmartScan (initial)', P.zxb, P.src);
  await restic('restic init', ['init']);
  const rInit = report(await restic('restic backup (initial)', ['backup', '--host', 'bench', '.'], P.src));
  await borg('borg init', ['init', '--encryption', 'none']);
  const bInit = report(await borg('borg create (initial)', ['create', '::s1', '.'], P.src));
  ratioRow('initial backup', zInit, 'borg', bInit, 1.0, 'initial');
  ratioRow('initial backup', zInit, 'restic', rInit, undefined);
  out();

  // 2. No change
  out(`2. Second backup, nothing changed (${uptime()})`);
  const zSame = await smartScan('zxbackup SmartScan (no change)', P.zxb, P.src);
  const rSame = report(await restic('restic backup (no change)', ['backup', '--host', 'bench', '.'], P.src));
  const bSame = report(await borg('borg create (no change)', ['create', '::s2', '.'], P.src));
  ratioRow('no-change backup', zSame, 'borg', bSame, 0.5, 'no-change');
  ratioRow('no-change backup', zSame, 'restic', rSame, undefined);
  out();

  // 3. 1% changed
  out(`3. Backup after 1% of the messages changed (mutate.ts --fraction 0.01 --seed 2) (${uptime()})`);
  const mut = await corpus('mutate 1%', 'mutate.ts', ['--root', P.src, '--fraction', '0.01', '--seed', '2']);
  out(`  mutation: ${mut.stdout.trim()}`);
  const zOne = await smartScan('zxbackup SmartScan (1% changed)', P.zxb, P.src);
  const rOne = report(await restic('restic backup (1% changed)', ['backup', '--host', 'bench', '.'], P.src));
  const bOne = report(await borg('borg create (1% changed)', ['create', '::s3', '.'], P.src));
  ratioRow('1%-change backup', zOne, 'borg', bOne, 0.6, 'one-percent');
  ratioRow('1%-change backup', zOne, 'restic', rOne, undefined);
  out();

  // 4. Restore
  const accounts = await accountsOf(P.zxb);
  out(`4. Restore of every account at "last" into an empty tree (${accounts.length} doRestoreOnNewAccount processes, one per account, summed) (${uptime()})`);
  mkdirSync(P.restoreZxb, { recursive: true });
  const zRestoreRuns = await restoreAll('zxbackup restore', P.zxb, P.restoreZxb, accounts);
  for (const r of zRestoreRuns) report(r);
  const zRestore = report(sum(`zxbackup restore (sum of ${zRestoreRuns.length})`, zRestoreRuns));
  const rRestore = report(await restic('restic restore latest', ['restore', 'latest', '--target', P.restoreRestic]));
  mkdirSync(P.restoreBorg, { recursive: true });
  const bRestore = report(await borg('borg extract', ['extract', '::s3'], P.restoreBorg));
  ratioRow('restore all accounts', zRestore, 'restic', rRestore, 1.0, 'restore');
  ratioRow('restore all accounts', zRestore, 'borg', bRestore, undefined);
  {
    // Correctness of what was timed: the restored tree equals the source (bytes, flags, folders, dates).
    const expected = snapshotMaildirTree(P.src);
    const restored = snapshotMaildirTree(P.restoreZxb);
    const renamed: MaildirSnapshot = {};
    for (const account of accounts) {
      const r = restored[restoredName(account)];
      if (r !== undefined) renamed[account] = r;
    }
    const diff = diffSnapshots(expected, renamed, 10);
    out(diff.length === 0 ? `  restored tree equals the source (${Object.keys(expected).length} accounts: bytes, flags, folders, dates)` : `  RESTORED TREE DIFFERS from the source:\n    ${diff.join('\n    ')}`);
    plainRow('restored tree = source', diff.length === 0 ? 'equal' : `${diff.length}+ differences`, 'equal', diff.length === 0);
  }
  out();

  // 5. Memory
  out(`5. Peak memory of the initial SmartScan: ${SMALL} vs ${MESSAGES} messages (${uptime()})`);
  const zSmall = await smartScan(`zxbackup SmartScan (initial, ${SMALL})`, P.zxbSmall, P.srcSmall);
  report(zInit, `the ${MESSAGES}-message run of phase 1`);
  const maxOurs = Math.max(zInit.rssMB, zSame.rssMB, zOne.rssMB, zRestore.rssMB, zSmall.rssMB);
  const flat = zInit.rssMB <= zSmall.rssMB * 1.25;
  plainRow(`peak RSS initial scan ${SMALL} / ${MESSAGES}`, `${zSmall.rssMB.toFixed(0)} / ${zInit.rssMB.toFixed(0)} MB`, `flat (<= 1.25x)`, flat, 'memory', `-`, `${(zInit.rssMB / zSmall.rssMB).toFixed(2)}x`);
  plainRow('peak RSS, scans and restores', `${maxOurs.toFixed(0)} MB`, '<= 150 MB', maxOurs <= 150, 'memory', `borg ${Math.max(bInit.rssMB, bSame.rssMB, bOne.rssMB, bRestore.rssMB).toFixed(0)} MB, restic ${Math.max(rInit.rssMB, rSame.rssMB, rOne.rssMB, rRestore.rssMB).toFixed(0)} MB`);
  out();

  await realTimePhase();

  // 7. Issue 4: purge, deep coherency check, against sha256sum and the peers' checks
  out(`7. Retention (issue 4) over the same backup (${uptime()})`);
  const help = cliHelp();
  const txid = (() => {
    try {
      return (JSON.parse(readFileSync(join(P.zxb, 'txlog/ids/txid.json'), 'utf8')) as { reserved?: number }).reserved;
    } catch {
      return undefined;
    }
  })();
  out(`  transactions recorded in this backup: ${transactions} (the issue asks for 1,000,000; many mutation+scan rounds would take hours here, so retention.bench.ts covers that size)${txid === undefined ? '' : `; transaction ids reserved: ${txid}`}`);
  const zChecks: Run[] = [];
  if (!hasCommand(help, 'doCoherencyCheck')) out('  doCoherencyCheck: not available yet in this CLI (skipped)');
  else {
    const r = await zxb('zxbackup doCoherencyCheck --deep', P.zxb, ['doCoherencyCheck', '--deep'], { ok: [0, 6] });
    const c = jsonOf<{ summary?: string }>(r);
    zChecks.push(report(r, `${r.code === 6 ? 'exit 6, problems found' : 'exit 0'}: ${c.summary ?? '?'}`));
  }
  const sha = report(await timed('sha256sum over the blob files', 'sh', ['-c', 'find items -type f -print0 | xargs -0 sha256sum > /dev/null'], { cwd: P.zxb }), `${duMB(join(P.zxb, 'items')).toFixed(0)} MB of blobs`);
  const rCheck = report(await restic('restic check --read-data', ['check', '--read-data']), `${duMB(P.restic).toFixed(0)} MB repo`);
  const bCheck = report(await borg('borg check --verify-data', ['check', '--verify-data']), `${duMB(P.borg).toFixed(0)} MB repo`);
  const deep = zChecks[0];
  if (deep !== undefined) {
    ratioRow('doCoherencyCheck --deep', deep, 'restic check --read-data', rCheck, 1.0, 'deep-check');
    ratioRow('doCoherencyCheck --deep', deep, 'borg check --verify-data', bCheck, undefined);
    ratioRow('doCoherencyCheck --deep', deep, 'sha256sum', sha, undefined);
    plainRow('doCoherencyCheck --deep peak RSS', `${deep.rssMB.toFixed(0)} MB`, '<= 150 MB', deep.rssMB <= 150);
  }
  if (!hasCommand(help, 'doPurge')) out('  doPurge: not available yet in this CLI (skipped)');
  else {
    const p = await zxb('zxbackup doPurge', P.zxb, ['doPurge'], { env: { ZXBACKUP_NOW: FUTURE } });
    const s = jsonOf<{ itemsRemoved?: number; blobsDeleted?: number; bytesFreed?: number }>(p);
    const r = report(p, `ZXBACKUP_NOW=${FUTURE}: ${s.itemsRemoved} items and ${s.blobsDeleted} blobs (${((s.bytesFreed ?? 0) / 1e6).toFixed(1)} MB) removed`);
    plainRow(`doPurge (${transactions} tx)`, `${r.wall.toFixed(2)} s, ${r.rssMB.toFixed(0)} MB`, '< 30 s at 1M tx, <= 150 MB', r.rssMB <= 150 ? (transactions >= 1_000_000 ? r.wall < 30 : undefined) : false);
    if (hasCommand(help, 'doCoherencyCheck')) {
      const after = await zxb('zxbackup doCoherencyCheck after purge', P.zxb, ['doCoherencyCheck'], { ok: [0, 6] });
      report(after, after.code === 0 ? 'the purged backup is coherent' : 'PROBLEMS after the purge, see logs');
      plainRow('coherent after purge', after.code === 0 ? 'yes' : `exit ${after.code}`, 'exit 0', after.code === 0);
    }
  }
  const retentionBench = join(REPO, 'tools/bench/retention.bench.ts');
  if (opt['no-retention-bench']) out('  tools/bench/retention.bench.ts: skipped (--no-retention-bench)');
  else if (!existsSync(retentionBench)) out('  tools/bench/retention.bench.ts: not there yet (skipped)');
  else {
    const items = QUICK ? 2_000 : 20_000;
    out(`  tools/bench/retention.bench.ts (BENCH_ITEMS=${items}, its own synthetic store of ${items * 50} transactions):`);
    try {
      const r = await timed('retention.bench.ts', process.execPath, [TSN, '--transpile-only', retentionBench], {
        env: { BENCH_ITEMS: String(items), TS_NODE_COMPILER_OPTIONS: JSON.stringify({ rootDir: '.' }) },
      });
      for (const line of r.stdout.trim().split('\n')) out(`    | ${line}`);
      report(r, 'the whole retention bench, data generation included');
    } catch (e) {
      out(`    failed: ${e instanceof Error ? e.message.split('\n').slice(0, 6).join('\n    ') : String(e)}`);
    }
  }
  out();

  out(`Results (${MESSAGES} messages; ratios are wall time, CPU ratio in brackets; ${uptime()})`);
  printTable();
  out();

  await profileMissed(accounts);
  out(`CLI start-up alone (--help): ${fmtRun(helpRun)}. Total bench time ${((Date.now() - began) / 60000).toFixed(1)} min; logs in ${P.logs}; ${uptime()}`);
};

(opt['rts-only'] ? realTimeOnly() : main()).catch((e: unknown) => {
  process.stderr.write(`benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
