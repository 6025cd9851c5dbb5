import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/*
 * Runs the BUILT `zxbackup` CLI as real processes, as an administrator would: every call is a
 * fresh `node apps/cli/bin/zxbackup.cjs`, so start-up, locking, exit codes and output format are
 * what is tested. Build first (`npx nx run cli-e2e:e2e` does).
 */

export const WORKSPACE = resolve(__dirname, '../../../..');
export const CLI = join(WORKSPACE, 'apps/cli/bin/zxbackup.cjs');

/** The bundle is what the command runs (bin/zxbackup.cjs): without it the tests would pass on tsc's dist/ alone. */
export const assertCliBuilt = (): void => {
  if (!existsSync(join(WORKSPACE, 'apps/cli/dist/zxbackup.cjs'))) {
    throw new Error('apps/cli is not built: run `npx nx run cli:build` (the e2e target does it first)');
  }
};

export interface CliResult {
  readonly args: ReadonlyArray<string>;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stdoutBytes: Buffer;
  readonly stderr: string;
}

/** The environment of every CLI process: the caller's, without the variables that change what the CLI does. */
const cliEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env['ZXBACKUP_PATH'];
  delete env['ZXBACKUP_NOW'];
  return env;
};

export const describeRun = (r: CliResult): string =>
  `zxbackup ${r.args.join(' ')}\n  exit ${r.code ?? r.signal}\n  stdout: ${r.stdout.slice(0, 2000)}\n  stderr: ${r.stderr.slice(0, 2000)}`;

/** A CLI process started in the background (the Real Time Scanner, a scan to be killed). */
export interface Background {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves with the stderr text once it matches `pattern`; rejects on timeout or exit. */
  waitForStderr(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  readonly exited: Promise<CliResult>;
  isRunning(): boolean;
}

export const startCli = (backupPath: string, args: ReadonlyArray<string>, options: { readonly env?: NodeJS.ProcessEnv } = {}): Background => {
  const fullArgs = ['--backup-path', backupPath, ...args];
  const child = spawn(process.execPath, [CLI, ...fullArgs], { cwd: WORKSPACE, env: cliEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  let running = true;
  const listeners = new Set<() => void>();
  const { stdout, stderr } = child;
  if (stdout === null || stderr === null) throw new Error('spawned without pipes');
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => {
    err += b.toString('utf8');
    for (const l of listeners) l();
  });
  const exited = new Promise<CliResult>((resolveExit, rejectExit) => {
    child.on('error', rejectExit);
    child.on('close', (code, signal) => {
      running = false;
      for (const l of listeners) l();
      const stdoutBytes = Buffer.concat(out);
      resolveExit({ args: fullArgs, code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr: err });
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    stdout: () => Buffer.concat(out).toString('utf8'),
    stderr: () => err,
    exited,
    isRunning: () => running,
    waitForStderr: (pattern, timeoutMs) =>
      new Promise((resolveWait, rejectWait) => {
        const check = (): void => {
          const m = err.match(pattern);
          if (m) return done(() => resolveWait(m));
          if (!running) return done(() => rejectWait(new Error(`zxbackup ${fullArgs.join(' ')} exited before printing ${pattern}:\n${err}`)));
        };
        const timer = setTimeout(() => done(() => rejectWait(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from zxbackup ${fullArgs.join(' ')}:\n${err}`))), timeoutMs);
        const done = (f: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      }),
  };
};

/** Runs one CLI command to its end. */
export const zx = async (backupPath: string, args: ReadonlyArray<string>, options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number } = {}): Promise<CliResult> => {
  const bg = startCli(backupPath, args, options);
  const timeoutMs = options.timeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      bg.child.kill('SIGKILL');
      reject(new Error(`zxbackup ${args.join(' ')} took more than ${timeoutMs} ms:\n${bg.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([bg.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
};

/** Runs a command that must succeed and print JSON (`--json` is added). */
export const zxJson = async <T = unknown>(backupPath: string, args: ReadonlyArray<string>, options: { readonly timeoutMs?: number } = {}): Promise<T> => {
  const r = await zx(backupPath, ['--json', ...args], options);
  if (r.code !== 0) throw new Error(`expected exit 0 from\n${describeRun(r)}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(`stdout is not JSON (${(e as Error).message}) from\n${describeRun(r)}`);
  }
};

/** The refusal names a holder that is gone (with --json the error is on stdout). */
const lockedByDeadProcess = (r: CliResult): boolean => /no longer running/.test(r.stderr + r.stdout);

/**
 * Like `zx`, but waits while the backup path is still locked by a process that was killed: its
 * lock expires a few seconds after the last refresh (the CLI says so, exit 4).
 */
export const zxAfterKill = async (backupPath: string, args: ReadonlyArray<string>, waitMs = 30_000): Promise<CliResult> => {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await zx(backupPath, args);
    if (r.code !== 4 || !lockedByDeadProcess(r) || Date.now() > deadline) return r;
    await sleep(1000);
  }
};

/** A value an earlier step must have produced (steps of one suite share state and run in order). */
export const need = <T>(value: T | undefined | null, what: string): T => {
  if (value === undefined || value === null) throw new Error(`missing ${what} (an earlier step failed?)`);
  return value;
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A wall-clock instant to restore at, with a second of quiet on each side: whatever the CLI
 * recorded before the call is strictly before it, whatever comes after is strictly after.
 */
export const quietInstant = async (): Promise<number> => {
  await sleep(1100);
  const t = Date.now();
  await sleep(1100);
  return t;
};

export const iso = (ms: number): string => new Date(ms).toISOString();

/** `--json` result of doSmartScan / doAccountScan. */
export interface ScanSummary {
  readonly operation: string;
  readonly accounts: number;
  readonly foldersScanned: number;
  readonly foldersSkipped: number;
  readonly foldersRenamed: number;
  readonly created: number;
  readonly updated: number;
  readonly moved: number;
  readonly deleted: number;
  readonly messagesRead: number;
  readonly recorded: number;
  readonly stopped: boolean;
  readonly failures: ReadonlyArray<unknown>;
}

export interface RestoreSummary {
  readonly operation: string;
  readonly folders: number;
  readonly messages: number;
  readonly undeleted: number;
  readonly skipped: number;
}

export interface UndeleteSummary {
  readonly operation: string;
  readonly restored: number;
  readonly skipped: number;
  readonly ignored: number;
  readonly folders: ReadonlyArray<string>;
}

export interface SearchHit {
  readonly itemId: string;
  readonly kind: string;
  readonly folder?: string;
  readonly receivedAt?: number;
  readonly deletedAt?: number;
}

export interface OperationView {
  readonly id: string;
  readonly kind: string;
  readonly state: string;
}

export interface RealTimeStats {
  readonly received: number;
  readonly batches: number;
  readonly recorded: number;
  readonly accountScans: number;
}

/** Counters of the Real Time Scanner's periodic stderr line (`--stats-every N`). */
const STATS_LINE = /changes (\d+), batches (\d+), recorded (\d+), account scans (\d+)/g;

const lastStats = (stderr: string): string | undefined => {
  let last: string | undefined;
  for (const m of stderr.matchAll(STATS_LINE)) last = m.slice(1).join(',');
  return last;
};

/**
 * Waits until a Real Time Scanner started with `--stats-every 1` has received changes (unless
 * `requireChanges` is false) and its counters stayed still for `quietMs`: it has recorded
 * everything it was told about.
 */
export const waitUntilScannerSettles = async (
  scanner: Background,
  options: { readonly quietMs?: number; readonly timeoutMs?: number; readonly requireChanges?: boolean } = {},
): Promise<void> => {
  const quietMs = options.quietMs ?? 3000;
  const requireChanges = options.requireChanges ?? true;
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  let seen = lastStats(scanner.stderr());
  let since = Date.now();
  for (;;) {
    await sleep(250);
    if (!scanner.isRunning()) throw new Error(`the Real Time Scanner exited:\n${scanner.stderr()}`);
    const now = lastStats(scanner.stderr());
    if (now !== seen) {
      seen = now;
      since = Date.now();
    } else if (now !== undefined && (!requireChanges || !now.startsWith('0,')) && Date.now() - since >= quietMs) {
      return;
    }
    if (Date.now() > deadline) throw new Error(`the Real Time Scanner did not settle:\n${scanner.stderr().slice(-3000)}`);
  }
};

/** Stops a background CLI with SIGTERM and returns how it ended. */
export const stopWith = async (bg: Background, signal: NodeJS.Signals, timeoutMs = 60_000): Promise<CliResult> => {
  bg.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      bg.child.kill('SIGKILL');
      reject(new Error(`zxbackup did not stop within ${timeoutMs} ms of ${signal}:\n${bg.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([bg.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
};

/** Starts `realTimeScanner run`, retrying while a killed predecessor's lock is still live; resolves when it watches. */
export const startRealTimeScanner = async (backupPath: string): Promise<Background> => {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const bg = startCli(backupPath, ['--json', 'realTimeScanner', 'run', '--stats-every', '1']);
    try {
      await bg.waitForStderr(/watching/, 90_000);
      return bg;
    } catch (e) {
      const r = await bg.exited.catch(() => undefined);
      if (r && r.code === 4 && lockedByDeadProcess(r) && Date.now() < deadline) {
        await sleep(1000);
        continue;
      }
      if (bg.isRunning()) bg.child.kill('SIGKILL');
      throw e;
    }
  }
};
