import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { openMetadataStore, type MetadataStore } from '@zxbackup/item-store';
import type { TxIdSource } from '../engine/types';

/** Helpers shared by the engine and restore specs (no jest globals here: it compiles with the library). */

export const unwrap = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got Left: ${JSON.stringify(r.left, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`);
  return r.right;
};

export const unwrapLeft = async <L, A>(te: TE.TaskEither<L, A>): Promise<L> => {
  const r = await te();
  if (E.isRight(r)) throw new Error(`expected Left, got Right: ${JSON.stringify(r.right)}`);
  return r.left;
};

export const makeTempDir = (prefix: string): { dir: string; cleanup: () => void } => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

/** A metadata store on a fresh temporary directory (classic-level; LevelDB SDKs are not ours to import). */
export const openTempStore = async (): Promise<{ store: MetadataStore; dir: string; close: () => Promise<void> }> => {
  const { dir, cleanup } = makeTempDir('zxb-scan-store-');
  const store = await unwrap(openMetadataStore(dir));
  return {
    store,
    dir,
    close: async () => {
      await store.close()();
      cleanup();
    },
  };
};

/** Transaction ids from a counter (the real allocator lives in @zxbackup/transaction-log). */
export const makeCounterTxIds = (start = 0): TxIdSource & { readonly last: () => number } => {
  let next = start;
  return {
    allocate: (count: number) => async () => {
      const first = next + 1;
      next += count;
      return E.right(first);
    },
    last: () => next,
  };
};

/** A clock the spec moves by hand. */
export const makeManualClock = (start = 1_800_000_000_000): { now: () => number; set: (t: number) => void; advance: (ms: number) => number } => {
  let t = start;
  return {
    now: () => t,
    set: (x) => {
      t = x;
    },
    advance: (ms) => (t += ms),
  };
};
