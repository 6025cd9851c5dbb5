// Bundles the CLI into dist/zxbackup.cjs (run by `nx run cli:build` after tsc, see project.json).
//
// Why: loading the CLI as ~240 CommonJS modules (our packages' dist, yargs, fp-ts, io-ts, tslib
// required ~90 times...) cost ~245 ms before any command ran; one file costs far less (figures
// in README.md, "Start-up"). tsc still type-checks and emits dist/ (the package's library
// surface, the specs, and the fallback of bin/zxbackup.cjs).
//
// What stays outside the bundle, required from node_modules at run time: the packages our code
// requires lazily, at first use only (minio, archiver, tar-stream, nodemailer, libmime): bundled,
// every command would compile them for nothing.
// Files found by path at run time:
// - classic-level's native addon (node-gyp-build looks in classic-level's directory).
// - @zxbackup/volumes-local starts its I/O worker from `io-worker.js` beside its own code
//   (`__dirname`); in the bundle that is dist/, so the worker is bundled as a second entry,
//   dist/io-worker.js (one file too: the worker starts faster as well).
// - yargs reads its translations from `../locales` beside its build/ directory: its `__dirname`
//   is pointed back at node_modules/yargs/build.
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const cliRoot = __dirname;
const outdir = path.join(cliRoot, 'dist');
const LAZY = ['minio', 'archiver', 'tar-stream', 'nodemailer', 'libmime'];

/**
 * yargs as Node loads it (its CommonJS build: the ESM one finds its files from `import.meta.url`,
 * which a CommonJS bundle has not), with its `__dirname` (where it reads its locales) pointed
 * back at node_modules/yargs/build.
 */
const yargsAsRequired = {
  name: 'yargs-as-required',
  setup(build) {
    build.onResolve({ filter: /^yargs$/ }, () => ({ path: require.resolve('yargs') }));
    build.onLoad({ filter: /[\\/]node_modules[\\/]yargs[\\/]build[\\/]index\.cjs$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const uses = source.split('__dirname').length - 1;
      if (uses !== 1) throw new Error(`bundle.cjs: expected one __dirname in ${args.path}, found ${uses}: check yargs' locale lookup`);
      const real = 'require("node:path").dirname(require.resolve("yargs/package.json"))+"/build"';
      return { contents: source.replace('__dirname', `(${real})`), loader: 'js' };
    });
  },
};

/**
 * classic-level's JavaScript (and abstract-level's) in the bundle; only its native addon is found
 * at run time, by node-gyp-build, in classic-level's own directory rather than `__dirname`.
 */
const classicLevelBinding = {
  name: 'classic-level-binding',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]classic-level[\\/]binding\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (source.trim() !== "module.exports = require('node-gyp-build')(__dirname)") throw new Error(`bundle.cjs: ${args.path} changed: check how classic-level finds its addon`);
      return { contents: "module.exports = require('node-gyp-build')(require('node:path').dirname(require.resolve('classic-level/package.json')))", loader: 'js' };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // Our packages from their TypeScript sources (what tsc type-checked), not from their dist.
  conditions: ['@zxbackup/source'],
  // fp-ts and io-ts as ES modules (their `module` field): hoisted into one scope and tree-shaken,
  // where their CommonJS build costs a wrapper and a copy of every export per import.
  mainFields: ['module', 'main'],
  sourcemap: 'linked',
  sourcesContent: false,
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: path.join(cliRoot, '..', '..'),
  tsconfig: path.join(cliRoot, 'tsconfig.lib.json'),
};

const main = async () => {
  const result = await esbuild.build({
    ...common,
    entryPoints: { zxbackup: path.join(cliRoot, 'src', 'main.ts') },
    outExtension: { '.js': '.cjs' },
    outdir,
    // ts-node: only when io-pool runs from its .ts sources (its own specs), never in the bundle.
    external: [...LAZY, 'ts-node/*', 'yargs/package.json', 'classic-level/package.json'],
    plugins: [yargsAsRequired, classicLevelBinding],
    metafile: true,
  });
  await esbuild.build({
    ...common,
    entryPoints: { 'io-worker': require.resolve('@zxbackup/volumes-local/package.json').replace(/package\.json$/, 'src/lib/io-worker.ts') },
    outdir,
  });
  // esbuild escapes non-ASCII in code but keeps it in the few comments it keeps; one non-ASCII
  // character makes the whole 0.9 MB a two-byte string for V8 (slower to read and compile).
  // Replaced by as many '?' as UTF-16 units, so the source map's columns stay right.
  const file = path.join(outdir, 'zxbackup.cjs');
  const bundle = readFileSync(file, 'utf8').replace(/[^\x00-\x7f]/gu, (c) => '?'.repeat(c.length));
  writeFileSync(file, bundle);
  // The bundled io-pool must look for the worker by the name emitted above.
  if (!bundle.includes('"io-worker.js"')) throw new Error('bundle.cjs: the bundle no longer names "io-worker.js": check @zxbackup/volumes-local io-pool.ts');
  const inputs = Object.keys(result.metafile.inputs).length;
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + (o.bytes ?? 0), 0);
  process.stdout.write(`bundled apps/cli/dist/zxbackup.cjs and io-worker.js: ${inputs} modules, ${(bytes / 1e6).toFixed(1)} MB with the map\n`);
};

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
