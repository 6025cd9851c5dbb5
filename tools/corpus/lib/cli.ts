import { parseArgs, type ParseArgsConfig } from 'node:util';

/*
 * Tiny helpers for the corpus CLIs: node's parseArgs plus number checks. Bad input is a usage
 * error (exit 2) with the usage text, never a stack trace.
 */

export class UsageError extends Error {}

export const parse = (argv: ReadonlyArray<string>, options: NonNullable<ParseArgsConfig['options']>): Record<string, string | boolean | undefined> => {
  try {
    return parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
};

export const str = (v: Record<string, string | boolean | undefined>, name: string, fallback?: string): string => {
  const x = v[name];
  if (typeof x === 'string' && x !== '') return x;
  if (fallback !== undefined) return fallback;
  throw new UsageError(`--${name} is required`);
};

export const num = (v: Record<string, string | boolean | undefined>, name: string, fallback: number | undefined, check: (n: number) => boolean, what: string): number => {
  const x = v[name];
  if (x === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`);
    return fallback;
  }
  const n = Number(x);
  if (typeof x !== 'string' || x.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${name} must be ${what}, got ${String(x)}`);
  return n;
};

export const isoDate = (v: Record<string, string | boolean | undefined>, name: string, fallback: string): string => {
  const x = str(v, name, fallback);
  if (Number.isNaN(Date.parse(x))) throw new UsageError(`--${name} must be an ISO date, got ${x}`);
  return x;
};

export const runMain = (usage: string, main: () => number | Promise<number>): void => {
  Promise.resolve()
    .then(main)
    .then(
      (code) => {
        process.exitCode = code;
      },
      (e: unknown) => {
        if (e instanceof UsageError) {
          process.stderr.write(`${e.message}\n\n${usage}`);
          process.exitCode = 2;
        } else {
          process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
          process.exitCode = 1;
        }
      },
    );
};
