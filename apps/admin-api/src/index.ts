/**
 * @zxbackup/admin-api — the long-running service: Real Time Scanner, scheduler (daily
 * SmartScan, weekly purge), notifications. Composition root: the logic lives in packages.
 * (The HTTP admin API comes in a later issue.)
 */
export { startService } from './lib/service';
export type { RunningService, ServiceDeps } from './lib/service';
export { nextPlannedRun, startScheduler, systemSchedulerClock, MISSED_RUN_TOLERANCE_MS } from './lib/scheduler';
export type { PlannedRun, Scheduler, ScheduleConfig, SchedulerClock } from './lib/scheduler';
