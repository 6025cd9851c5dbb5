#!/usr/bin/env node
// The installed `zxbackup` command: runs the built CLI (build with `npx nx run cli:build`).

// V8 optimizes a function once it has run ~66 KB of bytecode-weighted "budget" (its default
// --interrupt-budget). Most of this command's functions run for a second or two: the optimizing
// compiler then spends a core on code it barely uses, beside the threads doing the work. With
// 8x the budget, only the truly hot functions are optimized: a 70 MB restore from S3 used ~0.5 s
// less CPU and ~0.6 s less wall time (medians of 6 runs on 2 cores), and a 20,000-message
// SmartScan was no slower. Set before anything of ours is compiled, so it applies to all of it.
require('node:v8').setFlagsFromString('--interrupt-budget=540672');

const fs = require('node:fs');
const path = require('node:path');

// dist/zxbackup.cjs is the whole CLI in one file (see ../bundle.cjs and README "Start-up"): it
// starts ~100 ms faster than tsc's dist/main.js and its ~240 modules. `nx run cli:build` writes
// both, the bundle last. A plain `tsc -b` rebuilds dist/ but not the bundle, and touches
// dist/tsconfig.lib.tsbuildinfo: a bundle older than that (by more than a cache restore's
// spread) is stale, and so is run the code tsc just built. No bundle at all: the same.
const dist = path.join(__dirname, '..', 'dist');
const BUNDLE = path.join(dist, 'zxbackup.cjs');
const STALE_AFTER_MS = 2000;
const stat = (file) => fs.statSync(file, { throwIfNoEntry: false });

// V8 code cache of the bundle, beside it: compiling the 0.9 MB bundle is most of what is left of
// its start-up (~50 ms); with the cache V8 only checks and deserializes. V8 checks the cache's
// V8 version and flags but identifies the source by its length only, so the file carries its own
// key (the bundle's size and mtime, Node's version) and a CRC of the data: a stale, foreign or
// damaged cache is ignored and replaced. It lives only beside the bundle, which is as trusted as
// the bundle itself (never in a shared temp directory: a cache is code).
const CACHE = `${BUNDLE}.v8cache`;
const MAGIC = 'zxbackup-v8cache-1';

const readCache = (key, crc32) => {
  let data;
  try {
    data = fs.readFileSync(CACHE);
  } catch {
    return undefined; // none yet (or unreadable): compile, and try to write one
  }
  const [magic, storedKey, crc] = data.subarray(0, 256).toString('latin1').split('\n', 3);
  const start = `${magic}\n${storedKey}\n${crc}\n`.length;
  if (magic !== MAGIC || storedKey !== key || start > data.length) return undefined;
  const payload = data.subarray(start);
  return crc === crc32(payload).toString(16) ? payload : undefined;
};

// A cache that cannot be written (read-only install, another user's files, full disk) only
// costs the compile it would have saved: the next run tries again.
const writeCache = (key, crc32, payload) => {
  const tmp = `${CACHE}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, Buffer.concat([Buffer.from(`${MAGIC}\n${key}\n${crc32(payload).toString(16)}\n`, 'latin1'), payload]));
    fs.renameSync(tmp, CACHE);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
};

const runBundle = (bundleStat) => {
  // With --enable-source-maps Node maps stack traces only of the modules it loads itself.
  if (process.sourceMapsEnabled) return require(BUNDLE);
  const vm = require('node:vm');
  const Module = require('node:module');
  const { crc32 } = require('node:zlib');
  const key = `${process.version} ${process.arch} ${bundleStat.size} ${bundleStat.mtimeMs}`;
  const cachedData = readCache(key, crc32);
  const script = new vm.Script(Module.wrap(fs.readFileSync(BUNDLE, 'utf8')), { filename: BUNDLE, cachedData });
  const bundleModule = new Module(BUNDLE, module);
  bundleModule.filename = BUNDLE;
  script.runInThisContext()(bundleModule.exports, Module.createRequire(BUNDLE), bundleModule, BUNDLE, dist);
  // After the top level and the synchronous start of the command ran: the cache then holds
  // what every command compiles at start-up, whichever command wrote it.
  if (cachedData === undefined || script.cachedDataRejected === true) writeCache(key, crc32, script.createCachedData());
};

const bundleStat = stat(BUNDLE);
const compiled = stat(path.join(dist, 'tsconfig.lib.tsbuildinfo'));
if (bundleStat !== undefined && (compiled === undefined || compiled.mtimeMs - bundleStat.mtimeMs < STALE_AFTER_MS)) runBundle(bundleStat);
else if (stat(path.join(dist, 'main.js')) !== undefined) require('../dist/main.js');
else {
  process.stderr.write(`zxbackup: the CLI is not built (no ${BUNDLE}): run \`npx nx run cli:build\` in the workspace\n`);
  process.exitCode = 70;
}
