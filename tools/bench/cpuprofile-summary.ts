/*
 * Summary of V8 .cpuprofile files (written by `node --cpu-prof`): where the samples were.
 *   node_modules/.bin/ts-node --transpile-only tools/bench/cpuprofile-summary.ts DIR|FILE... [--top N]
 * Prints, over all the given profiles together: total sampled time, self time grouped by module
 * (our package, npm package, node internals, GC, idle...), the top functions by self time and the
 * top functions by inclusive time (recursion counted once). Used by maildir.bench.ts to say what
 * bounds a missed target.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: ReadonlyArray<number>;
}
interface CpuProfile {
  readonly nodes: ReadonlyArray<ProfileNode>;
  readonly samples?: ReadonlyArray<number>;
  readonly timeDeltas?: ReadonlyArray<number>;
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileSummary {
  readonly files: number;
  /** Sampled time in ms, idle excluded (wall clock between samples: on a loaded machine it includes time the thread waited for a CPU). */
  readonly busyMs: number;
  readonly idleMs: number;
  /** Loading code (inside `require`) first, then the module of the sampled function. */
  readonly byActivity: ReadonlyArray<Entry>;
  /** Top functions by self time, samples inside `require` left out. */
  readonly bySelf: ReadonlyArray<Entry>;
  /** Our own functions (packages/*, apps/*) by inclusive time, recursion counted once. */
  readonly byTotal: ReadonlyArray<Entry>;
  /** Module loading by package whose top-level code is on the stack (inclusive: a package counts what it requires). */
  readonly byLoad: ReadonlyArray<Entry>;
}
export interface Entry {
  readonly name: string;
  readonly ms: number;
}

/** Native bindings of node:fs as they appear in profiles (no url). */
const FS_BINDINGS = new Set(['open', 'openFileHandle', 'read', 'readFileUtf8', 'close', 'fstat', 'lstat', 'stat', 'utimes', 'futimes', 'writeBuffer', 'writeBuffers', 'writeString', 'fsync', 'fdatasync', 'rename', 'unlink', 'readdir', 'mkdir', 'internalModuleStat', 'realpath', 'copyFile', 'link']);

const LOADING = 'loading code (require: resolve, read, compile)';

/** Where a function lives, coarse enough to name what bounds a run. */
export const moduleOf = (frame: CallFrame): string => {
  const { url, functionName } = frame;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (garbage collector), (program), (idle), (root)
    return FS_BINDINGS.has(functionName) ? 'node:fs' : '(native)';
  }
  const pkg = /\/(packages|apps)\/([^/]+)\//.exec(url);
  const nm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (nm !== null && nm[1] !== undefined && !nm[1].startsWith('@zxbackup/')) return `npm:${nm[1]}`;
  if (pkg !== null) return `${pkg[1]}/${pkg[2]}`;
  if (url.startsWith('node:')) {
    const m = /^node:(internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[2] ?? url}`;
  }
  return url.replace(/^file:\/\//, '');
};

const nameOf = (frame: CallFrame): string => {
  const file = frame.url.replace(/^file:\/\//, '').replace(/^.*\/(packages|apps|node_modules)\//, '$1/');
  return `${frame.functionName || '(anonymous)'}${file === '' ? '' : ` ${file}:${frame.lineNumber + 1}`}`;
};

/** Our code, minus the entry files whose inclusive time is just "everything". */
const isOurs = (frame: CallFrame): boolean =>
  /\/(packages|apps)\/[^/]+\/(dist|src)\//.test(frame.url) && !/\/apps\/cli\/(dist|src)\/(main|cli|index)\.[jt]s$/.test(frame.url) && !frame.url.includes('/node_modules/');

const profilesIn = (paths: ReadonlyArray<string>): string[] =>
  paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(p, f))
      : [p],
  );

export const summarizeProfiles = (paths: ReadonlyArray<string>, top = 12): ProfileSummary => {
  const files = profilesIn(paths);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const activity = new Map<string, number>();
  const load = new Map<string, number>();
  let busyMs = 0;
  let idleMs = 0;
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const selfUs = new Map<number, number>();
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    // timeDeltas[i] is the gap before sample i; the gap after it is the better estimate of its cost.
    for (let i = 0; i < samples.length; i++) {
      const id = samples[i];
      if (id === undefined) continue;
      selfUs.set(id, (selfUs.get(id) ?? 0) + (deltas[i + 1] ?? 0));
    }
    for (const [id, us] of selfUs) {
      const node = byId.get(id);
      if (node === undefined) continue;
      const ms = us / 1000;
      if (node.callFrame.functionName === '(idle)') {
        idleMs += ms;
        continue;
      }
      busyMs += ms;
      const stack: CallFrame[] = [];
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const frame = byId.get(cur)?.callFrame;
        if (frame !== undefined && frame.functionName !== '(root)') stack.push(frame);
      }
      const loading = stack.some((f) => f.functionName === 'Module._load' || f.functionName === 'compileForInternalLoader');
      add(activity, loading ? LOADING : moduleOf(node.callFrame), ms);
      if (!loading) add(self, nameOf(node.callFrame), ms);
      else {
        const packages = new Set(stack.filter((f) => f.functionName === '' && f.lineNumber === 0 && f.url !== '' && !f.url.startsWith('node:')).map(moduleOf));
        for (const name of packages) add(load, name, ms);
      }
      const seen = new Set<string>();
      for (const frame of stack) {
        if (!isOurs(frame)) continue;
        const key = nameOf(frame);
        if (seen.has(key)) continue;
        seen.add(key);
        add(total, key, ms);
      }
    }
  }
  const sorted = (m: Map<string, number>) =>
    [...m.entries()]
      .map(([name, ms]) => ({ name, ms }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top);
  return { files: files.length, busyMs, idleMs, byActivity: sorted(activity), bySelf: sorted(self), byTotal: sorted(total), byLoad: sorted(load) };
};

export const formatSummary = (s: ProfileSummary, indent = '  '): string[] => {
  const pct = (ms: number) => `${((100 * ms) / Math.max(s.busyMs, 1e-9)).toFixed(1).padStart(5)}%`;
  const row = (r: Entry) => `${indent}  ${(r.ms / 1000).toFixed(2).padStart(7)} s ${pct(r.ms)}  ${r.name}`;
  return [
    `${indent}${s.files} profile(s): ${(s.busyMs / 1000).toFixed(2)} s sampled on the main thread, ${(s.idleMs / 1000).toFixed(2)} s idle (waiting for I/O or worker threads); % of sampled time`,
    `${indent}by activity (module loading, else the module of the running function):`,
    ...s.byActivity.map(row),
    `${indent}top functions by self time (outside module loading):`,
    ...s.bySelf.map(row),
    `${indent}our functions by inclusive time:`,
    ...s.byTotal.map(row),
    `${indent}module loading by package (inclusive: with what it requires):`,
    ...s.byLoad.map(row),
  ];
};

if (require.main === module) {
  const args = process.argv.slice(2);
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 15;
  const paths = args.filter((_a, i) => i !== topAt && i !== topAt + 1);
  if (paths.length === 0 || !Number.isInteger(top) || top <= 0) {
    process.stderr.write('usage: cpuprofile-summary.ts DIR|FILE... [--top N]\n');
    process.exit(2);
  }
  process.stdout.write(formatSummary(summarizeProfiles(paths, top), '').join('\n') + '\n');
}
