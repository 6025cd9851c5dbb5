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
} from './lib/source';
