import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { OperationStore } from './api';
import { decodeVersioned } from './decode';
import { storeError, type StoreError } from './errors';
import { isNotFound, readJsonFile, writeFileAtomic } from './files';
import { isOperationId, OperationRecord } from './records';

/*
 * `<backup path>/operations/<id>.json`, one file per operation, each write atomic: a
 * `monitor` in another process reads whole records only.
 */

export const OPERATIONS_DIR = 'operations';

export const makeOperationStore = (root: string): OperationStore => {
  const dir = join(root, OPERATIONS_DIR);
  const fileOf = (id: string) => join(dir, `${id}.json`);
  const badId = (op: string, id: string) =>
    E.left(storeError.decode(op, `operation id ${JSON.stringify(id)} is not valid (letters, digits, '.', '_', '-')`, id));

  const get = (id: string): TE.TaskEither<StoreError, O.Option<OperationRecord>> => async () => {
    if (!isOperationId(id)) return badId('operations.get', id);
    const raw = await readJsonFile(fileOf(id), 'operations.get')();
    if (E.isLeft(raw)) return raw;
    if (O.isNone(raw.right)) return E.right(O.none);
    return E.map((r: OperationRecord) => O.some(r))(decodeVersioned(OperationRecord, 'operations.get', fileOf(id))(raw.right.value));
  };

  return {
    put: (op) => async () => {
      if (!isOperationId(op.id)) return badId('operations.put', op.id);
      try {
        await fs.mkdir(dir, { recursive: true });
        await writeFileAtomic(fileOf(op.id), `${JSON.stringify(op, null, 2)}\n`);
        return E.right(undefined);
      } catch (e) {
        return E.left(storeError.io('operations.put', e, fileOf(op.id), `writing operation ${op.id}`));
      }
    },
    get,
    list: () => async () => {
      let names: string[];
      try {
        names = await fs.readdir(dir);
      } catch (e) {
        return isNotFound(e) ? E.right([]) : E.left(storeError.io('operations.list', e, dir, `listing ${dir}`));
      }
      const out: OperationRecord[] = [];
      for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
        const r = await get(name.slice(0, -'.json'.length))();
        if (E.isLeft(r)) return r;
        // A file removed between readdir and read is simply gone.
        if (O.isSome(r.right)) out.push(r.right.value);
      }
      return E.right(out.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id)));
    },
  };
};
