import { promises as fsp, type Stats } from 'node:fs';
import * as TE from 'fp-ts/TaskEither';
import type { SourceError } from '../source';

/* The one place where node:fs rejections become our error tags. */

export const errnoOf = (e: unknown): string | undefined =>
  typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;

export const isNotFound = (e: unknown): boolean => {
  const c = errnoOf(e);
  return c === 'ENOENT' || c === 'ENOTDIR';
};

export const fsError = (op: string, key: string, e: unknown): SourceError =>
  isNotFound(e)
    ? { _tag: 'SourceNotFound', op, key, message: `${op}: ${key} does not exist` }
    : { _tag: 'SourceIOError', op, key, message: `${op} ${key}: ${e instanceof Error ? e.message : String(e)}`, cause: e };

/** Run an fs promise, mapping its rejection once. */
export const tryFs = <A>(op: string, key: string, f: () => Promise<A>): TE.TaskEither<SourceError, A> =>
  TE.tryCatch(f, (e) => fsError(op, key, e));

/** A rejection that means "not there" becomes `undefined`; every other one stays an error. */
export const orMissing = async <A>(p: Promise<A>): Promise<A | undefined> => {
  try {
    return await p;
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
};

export const statOrMissing = (path: string): Promise<Stats | undefined> => orMissing(fsp.stat(path));
export const readdirOrMissing = (path: string): Promise<string[] | undefined> => orMissing(fsp.readdir(path));
export const readTextOrMissing = (path: string): Promise<string | undefined> => orMissing(fsp.readFile(path, 'utf8'));

/** Serialises async work per key (one writer per folder / file inside this process). */
export const makeKeyedMutex = () => {
  const tails = new Map<string, Promise<unknown>>();
  return <A>(key: string, f: () => Promise<A>): Promise<A> => {
    const prev = tails.get(key) ?? Promise.resolve();
    const run = prev.then(f, f);
    const tail = run.catch(() => undefined);
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  };
};
