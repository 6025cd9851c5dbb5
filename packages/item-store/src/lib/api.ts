import type * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type * as O from 'fp-ts/Option';
import type { AccountId, History, ItemId, ItemMeta, Transaction, TxId } from './codecs';
import type { StoreError } from './errors';

/*
 * The public shape of the metadata store. Implemented over an injected `AbstractLevel`
 * (classic-level on disk, memory-level in unit specs) by `makeMetadataStore`.
 */

/** One change to record. The caller allocates `tx` (from @zxbackup/transaction-log). */
export type ItemChange =
  | {
      readonly kind: 'upsert';
      readonly account: AccountId;
      readonly itemId: ItemId;
      readonly tx: TxId;
      /** When the change happened (epoch ms); becomes the new entry's `start`. */
      readonly at: number;
      readonly meta: ItemMeta;
      readonly digest?: string;
      readonly size?: number;
    }
  | {
      readonly kind: 'delete';
      readonly account: AccountId;
      readonly itemId: ItemId;
      readonly tx: TxId;
      readonly at: number;
    };

/** Per-account statistics and scan state (the seed's `account_stat`). */
export interface AccountStat {
  readonly format: number;
  readonly account: AccountId;
  /** Source-specific scan cursor, opaque to the store (JSON). */
  readonly cursor?: unknown;
  readonly lastScanAt?: number;
  readonly lastTx?: number;
  readonly items: number;
  readonly deletedItems: number;
  /** Set when the account itself is deleted from the source (epoch ms). */
  readonly deletedAt?: number;
}

/** Backup-wide statistics (the seed's `backupstat`). */
export interface BackupStat {
  readonly format: number;
  readonly firstRunAt?: number;
  readonly lastSmartScanAt?: number;
  readonly lastPurgeAt?: number;
  readonly counters: Record<string, number>;
}

/** A persisted operation (SmartScan, purge, restore...), visible to `getAllOperations`/`monitor`. */
export interface OperationRecord {
  readonly format: number;
  readonly id: string;
  readonly kind: string;
  readonly state: 'queued' | 'running' | 'succeeded' | 'failed' | 'stopped';
  readonly startedAt: number;
  readonly updatedAt: number;
  readonly endedAt?: number;
  /** Process running it, so that another process can tell a dead operation from a live one. */
  readonly pid?: number;
  readonly progress: { readonly done: number; readonly total?: number; readonly phase?: string; readonly message?: string };
  readonly params?: Record<string, unknown>;
  readonly result?: Record<string, unknown>;
  readonly error?: string;
  /** Set by doStopOperation; the running process polls it and stops cleanly. */
  readonly stopRequested?: boolean;
}

/** What `commit` recorded. Identical states record nothing and count as `unchanged`. */
export interface CommitSummary {
  readonly recorded: number;
  readonly unchanged: number;
}

/**
 * Everything a scan step writes, committed in one atomic LevelDB batch: item changes and the
 * account stats (scan cursors) that say they were made. A crash leaves either all or none.
 */
export interface CommitBatch {
  readonly changes: ReadonlyArray<ItemChange>;
  readonly accountStats?: ReadonlyArray<AccountStat>;
  readonly backupStat?: BackupStat;
}

export interface DeletedItemRef {
  readonly account: AccountId;
  readonly itemId: ItemId;
  readonly deletedAt: number;
  readonly tx: TxId;
}

/** What `rebuildDeletionIndex` changed. */
export interface DeletionIndexRepair {
  /** Entries of items that do not exist or are not deleted at that instant (by that tx). */
  readonly removed: number;
  /** Deleted items that had no entry. */
  readonly added: number;
}

export interface MetadataStore {
  /**
   * Atomically record a batch. A change whose `tx` is not above the item's last tx, or whose
   * `at` is before the item's last `start`, is a `Conflict` and nothing of the batch is written.
   * Changes apply in order (several of one item are fine). An upsert equal to the current
   * state and a delete of an unknown or deleted item record nothing (`unchanged`).
   * The store keeps `items`, `deletedItems` and `lastTx` of every touched account's stat in
   * the same batch; from `accountStats` it takes the rest (cursor, scan times).
   */
  commit(batch: CommitBatch): TE.TaskEither<StoreError, CommitSummary>;
  getHistory(account: AccountId, itemId: ItemId): TE.TaskEither<StoreError, O.Option<History>>;
  /** Replace a whole history (archive import, purge of old entries). Rebuilds the indexes. */
  putHistory(account: AccountId, itemId: ItemId, history: History): TE.TaskEither<StoreError, void>;
  /**
   * Remove an item entirely (purge): its rows, head and deletion-index entry, and its count in
   * the account stat, in one batch. The history is not decoded (a damaged one goes too); only
   * the small head is, to find the index entry. Removing an absent item does nothing.
   */
  removeItem(account: AccountId, itemId: ItemId): TE.TaskEither<StoreError, void>;
  /**
   * Remove an account: every item (each in its own atomic batch, as `removeItem`), then its
   * account stat, so that it leaves `listAccounts`. A crash part way leaves the stat and some
   * items; running it again finishes. Resolves to the number of items removed. Deletion-index
   * entries found through no item head (already dangling) stay for `rebuildDeletionIndex`.
   */
  removeAccount(account: AccountId): TE.TaskEither<StoreError, number>;
  /**
   * Make the deletion index agree with the items' heads: drop entries whose item does not
   * exist or is not deleted at that instant by that transaction, add the missing ones.
   * `account` limits it to that account's entries. Streams; safe to rerun after a crash.
   */
  rebuildDeletionIndex(account?: AccountId): TE.TaskEither<StoreError, DeletionIndexRepair>;
  /** State of one item at instant T (none if it did not exist or was deleted at T). */
  stateAt(account: AccountId, itemId: ItemId, at: number): TE.TaskEither<StoreError, O.Option<Transaction>>;
  stateAtTx(account: AccountId, itemId: ItemId, tx: TxId): TE.TaskEither<StoreError, O.Option<Transaction>>;
  /**
   * Visit every item of an account that existed at instant T (`'now'` for current states),
   * with its state then. Streams: memory stays bounded for any account size.
   */
  forEachItemAt(
    account: AccountId,
    at: number | 'now',
    visit: (itemId: ItemId, state: Transaction) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number>;
  /** Visit every history of an account (or of all accounts), e.g. for purge and coherency check. */
  forEachHistory(
    account: AccountId | undefined,
    visit: (account: AccountId, itemId: ItemId, history: History) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number>;
  /**
   * `forEachHistory` that does not stop at a history it cannot read: the visitor gets each
   * history as an Either (Left: a `DecodeError` naming the row key and the field, or the broken
   * invariant), with the account and item id of its keys, and the traversal goes on. A Left of
   * the whole traversal is a failure of the store itself (I/O, a visitor that threw, a key that
   * names no valid account or item id). Resolves to the number of histories visited.
   */
  forEachHistoryEither(
    account: AccountId | undefined,
    visit: (account: AccountId, itemId: ItemId, history: E.Either<StoreError, History>) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number>;
  /**
   * Items whose current state is `delete`, deleted in [from, to), from the deletion index
   * (all accounts when `account` is undefined). An item re-created since is not listed.
   */
  deletedBetween(from: number, to: number, account?: AccountId): TE.TaskEither<StoreError, ReadonlyArray<DeletedItemRef>>;

  listAccounts(): TE.TaskEither<StoreError, ReadonlyArray<AccountId>>;
  getAccountStat(account: AccountId): TE.TaskEither<StoreError, O.Option<AccountStat>>;
  putAccountStat(stat: AccountStat): TE.TaskEither<StoreError, void>;
  getBackupStat(): TE.TaskEither<StoreError, BackupStat>;

  close(): TE.TaskEither<StoreError, void>;
}

/*
 * Configuration attributes and operations are files in the backup path, not LevelDB rows:
 * LevelDB admits one process, and `config set`, `getAllOperations` and `monitor` must work
 * from another process while a scan or the service holds the metadata store.
 */

/** `<path>/config.json`: attribute → value, written atomically (temp file + rename). */
export interface ConfigStore {
  get(attribute: string): TE.TaskEither<StoreError, O.Option<string>>;
  set(attribute: string, value: string): TE.TaskEither<StoreError, void>;
  unset(attribute: string): TE.TaskEither<StoreError, void>;
  list(): TE.TaskEither<StoreError, Readonly<Record<string, string>>>;
}

/** `<path>/operations/<id>.json`, one file per operation, written atomically. */
export interface OperationStore {
  put(op: OperationRecord): TE.TaskEither<StoreError, void>;
  get(id: string): TE.TaskEither<StoreError, O.Option<OperationRecord>>;
  list(): TE.TaskEither<StoreError, ReadonlyArray<OperationRecord>>;
}
