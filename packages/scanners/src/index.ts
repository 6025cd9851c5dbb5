/**
 * @zxbackup/scanners — the `Source` / `RestoreTarget` seam and its connectors (maildir), the
 * SmartScan, the Account Scan, the Real Time Scanner and the restore engine. Depends on
 * item-store, transaction-log and the volume contract; never on a concrete volume or an app.
 */
export type {
  SourceError,
  MessageEntry,
  ScanEvent,
  ScanOptions,
  LiveChange,
  Watcher,
  WatchHandlers,
  Source,
  RestoreTarget,
  MessageContent,
  MessageFile,
} from './lib/source';
export { isHeldContent } from './lib/source';
export { makeMaildirSource } from './lib/maildir/maildir-source';
export type { MaildirSourceOptions } from './lib/maildir/maildir-source';
export { makeMaildirTarget } from './lib/maildir/maildir-target';
export type { MaildirTargetOptions } from './lib/maildir/maildir-target';
export { encodeMailboxName, decodeMailboxName } from './lib/maildir/mutf7';
// The SmartScan / Account Scan engine, the Real Time Scanner and the restore engine.
export { makeScanEngine } from './lib/engine/smart-scan';
export type { ScanEngine, SmartScanOptions, AccountScanOptions } from './lib/engine/smart-scan';
export type { EngineDeps, ScanSummary, ScanProgress, Logger, TxIdSource } from './lib/engine/types';
export type { EngineError, EngineErrorTag } from './lib/engine/errors';
export { describeEngineError } from './lib/engine/errors';
export { makeAccountLocks } from './lib/engine/account-locks';
export type { AccountLocks } from './lib/engine/account-locks';
export { ACCOUNT_ITEM_ID, messageIdFor, folderIdFor } from './lib/engine/ids';
export { makeRestoreEngine } from './lib/restore/restore-engine';
export type { RestoreEngine } from './lib/restore/restore-engine';
export { restoreAccount } from './lib/restore/restore-account';
export type { RestoreAccountParams, RestoreSummary } from './lib/restore/restore-account';
export { undeleteItems, undeleteKeyword, undeleteFolder } from './lib/restore/undelete';
export type { UndeleteParams, UndeleteSummary } from './lib/restore/undelete';
export { restoreItem } from './lib/restore/restore-item';
export type { RestoreItemParams, RestoreItemResult } from './lib/restore/restore-item';
export { searchItems } from './lib/restore/search';
export type { SearchParams, SearchHit, SearchType } from './lib/restore/search';
export type { RestoreDeps, RestoreProgress } from './lib/restore/deps';
export type { RestoreError, RestoreErrorTag } from './lib/restore/errors';
export { startRealTimeScanner, LiveChangeRecord } from './lib/engine/real-time-scanner';
export type { RealTimeScanner, RealTimeScannerDeps, RealTimeScannerStats } from './lib/engine/real-time-scanner';
