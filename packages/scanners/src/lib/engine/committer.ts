import { pipe } from 'fp-ts/function';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, AccountStat, ItemChange, ItemId, ItemMeta, MetadataStore, StoreError, TxId } from '@zxbackup/item-store';
import type { BlobVolume } from '@zxbackup/volume-contract';
import { Abort, engineError, type EngineError } from './errors';
import type { TxIdSource } from './types';

/** A change before it gets its transaction id. `notBefore` is the start of the item's current state. */
export type PendingChange =
  | {
      readonly kind: 'upsert';
      readonly itemId: ItemId;
      readonly at: number;
      readonly notBefore?: number;
      readonly meta: ItemMeta;
      readonly digest?: string;
      readonly size?: number;
    }
  | { readonly kind: 'delete'; readonly itemId: ItemId; readonly at: number; readonly notBefore?: number };

/** Runs a TaskEither inside the engine's async code: a Left becomes an `Abort` carrying it. */
export const run = async <A>(te: TE.TaskEither<EngineError, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Abort({ error: r.left });
  return r.right;
};

export type StatsOf = (lastTx: number | undefined) => ReadonlyArray<AccountStat>;

export interface CommitterDeps {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly txIds: TxIdSource;
  readonly account: AccountId;
  readonly batchSize: number;
  readonly shouldStop: () => boolean;
}

export interface Committer {
  /** Queue a change; commits (and waits) when the batch is full. */
  add(change: PendingChange): Promise<void>;
  /** A blob was put: the next commit flushes the volume first. */
  noteBlob(): void;
  /**
   * Commit what is queued, with the account stats that say it is done (the scan cursor);
   * `accountStats` gets the last transaction id of the account so far.
   */
  commit(accountStats?: StatsOf): Promise<void>;
  readonly totals: () => { readonly recorded: number; readonly unchanged: number; readonly lastTx: number | undefined };
}

/**
 * Batches an account's changes into atomic store commits. Before a commit that may reference
 * new blobs the volume is flushed, so metadata never points at a blob a crash could lose.
 * Commits run one after another, in the order they were asked for.
 */
export const makeCommitter = (deps: CommitterDeps): Committer => {
  const { store, volume, txIds, account, batchSize } = deps;
  let queued: PendingChange[] = [];
  let blobsSinceFlush = false;
  let chain: Promise<void> = Promise.resolve();
  let recorded = 0;
  let unchanged = 0;
  let lastTx: number | undefined;

  const toItemChanges = (changes: ReadonlyArray<PendingChange>, first: number, lastStart: (id: ItemId) => number): ItemChange[] =>
    changes.map((c, i): ItemChange => {
      const tx = (first + i) as TxId;
      const at = Math.max(c.at, c.notBefore ?? 0, lastStart(c.itemId));
      return c.kind === 'delete'
        ? { kind: 'delete', account, itemId: c.itemId, tx, at }
        : {
            kind: 'upsert',
            account,
            itemId: c.itemId,
            tx,
            at,
            meta: c.meta,
            ...(c.digest === undefined ? {} : { digest: c.digest }),
            ...(c.size === undefined ? {} : { size: c.size }),
          };
    });

  /** Start of each item's last entry, read when a commit was refused as out of order. */
  const lastStarts = (changes: ReadonlyArray<PendingChange>): TE.TaskEither<EngineError, Map<ItemId, number>> =>
    pipe(
      TE.traverseSeqArray((c: PendingChange) =>
        pipe(
          store.getHistory(account, c.itemId),
          TE.map(O.match(() => 0, (h) => h[h.length - 1]?.start ?? 0)),
          TE.map((start) => [c.itemId, start] as const),
        ),
      )(changes),
      TE.map((pairs) => new Map(pairs)),
      TE.mapLeft(engineError.store('readLastStarts', account)),
    );

  const commitOnce = (changes: ReadonlyArray<PendingChange>, stats: StatsOf | undefined, first: number, starts: (id: ItemId) => number) =>
    store.commit({
      changes: toItemChanges(changes, first, starts),
      ...(stats === undefined ? {} : { accountStats: stats(changes.length > 0 ? first + changes.length - 1 : lastTx) }),
    });

  const doCommit = async (changes: ReadonlyArray<PendingChange>, stats: StatsOf | undefined): Promise<void> => {
    if (changes.length === 0 && stats === undefined) return;
    if (blobsSinceFlush && changes.length > 0) {
      blobsSinceFlush = false;
      await run(pipe(volume.flush(), TE.mapLeft(engineError.volume('flushBeforeCommit', account))));
    }
    const allocate = (): Promise<number> =>
      changes.length === 0 ? Promise.resolve(0) : run(pipe(txIds.allocate(changes.length), TE.mapLeft(engineError.txLog('allocateTx', account))));
    let first = await allocate();
    let result = await commitOnce(changes, stats, first, () => 0)();
    if (E.isLeft(result) && result.left._tag === 'Conflict') {
      // A state recorded meanwhile (another writer, a clock step back) starts after our `at`:
      // record ours at that start instead, with fresh ids.
      const starts = await run(lastStarts(changes));
      first = await allocate();
      result = await commitOnce(changes, stats, first, (id) => starts.get(id) ?? 0)();
    }
    if (E.isLeft(result)) throw new Abort({ error: engineError.store('commit', account)(result.left as StoreError) });
    recorded += result.right.recorded;
    unchanged += result.right.unchanged;
    if (changes.length > 0) lastTx = first + changes.length - 1;
  };

  const enqueue = (changes: ReadonlyArray<PendingChange>, stats: StatsOf | undefined, final: boolean): Promise<void> => {
    const next = chain.then(async () => {
      await doCommit(changes, stats);
      if (!final && deps.shouldStop()) throw new Abort({ stopped: true });
    });
    // A failed commit fails every later one: nothing is committed after a gap.
    chain = next;
    return next;
  };

  return {
    add: (change) => {
      queued.push(change);
      if (queued.length < batchSize) return chain;
      const batch = queued;
      queued = [];
      return enqueue(batch, undefined, false);
    },
    noteBlob: () => {
      blobsSinceFlush = true;
    },
    commit: (accountStats) => {
      const batch = queued;
      queued = [];
      return enqueue(batch, accountStats, true);
    },
    totals: () => ({ recorded, unchanged, lastTx }),
  };
};
