import * as path from 'node:path';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { AccountId } from '@zxbackup/item-store';
import {
  LiveChangeRecord,
  makeScanEngine,
  startRealTimeScanner,
  type AccountLocks,
  type Logger,
  type RealTimeScanner,
  type ScanProgress,
  type ScanSummary,
} from '@zxbackup/scanners';
import { openChangeLog, type ChangeLog } from '@zxbackup/transaction-log';
import { makeSource } from './connectors';
import { appError, fromPackageError, type AppError } from './errors';
import { runOperation, type ProgressUpdate } from './operation-runner';
import type { WriterSession } from './session';
import type { SourceUri } from './source-uri';

/** Set when the Real Time Scanner is (re)enabled; the next SmartScan clears it (the seed). */
export const SMART_SCAN_REQUIRED = 'ZxBackup_RealTimeScannerNeedsSmartScan';

export type ScanKind = 'SmartScan' | 'AccountScan';

export interface ScanRequest {
  readonly kind: ScanKind;
  readonly source: SourceUri;
  /** SmartScan: ignore the cursors (`--deep`). */
  readonly full?: boolean;
  /** AccountScan: the account. */
  readonly account?: AccountId;
  readonly clock: () => number;
  readonly onProgress?: (p: ProgressUpdate) => void;
  readonly onFinish?: () => void;
  readonly onStart?: (operationId: string) => void;
  readonly log?: Logger;
  /** Shared with a Real Time Scanner running in the same process, so they never write one account at once. */
  readonly locks?: AccountLocks;
}

const progressOf = (p: ScanProgress): ProgressUpdate => ({
  done: p.phase === 'done' ? p.accountsDone + 1 : p.accountsDone,
  total: p.accountsTotal,
  phase: p.phase,
  message: `${p.account} folders ${p.foldersDone} messages ${p.messagesRead} changes ${p.changes}`,
});

/**
 * Runs a SmartScan or an Account Scan as a persisted operation on an open writer session, and
 * records it in `backupstat` (first run, last SmartScan). A completed SmartScan clears the
 * "SmartScan required" mark the Real Time Scanner leaves when it is (re)enabled.
 */
export const runScan = (session: WriterSession, request: ScanRequest): TE.TaskEither<AppError, { readonly id: string; readonly result: ScanSummary }> =>
  pipe(
    runOperation(
      {
        backupRoot: session.path.root,
        operations: session.path.operations,
        notifier: session.notifier,
        ...(request.onProgress ? { onProgress: request.onProgress } : {}),
        ...(request.onFinish ? { onFinish: request.onFinish } : {}),
        ...(request.onStart ? { onStart: request.onStart } : {}),
      },
      request.kind,
      { source: `maildir:${request.source.root}`, ...(request.full ? { deep: true } : {}), ...(request.account ? { account: request.account } : {}) },
      (control) => {
        const engine = makeScanEngine({
          store: session.store,
          volume: session.volume,
          txIds: session.txIds,
          source: makeSource(request.source),
          clock: request.clock,
          onProgress: (p) => control.progress(progressOf(p)),
          shouldStop: control.shouldStop,
          ...(request.log ? { log: request.log } : {}),
          ...(request.locks ? { locks: request.locks } : {}),
        });
        const scan =
          request.kind === 'AccountScan' && request.account !== undefined
            ? engine.accountScan(request.account)
            : engine.smartScan({ full: request.full === true });
        return pipe(
          scan,
          TE.map((summary) => ({ ...summary }) as ScanSummary & Record<string, unknown>),
        );
      },
    ),
    TE.mapLeft(fromPackageError),
    TE.tap(({ result }) => (request.kind === 'SmartScan' && !result.stopped ? recordSmartScan(session, request.clock()) : TE.right(undefined))),
  );

const recordSmartScan = (session: WriterSession, at: number): TE.TaskEither<AppError, void> =>
  pipe(
    session.store.getBackupStat(),
    TE.flatMap((stat) => session.store.commit({ changes: [], backupStat: { ...stat, firstRunAt: stat.firstRunAt ?? at, lastSmartScanAt: at } })),
    TE.flatMap(() => session.path.config.unset(SMART_SCAN_REQUIRED)),
    TE.mapLeft(fromPackageError),
  );

export interface RunningRealTimeScanner {
  readonly scanner: RealTimeScanner;
  /** Stops the scanner (applying what is pending) and closes its change log. */
  stop(): Promise<void>;
}

/**
 * Starts the Real Time Scanner on an open writer session. Its change log lives in
 * `<path>/txlog/changes`: every event is durable there before it is acknowledged, and events
 * logged before a crash are applied on the next start.
 */
export const startRealTime = (
  session: WriterSession,
  options: {
    readonly source: SourceUri;
    readonly clock: () => number;
    readonly log?: Logger;
    readonly onUncertain?: (account: AccountId | undefined, reason: string) => void;
    readonly windowMs?: number;
    readonly locks?: AccountLocks;
  },
): TE.TaskEither<AppError, RunningRealTimeScanner> =>
  pipe(
    openChangeLog(path.join(session.path.root, 'txlog', 'changes'), LiveChangeRecord),
    TE.mapLeft(fromPackageError),
    TE.flatMap((changeLog: ChangeLog<LiveChangeRecord>) =>
      pipe(
        startRealTimeScanner({
          store: session.store,
          volume: session.volume,
          txIds: session.txIds,
          source: makeSource(options.source),
          clock: options.clock,
          changeLog,
          ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
          ...(options.log ? { log: options.log } : {}),
          ...(options.onUncertain ? { onUncertain: options.onUncertain } : {}),
          ...(options.locks ? { locks: options.locks } : {}),
        }),
        TE.mapLeft(fromPackageError),
        TE.orElse((e) => async () => {
          await changeLog.close()();
          return { _tag: 'Left', left: e } as const;
        }),
        TE.map((scanner) => ({
          scanner,
          stop: async () => {
            await scanner.stop();
            await changeLog.close()();
          },
        })),
      ),
    ),
  );

/** The Real Time Scanner is on unless `ZxBackup_RealTimeScanner` is FALSE. */
export const realTimeScannerEnabled = (session: Pick<WriterSession, 'path'>): TE.TaskEither<AppError, boolean> =>
  pipe(
    session.path.config.get('ZxBackup_RealTimeScanner'),
    TE.mapLeft(fromPackageError),
    TE.map((v) => v._tag === 'None' || v.value.toUpperCase() !== 'FALSE'),
  );

export const smartScanRequired = (session: Pick<WriterSession, 'path'>): TE.TaskEither<AppError, boolean> =>
  pipe(
    session.path.config.get(SMART_SCAN_REQUIRED),
    TE.mapLeft(fromPackageError),
    TE.map((v) => v._tag === 'Some'),
  );

export const requireEnabledRealTimeScanner = (session: Pick<WriterSession, 'path'>): TE.TaskEither<AppError, void> =>
  pipe(
    realTimeScannerEnabled(session),
    TE.flatMap((on) =>
      on
        ? TE.right(undefined)
        : TE.left(appError('Usage', 'the Real Time Scanner is disabled: run `zxbackup config set ZxBackup_RealTimeScanner TRUE` (a SmartScan will be required)')),
    ),
  );
