import type { Digest } from '@zxbackup/volume-contract';
import type { ObjectStore } from './object-store';

/**
 * What this process knows of the store's blobs without asking it, so that `put` needs no
 * lookup per blob on a volume that started empty (an initial SmartScan): when one listing
 * request shows nothing under the items prefix, the store holds exactly the blobs this process
 * confirmed since. A prefix belongs to one server and one writer; should another writer add a
 * blob meanwhile, the worst case is an idempotent second upload of it. Memory stays bounded:
 * past `cap` digests the knowledge is dropped and every put asks the store again.
 */
export interface KnownObjects {
  /** true / false when known; undefined when the store must be asked. */
  holds(d: Digest): Promise<boolean | undefined>;
  /** The store confirmed it holds `d` (uploaded, or found there). */
  confirmed(d: Digest): void;
  /** `d` was deleted from the store. */
  removed(d: Digest): void;
}

export const makeKnownObjects = (store: ObjectStore, itemsPrefix: string, cap: number): KnownObjects => {
  const held = new Set<Digest>();
  let probing: Promise<'empty' | 'notEmpty' | 'unknown'> | undefined;
  let valid = true;
  const drop = (): void => {
    valid = false;
    held.clear();
  };

  // One listing request: is anything under the prefix?
  const probe = async (): Promise<'empty' | 'notEmpty' | 'unknown'> => {
    let found = false;
    const r = await store.list(itemsPrefix, () => {
      found = true;
      throw new Error('stop listing'); // the first key answers the question
    })();
    return found ? 'notEmpty' : r._tag === 'Right' ? 'empty' : 'unknown';
  };

  return {
    holds: async (d) => {
      if (!valid) return undefined;
      probing ??= probe();
      const r = await probing;
      if (r === 'unknown') probing = undefined; // the store did not answer: the next put asks again
      if (r === 'notEmpty') drop();
      return r === 'empty' && valid ? held.has(d) : undefined;
    },
    confirmed: (d) => {
      if (!valid) return;
      held.add(d);
      if (held.size > cap) drop();
    },
    removed: (d) => {
      held.delete(d);
    },
  };
};
