import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as TE from 'fp-ts/TaskEither';
import * as O from 'fp-ts/Option';
import { ioError, type TxLogError } from './errors';

/** The one place where a throwing `node:fs` call becomes a `LogIOError`. */
export const tryIO = <A>(op: string, key: string | undefined, f: () => Promise<A>): TE.TaskEither<TxLogError, A> =>
  TE.tryCatch(f, (cause) => ioError(op, key, cause));

export const errnoCode = (e: unknown): string | undefined =>
  typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;

/** Makes a create, rename or unlink inside `dir` survive a power loss. */
export const fsyncDir = async (dir: string): Promise<void> => {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
};

/**
 * Replaces `file` so that after a crash it holds either the old or the new content, never a
 * mix: write a temporary file, fsync it, rename it over `file`, fsync the directory.
 */
export const writeFileAtomic = async (file: string, content: string): Promise<void> => {
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(content, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(path.dirname(file));
};

export const readFileIfExists = async (file: string): Promise<O.Option<string>> => {
  try {
    return O.some(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return O.none;
    throw e;
  }
};

/** Temporary files of `writeFileAtomic` left by a crash; only called while holding the lock. */
export const removeStaleTemps = async (dir: string, base: string): Promise<void> => {
  for (const name of await fsp.readdir(dir)) {
    if (name.startsWith(`${base}.tmp-`)) await fsp.rm(path.join(dir, name), { force: true });
  }
};
