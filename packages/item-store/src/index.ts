/**
 * @zxbackup/item-store — the item model (io-ts codecs for the eleven item kinds and for a
 * transaction), item histories and point-in-time queries, the LevelDB metadata store, the
 * backup path (stamp, checks, lock) and the portable per-account metadata archive.
 * It imports nothing of ours; it must not import volumes, scanners or apps.
 */
export * from './lib/codecs';
export type { StoreError, StoreErrorTag } from './lib/errors';
export { storeError } from './lib/errors';
export type {
  ItemChange,
  CommitBatch,
  CommitSummary,
  DeletedItemRef,
  DeletionIndexRepair,
  MetadataStore,
  ConfigStore,
  OperationStore,
} from './lib/api';
export {
  AccountStat,
  BackupStat,
  OperationRecord,
  ServerStamp,
  AccountInfo,
  BACKUP_PATH_FORMAT_VERSION,
  STORE_FORMAT_VERSION,
  isOperationId,
} from './lib/records';
export { decodeWith, decodeVersioned, decodeTransaction, parseJson, reportErrors } from './lib/decode';
export type { NewState, Deletion } from './lib/history';
export {
  appendState,
  markDeleted,
  stateAt,
  stateAtTx,
  entryAt,
  isDeletedAt,
  deletedAt,
  validateHistory,
  decodeHistory,
  encodeHistory,
} from './lib/history';
export type { LevelDb, MetadataStoreOptions, OpenMetadataStoreOptions } from './lib/metadata-store';
export { makeMetadataStore, openMetadataStore } from './lib/metadata-store';
export type { BackupPath, WriteLock } from './lib/backup-path';
export { localServerId, initBackupPath, openBackupPath, acquireWriteLock, LOCK_STALE_MS } from './lib/backup-path';
export { makeConfigStore } from './lib/config-store';
export { makeOperationStore } from './lib/operation-store';
export type { ArchiveSummary } from './lib/archive';
export { writeAccountArchive, readAccountArchive, itemEntryName } from './lib/archive';
