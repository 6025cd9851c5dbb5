import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import * as E from 'fp-ts/Either';
import * as t from 'io-ts';
import * as ts from 'typescript';

export const expectRight = <A>(e: E.Either<unknown, A>): A => {
  if (E.isLeft(e)) throw new Error(`expected Right, got Left ${JSON.stringify(e.left)}`);
  return e.right;
};

export const expectLeft = <L>(e: E.Either<L, unknown>): L => {
  if (E.isRight(e)) throw new Error(`expected Left, got Right ${JSON.stringify(e.right)}`);
  return e.left;
};

/** A fresh directory under the OS temp dir; `cleanup` removes every one made so far. */
export const makeTempDirs = (): { readonly make: () => string; readonly cleanup: () => void } => {
  const made: string[] = [];
  return {
    make: () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'zxb-txlog-'));
      made.push(dir);
      return dir;
    },
    cleanup: () => {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** The record the crash tests append: its body is a function of `i`, so any misread shows. */
export const TestRecord = t.type({ i: t.number, body: t.string });
export type TestRecord = t.TypeOf<typeof TestRecord>;

export const bodyFor = (i: number): string => {
  const unit = `r${i}:`;
  return unit.repeat(1 + ((i * 7919) % 997));
};

export const makeTestRecord = (i: number): TestRecord => ({ i, body: bodyFor(i) });

/**
 * Transpiles this package's sources (no type check, no ts-node: a loaded CI box makes ts-node
 * take seconds per child) into `out-tsc/children-<pid>`, inside the package so that Node
 * finds node_modules. Returns the output root; `remove` deletes it.
 */
export const compileForChildren = (): { readonly root: string; readonly remove: () => void } => {
  const src = path.resolve(__dirname, '..');
  const root = path.resolve(__dirname, '../../out-tsc', `children-${process.pid}`);
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
      d.isDirectory() ? walk(path.join(dir, d.name)) : d.name.endsWith('.ts') && !d.name.endsWith('.spec.ts') ? [path.join(dir, d.name)] : [],
    );
  for (const file of walk(src)) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    const target = path.join(root, path.relative(src, file)).replace(/\.ts$/, '.js');
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
};

/** Runs `test-support/<script>.js` from a `compileForChildren` output with plain node; stdout is piped. */
export const spawnChild = (root: string, script: string, args: ReadonlyArray<string>): ChildProcess =>
  spawn(process.execPath, [path.join(root, 'test-support', `${script}.js`), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });

/** Calls `onLine` for each stdout line of `child`; resolves with its exit once it is gone. */
export const watchChild = (
  child: ChildProcess,
  onLine: (line: string) => void,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
  let rest = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
};
