import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, MetadataStore } from '@zxbackup/item-store';
import type { BlobVolume } from '@zxbackup/volume-contract';
import type { Source } from '../source';
import type { EngineError } from './errors';
import type { AccountLocks } from './account-locks';

/** Where the engine reports what people may want to read. Libraries never print. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Hands out transaction ids (`@zxbackup/transaction-log`'s allocator fits). */
export interface TxIdSource {
  allocate(count: number): TE.TaskEither<unknown, number>;
}

export interface ScanProgress {
  readonly account: AccountId;
  readonly accountsDone: number;
  readonly accountsTotal: number;
  readonly phase: 'index' | 'scan' | 'finish' | 'done';
  readonly foldersDone: number;
  readonly messagesRead: number;
  readonly changes: number;
}

export interface EngineDeps {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly txIds: TxIdSource;
  readonly source: Source;
  /** Epoch ms; `Date.now` by default. */
  readonly clock?: () => number;
  readonly onProgress?: (p: ScanProgress) => void;
  /** Polled between commits; true stops the scan cleanly (summary `stopped: true`). */
  readonly shouldStop?: () => boolean;
  readonly log?: Logger;
  /**
   * Serialises writers of one account (a SmartScan and the Real Time Scanner sharing a store
   * must share one `makeAccountLocks()`); each engine makes its own when absent.
   */
  readonly locks?: AccountLocks;
  /** Messages read and stored at the same time (default 6). */
  readonly concurrency?: number;
  /** Changes per commit (default 1,000). */
  readonly batchSize?: number;
}

/** What one scan did. Counts are of changes the engine found; `recorded`/`unchanged` are the store's. */
export interface ScanSummary {
  readonly accounts: number;
  readonly accountsDeleted: number;
  readonly foldersScanned: number;
  readonly foldersSkipped: number;
  readonly foldersRenamed: number;
  readonly created: number;
  readonly updated: number;
  readonly moved: number;
  readonly deleted: number;
  readonly messagesRead: number;
  readonly bytesRead: number;
  readonly blobsStored: number;
  readonly recorded: number;
  readonly unchanged: number;
  /** Messages listed but gone before they could be read (picked up by the next scan). */
  readonly vanishedWhileReading: number;
  readonly stopped: boolean;
  /** Accounts whose scan failed; the others went on. */
  readonly failures: ReadonlyArray<{ readonly account: AccountId; readonly error: EngineError }>;
}

export type MutableSummary = { -readonly [K in keyof ScanSummary]: ScanSummary[K] } & {
  failures: Array<{ readonly account: AccountId; readonly error: EngineError }>;
};

export const emptySummary = (): MutableSummary => ({
  accounts: 0,
  accountsDeleted: 0,
  foldersScanned: 0,
  foldersSkipped: 0,
  foldersRenamed: 0,
  created: 0,
  updated: 0,
  moved: 0,
  deleted: 0,
  messagesRead: 0,
  bytesRead: 0,
  blobsStored: 0,
  recorded: 0,
  unchanged: 0,
  vanishedWhileReading: 0,
  stopped: false,
  failures: [],
});

export const addSummary = (into: MutableSummary, s: ScanSummary): void => {
  for (const k of Object.keys(into) as Array<keyof ScanSummary>) {
    const v = s[k];
    if (typeof v === 'number') (into as unknown as Record<string, number>)[k] = ((into as unknown as Record<string, number>)[k] ?? 0) + v;
  }
  into.stopped = into.stopped || s.stopped;
  into.failures.push(...s.failures);
};
