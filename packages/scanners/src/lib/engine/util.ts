import type { ItemMeta, Transaction } from '@zxbackup/item-store';

/** The metadata part of a transaction (without tx, start, end, op, digest, size). */
export const metaOf = (entry: Transaction): ItemMeta => {
  const { tx: _tx, start: _start, end: _end, op: _op, digest: _digest, size: _size, ...meta } = entry;
  return meta as ItemMeta;
};

/** Equality of JSON values, a property set to `undefined` counting as absent (as in JSON). */
export const sameJson = (a: unknown, b: unknown): boolean => {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson(ra[k], rb[k]));
};

/**
 * Runs `task` over `items` with at most `limit` at a time. On the first failure no new task
 * starts; the in-flight ones finish, then it rejects with that failure.
 */
export const forEachConcurrent = async <A>(items: ReadonlyArray<A>, limit: number, task: (a: A) => Promise<void>): Promise<void> => {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const item = items[next++] as A;
      try {
        await task(item);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed !== undefined) throw failed.error;
};
