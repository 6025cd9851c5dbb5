import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import { parseJson } from './decode';
import { storeError, type StoreError } from './errors';

/*
 * Small files of the backup path (server.json, config.json, operations) that other
 * processes read while a writer runs: written whole to a temporary name, fsynced, renamed
 * over the old one, then the directory fsynced, so a reader sees the old or the new file and
 * a crash leaves one of them (plus perhaps a `.tmp` file that nothing reads).
 */

export const TMP_SUFFIX = '.tmp';

export const writeFileAtomic = async (path: string, data: string): Promise<void> => {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}${TMP_SUFFIX}`;
  const fh = await fs.open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, path);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(path));
};

export const fsyncDir = async (dir: string): Promise<void> => {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
};

export const isNotFound = (e: unknown): boolean => (e as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';

/** Read a JSON file: none if it does not exist, `DecodeError` if it is not JSON, `IOError` otherwise. */
export const readJsonFile =
  (path: string, op: string): TE.TaskEither<StoreError, O.Option<unknown>> =>
  async () => {
    let text: string;
    try {
      text = await fs.readFile(path, 'utf8');
    } catch (e) {
      return isNotFound(e) ? E.right(O.none) : E.left(storeError.io(op, e, path, `reading ${path}`));
    }
    return E.map(O.some)(parseJson(text, op, path));
  };

export const tryIO =
  <A>(op: string, key: string, body: () => Promise<A>): TE.TaskEither<StoreError, A> =>
  () =>
    body().then(
      (a) => E.right(a),
      (e: unknown) => E.left(storeError.io(op, e, key)),
    );
