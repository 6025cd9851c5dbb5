import { Cron } from 'croner';

/**
 * The daily SmartScan and the weekly purge (the seed's "When is a SmartScan Executed?"): a
 * SmartScan every day at `ZxBackup_SmartScanTime` when `ZxBackup_ScanOperationScheduling` is
 * TRUE; on `ZxBackup_PurgeDay` a purge runs together with it. A missed run is not deferred: it
 * waits for the next day. Time comes from an injected clock, so tests never sleep.
 */
export interface ScheduleConfig {
  readonly enabled: boolean;
  /** `HH:MM`, local time. */
  readonly smartScanTime: string;
  /** `Sunday` ... `Saturday`. */
  readonly purgeDay: string;
}

export interface PlannedRun {
  readonly at: number;
  readonly withPurge: boolean;
}

const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** The next run strictly after `after` (epoch ms), or undefined when scheduling is off. */
export const nextPlannedRun = (config: ScheduleConfig, after: number): PlannedRun | undefined => {
  if (!config.enabled) return undefined;
  const [hh, mm] = config.smartScanTime.split(':').map(Number);
  const cron = new Cron(`${mm} ${hh} * * *`, { paused: true });
  const next = cron.nextRun(new Date(after));
  cron.stop();
  if (!next) return undefined;
  return { at: next.getTime(), withPurge: WEEKDAYS[next.getDay()] === config.purgeDay.toLowerCase() };
};

export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemSchedulerClock: SchedulerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** A timer that fires later than this after its planned time counts as missed (suspend, overload). */
export const MISSED_RUN_TOLERANCE_MS = 30 * 60 * 1000;

export interface SchedulerDeps {
  readonly config: () => Promise<ScheduleConfig>;
  readonly clock: SchedulerClock;
  readonly runSmartScan: (run: PlannedRun) => Promise<void>;
  readonly onMissed?: (run: PlannedRun) => void;
  readonly onError?: (e: unknown) => void;
}

export interface Scheduler {
  /** The run the scheduler waits for, if any. */
  planned(): PlannedRun | undefined;
  stop(): void;
}

/**
 * Starts the loop: plan the next run from the configuration, wait for it, run it (never two at
 * once), re-read the configuration, plan again. Configuration changes take effect at the next plan.
 */
export const startScheduler = async (deps: SchedulerDeps): Promise<Scheduler> => {
  let handle: unknown;
  let current: PlannedRun | undefined;
  let stopped = false;

  const plan = async (): Promise<void> => {
    if (stopped) return;
    let config: ScheduleConfig;
    try {
      config = await deps.config();
    } catch (e) {
      deps.onError?.(e);
      config = { enabled: false, smartScanTime: '04:00', purgeDay: 'Sunday' };
    }
    current = nextPlannedRun(config, deps.clock.now());
    if (!current) return;
    const run = current;
    handle = deps.clock.setTimeout(() => void fire(run), Math.max(0, run.at - deps.clock.now()));
  };

  const fire = async (run: PlannedRun): Promise<void> => {
    if (stopped) return;
    if (deps.clock.now() - run.at > MISSED_RUN_TOLERANCE_MS) {
      deps.onMissed?.(run);
    } else {
      try {
        await deps.runSmartScan(run);
      } catch (e) {
        deps.onError?.(e);
      }
    }
    await plan();
  };

  await plan();
  return {
    planned: () => current,
    stop: () => {
      stopped = true;
      if (handle !== undefined) deps.clock.clearTimeout(handle);
    },
  };
};
