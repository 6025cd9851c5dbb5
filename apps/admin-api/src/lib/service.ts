import type * as TE from 'fp-ts/TaskEither';
import * as E from 'fp-ts/Either';
import { makeAccountLocks, type Logger } from '@zxbackup/scanners';
import {
  effectiveValue,
  realTimeScannerEnabled,
  resolveSource,
  runPurge,
  runScan,
  smartScanRequired,
  startRealTime,
  uploadMetadataArchives,
  type AppError,
  type Notifier,
  type RunningRealTimeScanner,
  type WriterSession,
} from '@zxbackup/runtime';
import { startScheduler, type PlannedRun, type Scheduler, type SchedulerClock } from './scheduler';

export interface ServiceDeps {
  readonly session: WriterSession;
  readonly clock: SchedulerClock;
  readonly log: (line: string) => void;
}

export interface RunningService {
  readonly scheduler: Scheduler;
  readonly realTime?: RunningRealTimeScanner;
  readonly notifier: Notifier;
  stop(): Promise<void>;
}

const readConfig = async (session: WriterSession): Promise<Readonly<Record<string, string>>> => {
  const r = await session.path.config.list()();
  return E.isRight(r) ? r.right : {};
};

/**
 * The long-running service: the Real Time Scanner (when `ZxBackup_RealTimeScanner` is TRUE),
 * the daily SmartScan and weekly purge, notifications. One process holds the backup path.
 */
export const startService = (deps: ServiceDeps): TE.TaskEither<AppError, RunningService> => async () => {
  const { session, clock, log } = deps;
  const initialConfig = await readConfig(session);
  const notifier = session.notifier;
  const logger: Logger = { info: log, warn: (m) => log(`warning: ${m}`), error: (m) => log(`error: ${m}`) };
  const locks = makeAccountLocks();

  const source = await resolveSource(session.path)();
  if (E.isLeft(source)) return source;

  // Operations notify through the session's notifier (started / finished / failed, purge results).
  const scan = async (reason: string, uploadMetadata: boolean): Promise<void> => {
    log(`SmartScan (${reason})`);
    const r = await runScan(session, { kind: 'SmartScan', source: source.right, clock: clock.now, log: logger, locks })();
    if (E.isLeft(r)) {
      log(`error: SmartScan failed: ${r.left.message}`);
      return;
    }
    // The seed: an incremental copy of the metadata goes to the third-party store with every scheduled SmartScan.
    if (uploadMetadata) {
      const upload = await uploadMetadataArchives(session, { clock: clock.now })();
      if (E.isLeft(upload)) {
        await notifier.notify({ level: 'Error', event: 'operation.failed', subject: `metadata upload failed: ${upload.left.message}`, details: {} });
      } else if (upload.right.failures.length > 0) {
        await notifier.notify({ level: 'Warning', event: 'operation.failed', subject: `${upload.right.failures.length} metadata archive(s) not uploaded`, details: { failures: upload.right.failures } });
      }
    }
  };

  const purge = async (): Promise<void> => {
    const r = await runPurge(session, { now: clock.now(), dryRun: false })();
    if (E.isLeft(r)) log(`error: purge failed: ${r.left.message}`);
  };

  // When the scanner was (re)enabled, a SmartScan is required before it can be trusted (the seed).
  const required = await smartScanRequired(session)();
  const onStart = effectiveValue(initialConfig, 'ZxBackup_SmartScanOnStart') === 'TRUE';
  if ((E.isRight(required) && required.right) || onStart) await scan(onStart ? 'at service start' : 'required after the Real Time Scanner was re-enabled', false);

  let realTime: RunningRealTimeScanner | undefined;
  const enabled = await realTimeScannerEnabled(session)();
  if (E.isRight(enabled) && enabled.right) {
    const started = await startRealTime(session, { source: source.right, clock: () => Date.now(), log: logger, locks })();
    if (E.isLeft(started)) {
      await notifier.notify({ level: 'Critical', event: 'scanner.stopped', subject: 'Real Time Scanner could not start', details: { error: started.left.message } });
    } else {
      realTime = started.right;
    }
  }

  const scheduler = await startScheduler({
    clock,
    config: async () => {
      const c = await readConfig(session);
      return {
        enabled: effectiveValue(c, 'ZxBackup_ScanOperationScheduling') === 'TRUE',
        smartScanTime: effectiveValue(c, 'ZxBackup_SmartScanTime') ?? '04:00',
        purgeDay: effectiveValue(c, 'ZxBackup_PurgeDay') ?? 'Sunday',
      };
    },
    runSmartScan: async (run: PlannedRun) => {
      await scan('scheduled', true);
      if (run.withPurge) await purge();
    },
    onMissed: (run) => log(`warning: the scheduled SmartScan of ${new Date(run.at).toISOString()} was missed; it is not deferred (next one tomorrow)`),
    onError: (e) => log(`error: scheduler: ${(e as Error).message}`),
  });

  return E.right({
    scheduler,
    notifier,
    ...(realTime ? { realTime } : {}),
    stop: async () => {
      scheduler.stop();
      if (realTime) {
        await realTime.stop();
        await notifier.notify({ level: 'Warning', event: 'scanner.stopped', subject: 'Real Time Scanner stopped (service stopping)', details: {} });
      }
    },
  });
};
