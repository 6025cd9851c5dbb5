import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import * as lockfile from 'proper-lockfile';
import type { ConfigStore } from './api';
import { FORMAT_VERSION } from './codecs';
import { decodeVersioned } from './decode';
import { storeError, type StoreError } from './errors';
import { readJsonFile, writeFileAtomic } from './files';
import { ConfigFile } from './records';

/*
 * `<backup path>/config.json`. Changes are read-modify-write under a short lock
 * (`config.json.lock`), so two processes setting attributes at once both win.
 */

export const CONFIG_FILE = 'config.json';

export const makeConfigStore = (root: string): ConfigStore => {
  const path = join(root, CONFIG_FILE);

  const read = async (op: string): Promise<E.Either<StoreError, Record<string, string>>> => {
    const raw = await readJsonFile(path, op)();
    if (E.isLeft(raw)) return raw;
    if (O.isNone(raw.right)) return E.right({});
    return E.map((c: ConfigFile) => c.attributes)(decodeVersioned(ConfigFile, op, path)(raw.right.value));
  };

  const change = (op: string, f: (attrs: Record<string, string>) => Record<string, string>): TE.TaskEither<StoreError, void> => async () => {
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(path, {
        realpath: false,
        lockfilePath: `${path}.lock`,
        stale: 10_000,
        retries: { retries: 50, minTimeout: 20, maxTimeout: 200 },
      });
    } catch (e) {
      return E.left(storeError.io(op, e, path, `locking ${path}`));
    }
    try {
      const current = await read(op);
      if (E.isLeft(current)) return current;
      const next: ConfigFile = { format: FORMAT_VERSION, attributes: f(current.right) };
      await writeFileAtomic(path, `${JSON.stringify(next, null, 2)}\n`);
      return E.right(undefined);
    } catch (e) {
      return E.left(storeError.io(op, e, path, `writing ${path}`));
    } finally {
      await release().catch(() => undefined); // the change is written; a lock left behind goes stale
    }
  };

  return {
    get: (attribute) => async () => E.map((a: Record<string, string>) => O.fromNullable(a[attribute]))(await read('config.get')),
    list: () => () => read('config.list'),
    set: (attribute, value) => {
      if (attribute.length === 0) return async () => E.left(storeError.decode('config.set', 'an attribute name cannot be empty', attribute));
      return change('config.set', (a) => ({ ...a, [attribute]: value }));
    },
    unset: (attribute) =>
      change('config.unset', (a) => {
        const { [attribute]: _gone, ...rest } = a;
        return rest;
      }),
  };
};
