/**
 * @zxbackup/item-store — the item model (io-ts codecs for the eleven item kinds and for a
 * transaction), item histories and point-in-time queries, the LevelDB metadata store, the
 * backup path (stamp, checks, lock) and the portable per-account metadata archive.
 * It imports nothing of ours; it must not import volumes, scanners or apps.
 */
export * from './lib/codecs';
export type { StoreError, StoreErrorTag } from './lib/errors';
export type {
  ItemChange,
  AccountStat,
  BackupStat,
  OperationRecord,
  CommitBatch,
  CommitSummary,
  DeletedItemRef,
  MetadataStore,
  ConfigStore,
  OperationStore,
} from './lib/api';
