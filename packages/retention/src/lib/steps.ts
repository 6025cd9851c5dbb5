import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, ItemId, MetadataStore, StoreError } from '@zxbackup/item-store';
import { storeFailed, type RetentionError } from './errors';

/*
 * Small helpers shared by purge and coherency check. The long loops are written as async
 * functions returning Either (early return on Left) and wrapped once into a TaskEither.
 */

export const run = async <L, A>(task: TE.TaskEither<L, A>): Promise<E.Either<L, A>> => task();

export const itemKey = (account: AccountId, itemId: ItemId): string => `${account}\u0000${itemId}`;

/** Progress of a long step; `total` when known. Libraries never print: the caller renders this. */
export interface Progress {
  readonly phase: string;
  readonly done: number;
  readonly total?: number;
}
export type OnProgress = (progress: Progress) => void;

/**
 * Mark: every digest referenced by a history the filter keeps. Memory is one Set entry per
 * distinct blob (20k–100k digests is a few MB); histories are visited one at a time. A history
 * the store cannot read fails the mark when it is kept (what it references is unknown, so no
 * blob may be swept), and does not matter when it is not.
 */
export const markReferenced = async (
  store: MetadataStore,
  keep: (account: AccountId, itemId: ItemId) => boolean,
  onProgress: OnProgress,
): Promise<E.Either<RetentionError, { readonly referenced: Set<string>; readonly histories: number }>> => {
  const referenced = new Set<string>();
  let histories = 0;
  let unreadable: StoreError | undefined;
  const visited = await run(
    store.forEachHistoryEither(undefined, (account, itemId, history) => {
      histories++;
      if (histories % 1000 === 0) onProgress({ phase: 'mark', done: histories });
      if (!keep(account, itemId)) return;
      if (E.isLeft(history)) {
        unreadable ??= history.left;
        return;
      }
      for (const entry of history.right) if (entry.digest !== undefined) referenced.add(entry.digest);
    }),
  );
  if (E.isLeft(visited)) return E.left(storeFailed('mark')(visited.left));
  if (unreadable !== undefined) return E.left(storeFailed('mark')(unreadable));
  onProgress({ phase: 'mark', done: histories });
  return E.right({ referenced, histories });
};

/**
 * Run `work` over `items` with at most `concurrency` in flight; stops at the first Left (or
 * when `shouldStop` says so) and returns it. Volumes are I/O bound: a few requests in flight
 * hide the latency of each.
 */
export const forEachConcurrently = async <T, L>(
  items: ReadonlyArray<T>,
  concurrency: number,
  work: (item: T, index: number) => Promise<E.Either<L, void>>,
  shouldStop: () => boolean = () => false,
): Promise<E.Either<L, { readonly done: number; readonly stopped: boolean }>> => {
  let next = 0;
  let done = 0;
  let failure: E.Either<L, never> | undefined;
  let stopped = false;
  const worker = async (): Promise<void> => {
    while (failure === undefined && !stopped && next < items.length) {
      if (shouldStop()) {
        stopped = true;
        return;
      }
      const index = next++;
      const r = await work(items[index] as T, index);
      if (E.isLeft(r)) failure ??= r;
      else done++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return failure ?? E.right({ done, stopped });
};
