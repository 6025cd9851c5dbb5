/*
 * Benchmark of the local blob volume against the tools an administrator knows.
 *   npx tsc -b packages/volumes-local/tsconfig.lib.json   # the volume is loaded from dist
 *   npx ts-node --transpile-only tools/bench/volumes-local.bench.ts
 * 1. Generates BENCH_FILES (20,000) files of mail-like sizes (log-normal, median ~20 KB, tail to a
 *    few MB, ~1 GB in all; text, MIME with base64 attachments, raw random documents) with a
 *    seeded PRNG, in a temp dir that is removed at the end.
 * 2. In each of BENCH_ROUNDS (3) rounds, times `sha256sum`, `tar -cf`, `cp -r` (the floor of a
 *    file-per-blob layout here), a floor loop over them (the least a put does: read, SHA-256,
 *    write, rename) and brotli q0 over the text files alone (what `auto` adds to it), with the
 *    bound the two give on two cores; then, for each compression mode in
 *    BENCH_MODES (auto,never) and each way of putting in BENCH_PUTS (file; `file,stream` for
 *    both): a put of every file (BENCH_CONCURRENCY at once, one flush at the end: durable) and
 *    a verified get of every blob. `file` is `putFile(path)` (the volume reads the file itself,
 *    as for a Maildir message); `stream` is `put(createReadStream(path))` (any other source).
 * 3. Prints each figure's median and min..max over the rounds, the ratios of the medians, and
 *    the same-round ratios' median and range.
 * BENCH_BASELINE=<a built dist/index.js of another version of the package> measures it too, in
 * each round beside this one (in turns first and second), as "... (baseline)": a before/after
 * under the same load (NODE_PATH=node_modules when that build lies outside the workspace).
 * Targets: put >= 0.5x tar throughput; get >= 1.0x sha256sum throughput.
 * UV_THREADPOOL_SIZE defaults to 16 here (libuv's default is 4), as the apps may set it: a put
 * is a handful of small file-system calls, each a round trip to that pool, and under load four
 * threads are too few to keep them overlapping (measured: put ~1.5x faster with 16).
 * Every phase reads warm files: these are CPU-and-syscall figures, not disk figures; only the
 * flush pays for the disk. Before each timed phase, as root (BENCH_SETTLE=0 turns it off), the
 * bench syncs, drops the page cache and reads the phase's input again: each phase then starts
 * from the same memory state. Without it the cache filled up with earlier phases' output over a
 * run, and a phase that had to reclaim pages paid for it: tar's CPU for the same 1 GB went from
 * 1.27 s in one round to 4.42 s in the next, and every same-round ratio with it.
 */
import { execSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, renameSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import type { Digest } from '@zxbackup/volume-contract';
// The built package (dist): its I/O workers run compiled JavaScript, as in the apps.
import { makeLocalVolume, type LocalVolume } from '@zxbackup/volumes-local';

// Read by libuv when its pool first starts, after this line: no file-system call ran yet.
process.env.UV_THREADPOOL_SIZE ??= '16';

const FILES = Number(process.env.BENCH_FILES ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const MODES = (process.env.BENCH_MODES ?? 'auto,never').split(',') as Array<'auto' | 'never' | 'always'>;
const PUTS = (process.env.BENCH_PUTS ?? 'file').split(',') as Array<'file' | 'stream'>;
const SETTLE = process.env.BENCH_SETTLE !== '0' && process.getuid?.() === 0;

/** Sync, drop the page cache, and read `warm` (directories) back into it: see the header. */
const settle = (...warm: readonly string[]): void => {
  execSync('sync');
  if (!SETTLE) return;
  writeFileSync('/proc/sys/vm/drop_caches', '3');
  for (const dir of warm) execSync(`find ${JSON.stringify(dir)} -type f -print0 | xargs -0 cat > /dev/null`);
};
const BASELINE = process.env.BENCH_BASELINE;
const MEDIAN = 20 * 1024;
const SIGMA = 1.4; // mean = median * e^(sigma^2/2) ~ 53 KB: 20,000 files ~ 1 GB
const MAX_SIZE = 16 * 1024 * 1024;
const MB = 1024 * 1024;

const must = async <A>(te: () => Promise<E.Either<unknown, A>>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
  return r.right;
};

// ---------------------------------------------------------------- corpus

let seed = 0x2545f491;
const random = (): number => {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed / 4294967296;
};
const gaussian = (): number => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());

const randomPool = (size: number): Buffer => {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) out.writeUInt32LE((random() * 4294967296) >>> 0, i);
  return out;
};

const WORDS = Array.from({ length: 5000 }, () => {
  const n = 2 + Math.floor(random() * 9);
  let w = '';
  for (let j = 0; j < n; j += 1) w += String.fromCharCode(97 + Math.floor(random() * 26));
  return w;
});
const textPool = (size: number): Buffer => {
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const line: string[] = [];
    // Zipf-ish: frequent words dominate, as in prose.
    for (let i = 0; i < 12; i += 1) line.push(WORDS[Math.floor(random() ** 3 * WORDS.length)] ?? 'x');
    const text = `${line.join(' ')}\r\n`;
    parts.push(text);
    length += text.length;
  }
  return Buffer.from(parts.join(''), 'latin1');
};

const TEXT = textPool(8 * MB);
const RANDOM = randomPool(64 * MB);
const slice = (pool: Buffer, size: number): Buffer => {
  const at = Math.floor(random() * Math.max(1, pool.length - size));
  return pool.subarray(at, at + size);
};
const base64Of = (size: number): Buffer =>
  Buffer.from(slice(RANDOM, Math.ceil((size * 3) / 4)).toString('base64').replace(/(.{76})/g, '$1\r\n'), 'latin1').subarray(0, size);

type Kind = 'text' | 'mime' | 'document';
const fileContent = (i: number, size: number): { kind: Kind; parts: Buffer[] } => {
  const header = Buffer.from(`Message-ID: <${i}.bench@example.test>\r\nSubject: bench ${i}\r\n\r\n`, 'latin1');
  const rest = Math.max(0, size - header.length);
  if (size <= 64 * 1024) return { kind: 'text', parts: [header, slice(TEXT, rest)] };
  if (random() < 0.3) return { kind: 'document', parts: [header, slice(RANDOM, rest)] };
  const body = Math.min(rest, 4096 + Math.floor(random() * 16_384));
  return { kind: 'mime', parts: [header, slice(TEXT, body), base64Of(rest - body)] };
};

const generate = async (dir: string): Promise<{ files: string[]; textFiles: string[]; bytes: number; kinds: Record<Kind, number> }> => {
  const files: string[] = [];
  const textFiles: string[] = [];
  const kinds: Record<Kind, number> = { text: 0, mime: 0, document: 0 };
  let bytes = 0;
  for (let i = 0; i < FILES; i += 1) {
    const size = Math.min(MAX_SIZE, Math.max(200, Math.round(MEDIAN * Math.exp(SIGMA * gaussian()))));
    const sub = path.join(dir, String(Math.floor(i / 1000)).padStart(3, '0'));
    if (i % 1000 === 0) await fs.mkdir(sub, { recursive: true });
    const file = path.join(sub, `${i}.eml`);
    const { kind, parts } = fileContent(i, size);
    const content = Buffer.concat(parts);
    await fs.writeFile(file, content);
    files.push(file);
    bytes += content.length;
    kinds[kind] += content.length;
    if (kind === 'text') textFiles.push(file);
  }
  return { files, textFiles, bytes, kinds };
};

// ---------------------------------------------------------------- phases

const seconds = async (run: () => Promise<unknown> | unknown): Promise<number> => {
  const t0 = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

/** Wall time and our process's CPU time (all threads: main, libuv pool). */
const measure = async (run: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> => {
  const c0 = process.cpuUsage();
  const wall = await seconds(run);
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
};

/** Wall time and the CPU time of a shell pipeline's processes. */
const measureShell = (command: string): { wall: number; cpu: number } => {
  const t0 = process.hrtime.bigint();
  const run = spawnSync('/bin/bash', ['-c', `TIMEFORMAT='%3U %3S'; time ( ${command} 2>/dev/null )`], { encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (run.status !== 0) throw new Error(`${command} failed: ${run.stderr}`);
  const [user, sys] = run.stderr.trim().split(/\s+/).slice(-2).map(Number);
  return { wall, cpu: (user ?? 0) + (sys ?? 0) };
};

const runLimited = async <A>(items: readonly A[], limit: number, task: (item: A, index: number) => Promise<void>): Promise<void> => {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const index = next;
        next += 1;
        await task(items[index] as A, index);
      }
    }),
  );
};

const duOf = (dir: string): number => Number(execSync(`du -sb ${JSON.stringify(dir)}`).toString().split('\t')[0]);

interface Measured {
  readonly wall: number;
  readonly cpu: number;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

const BUILDS: ReadonlyArray<{ readonly tag: string; readonly make: typeof makeLocalVolume }> = [
  { tag: '', make: makeLocalVolume },
  ...(BASELINE === undefined ? [] : [{ tag: ' (baseline)', make: (createRequire(__filename)(path.resolve(BASELINE)) as { makeLocalVolume: typeof makeLocalVolume }).makeLocalVolume }]),
];

// The codec the volume compresses with (brotli quality 0, 1 MB window), from the same build: not
// part of the package's API, so taken from its dist beside the entry point.
const volumeCodec = createRequire(__filename)(path.join(path.dirname(require.resolve('@zxbackup/volumes-local')), 'lib/codec-choice.js')) as { compressSync: (bytes: Buffer) => Buffer };

const SHA = 'sha256sum';
const TAR = 'tar -cf (not fsynced)';
const FLOOR = 'floor loop (not fsynced)';
const COMPRESSION = 'brotli q0 of the text files';
const AUTO_BOUND = '(floor + brotli) cpu / 2 cores';

const main = async (): Promise<void> => {
  const base = await fs.mkdtemp(path.join(tmpdir(), 'zxb-bench-volumes-local-'));
  try {
    const corpus = path.join(base, 'corpus');
    let files: string[] = [];
    let bytes = 0;
    let textFiles: string[] = [];
    let kinds: Record<Kind, number> = { text: 0, mime: 0, document: 0 };
    const genTime = await seconds(async () => ({ files, textFiles, bytes, kinds } = await generate(corpus)));
    const sizes = await Promise.all(files.map(async (f) => (await fs.stat(f)).size));
    const sorted = [...sizes].sort((a, b) => a - b);
    const pct = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`corpus: ${files.length} files, ${(bytes / MB).toFixed(0)} MB in ${genTime.toFixed(1)} s`);
    console.log(
      `  sizes: median ${(pct(0.5) / 1024).toFixed(1)} KB, p90 ${(pct(0.9) / 1024).toFixed(0)} KB, p99 ${(pct(0.99) / 1024).toFixed(0)} KB, max ${(pct(1) / MB).toFixed(1)} MB`,
    );
    console.log(
      `  bytes: text ${((100 * kinds.text) / bytes).toFixed(0)}%, MIME with base64 ${((100 * kinds.mime) / bytes).toFixed(0)}%, random documents ${((100 * kinds.document) / bytes).toFixed(0)}%`,
    );
    console.log(`  node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE}, ZXBACKUP_IO_THREADS=${process.env.ZXBACKUP_IO_THREADS ?? 'default'}, concurrency ${CONCURRENCY}, ${ROUNDS} rounds, ${SETTLE ? "page cache dropped and inputs re-read before each phase" : "page cache not dropped (BENCH_SETTLE=0 or not root)"}, load ${loadavg()}`);
    execSync('sync');

    const mbps = (s: number): string => `${(bytes / MB / s).toFixed(0).padStart(4)} MB/s`;
    const line = (label: string, m: Measured, extra = ''): void =>
      console.log(`${label.padEnd(36)} ${m.wall.toFixed(2).padStart(6)} s  ${mbps(m.wall)}  cpu ${m.cpu.toFixed(2).padStart(6)} s${extra}`);
    // Every figure of every round, by label, in the order first seen.
    const figures = new Map<string, Measured[]>();
    const record = (label: string, m: Measured, extra = ''): Measured => {
      const seen = figures.get(label) ?? [];
      seen.push(m);
      figures.set(label, seen);
      line(label, m, extra);
      return m;
    };
    // Same-round ratios (the peer's wall time / ours: a throughput ratio), by name, with the two
    // figures they compare, for the ratio of the medians at the end.
    const ratios = new Map<string, { peer: string; ours: string; values: number[] }>();
    const ratio = (name: string, peer: string, ours: string): string => {
      const value = (figures.get(peer)?.at(-1)?.wall ?? NaN) / (figures.get(ours)?.at(-1)?.wall ?? NaN);
      const entry = ratios.get(name) ?? { peer, ours, values: [] };
      entry.values.push(value);
      ratios.set(name, entry);
      return value.toFixed(2);
    };

    // Rounds interleave every peer and mode, so a slow spell of this shared VM (tar's own time
    // swings 2.4x from run to run) hits all of them, and the medians compare like with like. Each
    // round writes into new directories and nothing is deleted until the end: on a file system
    // without a journal (this VM's ext4), creating files right after tens of thousands were
    // deleted is several times slower (the allocator skips recently freed inodes), which would
    // charge one tool for another's cleanup.
    for (let round = 1; round <= ROUNDS; round += 1) {
      const dir = path.join(base, `round-${round}`);
      await fs.mkdir(dir);
      console.log(`\nround ${round}/${ROUNDS} (load ${loadavg()})`);
      settle(corpus);
      const sha = record(SHA, measureShell(`find ${JSON.stringify(corpus)} -type f -print0 | xargs -0 sha256sum > /dev/null`));
      settle(corpus);
      const tar = record(TAR, measureShell(`tar -cf ${JSON.stringify(path.join(dir, 'x.tar'))} -C ${JSON.stringify(corpus)} .`));
      settle(corpus);
      // The floor of a one-file-per-blob layout on this file system: the same files copied as
      // files (no hashing, no compression, no fsync). tar writes one file; we create 20,000.
      const copy = record('cp -r (not fsynced)', measureShell(`cp -r ${JSON.stringify(corpus)} ${JSON.stringify(path.join(dir, 'copy'))}`));
      console.log(`  = ${ratio('cp -r vs tar', TAR, 'cp -r (not fsynced)')}x tar's throughput`);
      settle(corpus);
      // The floor of the layout itself: one thread doing the least a content-addressed put must
      // do per file (read, SHA-256, create a temp file, write, rename it under its digest), with
      // synchronous calls and no fsync, no compression, no dedup check.
      const floorDir = path.join(dir, 'floor');
      await fs.mkdir(path.join(floorDir, 'tmp'), { recursive: true });
      for (let i = 0; i < 256; i++) await fs.mkdir(path.join(floorDir, i.toString(16).padStart(2, '0')));
      const floor = await measure(async () => {
        files.forEach((file, i) => {
          const raw = readFileSync(file);
          const digest = createHash('sha256').update(raw).digest('hex');
          const temp = path.join(floorDir, 'tmp', String(i));
          writeFileSync(temp, raw, { flag: 'wx' });
          renameSync(temp, path.join(floorDir, digest.slice(-2), digest));
        });
      });
      record(FLOOR, floor);
      console.log(`  = ${ratio('floor loop vs tar', TAR, FLOOR)}x tar's throughput`);
      // What `auto` adds to the floor: the text files compressed (the mail text `auto` keeps
      // compressed; base64 and random bytes it stores raw), one thread, by the volume's own codec.
      const textCompression = await measure(async () => {
        for (const file of textFiles) volumeCodec.compressSync(readFileSync(file));
      });
      record(COMPRESSION, textCompression);
      // Both cores busy all the time with nothing else to do: the least a put in `auto` can take here.
      const bound = { wall: (floor.cpu + textCompression.cpu) / 2, cpu: floor.cpu + textCompression.cpu };
      record(AUTO_BOUND, bound);
      console.log(`  = ${ratio('auto lower bound vs tar', TAR, AUTO_BOUND)}x tar's throughput at best for put auto (no fsync, no overhead, two cores)`);
      execSync('sync');

      for (const compression of MODES) for (const how of PUTS) for (const build of round % 2 === 1 ? BUILDS : [...BUILDS].reverse()) {
        const root = path.join(dir, `volume-${compression}-${how}${build.tag === '' ? '' : '-baseline'}`);
        await fs.mkdir(root);
        settle(corpus);
        const volume: LocalVolume = await must(build.make({ root, compression }));
        const digests: Digest[] = new Array<Digest>(files.length);
        const put = await measure(() =>
          runLimited(files, CONCURRENCY, async (file, i) => {
            const size = sizes[i] ?? MB;
            const result =
              how === 'file'
                ? await must(volume.putFile(file, { size }))
                : await must(volume.put(createReadStream(file, { highWaterMark: Math.max(1, Math.min(MB, size)) }), { size }));
            digests[i] = result.digest;
          }),
        );
        const flush = await measure(() => must(volume.flush()));
        const stored = duOf(root);
        settle(root);
        let read = 0;
        const get = await measure(() =>
          runLimited(digests, CONCURRENCY, async (digest) => {
            const stream = await must(volume.get(digest));
            for await (const chunk of stream) read += (chunk as Buffer).length;
          }),
        );
        if (read !== bytes) throw new Error(`get read ${read} bytes, expected ${bytes}`);
        await must(volume.close());
        const durable = { wall: put.wall + flush.wall, cpu: put.cpu + flush.cpu };
        const putLabel = `put ${how} ${compression}${build.tag}`;
        const getLabel = `${how === 'file' ? `get ${compression}, verified` : `get ${compression} (${how} put)`}${build.tag}`;
        record(`${putLabel} (no flush)`, put);
        record(`flush ${how} ${compression}${build.tag}`, flush);
        record(`${putLabel} + flush`, durable, `  on disk ${(stored / MB).toFixed(0)} MB = ${((100 * stored) / bytes).toFixed(0)}%`);
        record(getLabel, get);
        console.log(
          `  put+flush vs tar: ${ratio(`${putLabel} + flush vs tar`, TAR, `${putLabel} + flush`)}x (target >= 0.5x); put alone ${(tar.wall / put.wall).toFixed(2)}x; vs cp -r ${(copy.wall / durable.wall).toFixed(2)}x; vs the floor loop ${ratio(`${putLabel} + flush vs floor loop`, FLOOR, `${putLabel} + flush`)}x; cpu per byte ${(durable.cpu / tar.cpu).toFixed(2)}x tar's`,
        );
        console.log(`  get vs sha256sum: ${ratio(`${getLabel} vs sha256sum`, SHA, getLabel)}x (target >= 1.0x); cpu per byte ${(get.cpu / sha.cpu).toFixed(2)}x sha256sum's`);
        execSync('sync');
      }
    }

    const range = (xs: readonly number[], digits: number): string => `${Math.min(...xs).toFixed(digits)}..${Math.max(...xs).toFixed(digits)}`;
    const wallOf = (label: string): number => median((figures.get(label) ?? []).map((m) => m.wall));
    console.log(`\nmedians of ${ROUNDS} rounds (${files.length} files, ${(bytes / MB).toFixed(0)} MB; load at the end ${loadavg()})`);
    console.log(`${'figure'.padEnd(36)} ${'median s'.padStart(8)}  ${'min..max s'.padStart(12)}  ${'MB/s'.padStart(6)}  ${'cpu s'.padStart(6)}`);
    for (const [label, ms] of figures) {
      const walls = ms.map((m) => m.wall);
      console.log(
        `${label.padEnd(36)} ${median(walls).toFixed(2).padStart(8)}  ${range(walls, 2).padStart(12)}  ${(bytes / MB / median(walls)).toFixed(0).padStart(6)}  ${median(ms.map((m) => m.cpu)).toFixed(2).padStart(6)}`,
      );
    }
    console.log(`\nthroughput ratios: of the medians, and (in brackets) the same-round ratios' median and min..max`);
    for (const [name, { peer, ours, values }] of ratios) {
      console.log(`  ${name.padEnd(54)} ${(wallOf(peer) / wallOf(ours)).toFixed(2)}x  (${median(values).toFixed(2)}x, ${range(values, 2)})`);
    }
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
};

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
