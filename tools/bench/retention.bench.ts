/*
 * Benchmark of the Backup Purge and the deep Coherency Check (@zxbackup/retention) on a real
 * classic-level metadata store and a local volume in a temp dir (removed after).
 *   npx ts-node --transpile-only tools/bench/retention.bench.ts
 * Data: 20,000 items x 50 transactions = 1,000,000 transactions in 20 accounts, one blob per
 * item (~20,000 blobs: mail text 2-60 KB, some 100-600 KB attachments of random bytes); half
 * of the items were deleted 400 days ago. Each phase runs in its own process, so its peak RSS
 * (getrusage maxrss) is its own. `sha256sum` over the same blob files is printed for reference
 * (restic check --read-data is compared by the lead).
 * Targets: purge of 1M transactions < 30 s; peak memory <= 150 MB.
 * With TypeScript 6, ts-node stops on TS5011 (no rootDir in the root tsconfig.json); until that
 * is set, run with TS_NODE_COMPILER_OPTIONS='{"rootDir":"."}'. BENCH_ITEMS scales the data.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type { AccountId, ItemChange, ItemId, TxId } from '../../packages/item-store/src/index';
import { openMetadataStore } from '../../packages/item-store/src/index';
import { makeLocalVolume } from '../../packages/volumes-local/src/index';
import { checkCoherency, executePurgePlan, formatPurgePlan, planPurge } from '../../packages/retention/src/index';

const ITEMS = Number(process.env.BENCH_ITEMS ?? 20_000);
const VERSIONS = 50;
const ACCOUNTS = 20;
const DAY = 86_400_000;
const NOW = Date.now();
const BASE = NOW - 800 * DAY;

const must = async <A>(te: () => Promise<E.Either<unknown, A>>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left, (_k, v: unknown) => (v instanceof Error ? v.message : v)));
  return r.right;
};

/** Deterministic bytes: mail-like text (compressible) or random (attachments). */
const blobBytes = (i: number): Buffer => {
  let s = (i * 2654435761) >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const attachment = i % 20 === 0;
  const size = attachment ? 100_000 + (rnd() % 500_000) : 2_000 + (rnd() % 58_000);
  if (attachment) {
    const out = Buffer.allocUnsafe(size);
    for (let k = 0; k < size; k += 4) out.writeUInt32LE(rnd(), Math.min(k, size - 4));
    return out;
  }
  const words = ['backup', 'mailbox', 'the', 'of', 'meeting', 'invoice', 'regards', 'zimbra', 'and', 'to', 'please', 'report'];
  const head = `Message-ID: <${i}@bench.test>\r\nSubject: report ${i}\r\n\r\n`;
  const parts: string[] = [head];
  let length = head.length;
  while (length < size) {
    const w = `${words[rnd() % words.length]}${rnd() % 7 === 0 ? `-${rnd() % 100000}` : ''}${rnd() % 11 === 0 ? '\r\n' : ' '}`;
    parts.push(w);
    length += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, size);
};

/*
 * Memory: `maxRSS` of the phase's process includes ts-node and the TypeScript compiler it loads
 * (~150 MB before any work); `baselineRssMb` is the RSS when the work starts and
 * `workPeakRssMb` the highest RSS sampled during the work, so the difference is what the work costs.
 */
const mb = (bytes: number) => Math.round(bytes / 1048576);
let baseline = 0;
let sampledPeak = 0;
let heapPeak = 0;
const sample = () => {
  sampledPeak = Math.max(sampledPeak, process.memoryUsage.rss());
  heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
};
let cpuAtStart = process.cpuUsage();
const startWork = () => {
  cpuAtStart = process.cpuUsage();
  baseline = process.memoryUsage.rss();
  sampledPeak = baseline;
  setInterval(sample, 20).unref();
};
/** Wall-clock seconds at which each progress phase first reported, from the work's start. */
const phases: Record<string, number> = {};
let workStart = 0;
const onProgress = (p: { phase: string }) => {
  sample();
  if (!(p.phase in phases)) phases[p.phase] = (Date.now() - workStart) / 1000;
};
const phaseResult = (extra: Record<string, unknown>) => {
  sample();
  const peakMb = Math.round(process.resourceUsage().maxRSS / 1024);
  const cpu = process.cpuUsage(cpuAtStart);
  // CPU seconds (user + system) of this process: less sensitive than wall time to a busy machine.
  const cpuSeconds = Math.round((cpu.user + cpu.system) / 1e4) / 100;
  process.stdout.write(`RESULT ${JSON.stringify({ ...extra, cpuSeconds, phaseStarts: phases, baselineRssMb: mb(baseline), workPeakRssMb: mb(sampledPeak), heapUsedPeakMb: mb(heapPeak), processMaxRssMb: peakMb })}\n`);
};

const setup = async (dir: string) => {
  const items = join(dir, 'items');
  mkdirSync(items, { recursive: true });
  const volume = await must(makeLocalVolume({ root: items }));
  const store = await must(openMetadataStore(join(dir, 'metadata')));
  const t0 = Date.now();
  const digests: string[] = [];
  let bytes = 0;
  for (let i = 0; i < ITEMS; i++) {
    const content = blobBytes(i);
    bytes += content.length;
    const put = await must(volume.put(Readable.from([content]), { size: content.length }));
    digests.push(put.digest);
    sizes.push(content.length);
  }
  await must(volume.flush());
  const tBlobs = Date.now();
  let tx = 0;
  const BATCH = 1000;
  let changes: ItemChange[] = [];
  // Version v of every item, round by round, so transaction ids and instants increase together.
  for (let v = 0; v < VERSIONS; v++) {
    for (let i = 0; i < ITEMS; i++) {
      const account = `user${i % ACCOUNTS}@bench.test` as AccountId;
      const itemId = `m${i}` as ItemId;
      const deleted = i % 2 === 0;
      const at = deleted ? BASE + v * DAY + i : NOW - (VERSIONS - v) * DAY + i;
      if (deleted && v === VERSIONS - 1) changes.push({ kind: 'delete', account, itemId, tx: ++tx as TxId, at });
      else
        changes.push({
          kind: 'upsert',
          account,
          itemId,
          tx: ++tx as TxId,
          at,
          meta: { kind: 'message', folderId: `f${i % 7}` as ItemId, flags: v % 2 === 0 ? ['\\Seen'] : ['\\Flagged', '\\Seen'], receivedAt: BASE, subject: `report ${i} revision ${v}`, from: `s${i % 97}@example.test`, to: [`u${i % 13}@example.test`] },
          digest: digests[i] as string,
          size: sizes[i] as number,
        });
      if (changes.length === BATCH) {
        await must(store.commit({ changes }));
        changes = [];
      }
    }
  }
  if (changes.length > 0) await must(store.commit({ changes }));
  await must(store.close());
  phaseResult({ phase: 'setup', blobs: ITEMS, blobBytes: bytes, transactions: tx, blobSeconds: (tBlobs - t0) / 1000, metadataSeconds: (Date.now() - tBlobs) / 1000 });
};
const sizes: number[] = [];

const open = async (dir: string) => ({
  volume: await must(makeLocalVolume({ root: join(dir, 'items') })),
  store: await must(openMetadataStore(join(dir, 'metadata'))),
});

const check = async (dir: string, label: string) => {
  const { store, volume } = await open(dir);
  startWork();
  const t0 = (workStart = Date.now());
  const report = await must(checkCoherency({ store, volume, deep: true, onProgress }));
  const seconds = (Date.now() - t0) / 1000;
  await must(store.close());
  phaseResult({ phase: label, seconds, summary: report.summary, problems: report.problems.length, histories: report.histories, transactions: report.transactions, bytesRead: report.bytesRead });
};

const purge = async (dir: string) => {
  const { store, volume } = await open(dir);
  startWork();
  const t0 = (workStart = Date.now());
  const plan = await must(planPurge({ store, policy: { dataRetentionDays: 30, accountRetentionDays: 30 }, now: NOW, graceMs: 0, onProgress }));
  const tPlan = Date.now();
  const summary = await must(executePurgePlan(plan, { store, volume, onProgress }));
  const seconds = (Date.now() - t0) / 1000;
  await must(store.close());
  phaseResult({ phase: 'purge', seconds, planSeconds: (tPlan - t0) / 1000, plan: formatPurgePlan(plan).slice(0, 4), summary });
};

const child = (phase: string, dir: string): Record<string, unknown> => {
  // BENCH_NODE_OPTIONS (e.g. --max-old-space-size=64) applies to the measured phases only.
  const env = phase === 'setup' ? process.env : { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${process.env.BENCH_NODE_OPTIONS ?? ''}` };
  const r = spawnSync('npx', ['ts-node', '--transpile-only', __filename, phase, dir], { encoding: 'utf8', maxBuffer: 1 << 26, env });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || line === undefined) throw new Error(`${phase} failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return JSON.parse(line.slice(7)) as Record<string, unknown>;
};

const main = async () => {
  const [phase, dir = ''] = process.argv.slice(2);
  if (phase === 'setup') return setup(dir);
  if (phase === 'check') return check(dir, 'deep check');
  if (phase === 'purge') return purge(dir);
  const root = mkdtempSync(join(tmpdir(), 'zxb-retention-bench-'));
  try {
    console.log(JSON.stringify(child('setup', root)));
    console.log(JSON.stringify({ loadAverage: (await import('node:os')).loadavg() }));
    const t0 = Date.now();
    const sha = spawnSync('sh', ['-c', `find "${join(root, 'items')}" -type f -path '*/[0-9a-f][0-9a-f]/*' -print0 | xargs -0 sha256sum | wc -l`], { encoding: 'utf8' });
    console.log(JSON.stringify({ phase: 'sha256sum (blob files, reference)', seconds: (Date.now() - t0) / 1000, files: Number(sha.stdout.trim()) }));
    console.log(JSON.stringify(child('check', root)));
    console.log(JSON.stringify(child('purge', root)));
    console.log(JSON.stringify({ ...child('check', root), phase: 'deep check after purge' }));
    console.log(JSON.stringify({ loadAverage: (await import('node:os')).loadavg() }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
};

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
