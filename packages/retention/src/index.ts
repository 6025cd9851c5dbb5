/**
 * @zxbackup/retention — retention policies, the Backup Purge and the Coherency Check of a
 * backup path. Each destructive operation is planned first (`plan*`, printable for
 * `--dry-run`) and then executed (`execute*`). It works through the `MetadataStore` of
 * @zxbackup/item-store and any `BlobVolume` of @zxbackup/volume-contract; it must not import
 * a volume implementation, a LevelDB module, the scanners or the apps.
 */
export type { RetentionError, RetentionErrorTag } from './lib/errors';
export type { Progress, OnProgress } from './lib/steps';
export type { RetentionPolicy, Verdict } from './lib/policy';
export {
  DAY_MS,
  DATA_RETENTION_ATTRIBUTE,
  ACCOUNT_RETENTION_ATTRIBUTE,
  DEFAULT_RETENTION_DAYS,
  DEFAULT_RETENTION_POLICY,
  MAX_RETENTION_DAYS,
  RetentionDaysFromString,
  decodeRetentionPolicy,
  isInfiniteRetention,
  judgeAccount,
  judgeDeletedItem,
  dataCutoff,
} from './lib/policy';
export type { PurgePlan, PlannedItem, PlannedAccount, PlannedBlobs, PlanPurgeOptions, PurgeSummary, ExecutePurgeOptions } from './lib/purge';
export { DEFAULT_GRACE_MS, INFINITE_RETENTION_NOTE, planPurge, executePurgePlan, formatPurgePlan } from './lib/purge';
export type { CoherencyProblem, CoherencyProblemKind, CoherencyReport, CheckCoherencyOptions } from './lib/coherency';
export { checkCoherency, historyProblems } from './lib/coherency';
export type {
  CoherencyFixPlan,
  CoherencyFixSummary,
  ExecuteCoherencyFixOptions,
  LostBlob,
  RefetchBlob,
  RefetchStep,
  ReindexStep,
} from './lib/coherency-fix';
export { planCoherencyFix, executeCoherencyFix, formatCoherencyFixPlan } from './lib/coherency-fix';
export type { Quarantine, QuarantineReason, DirQuarantineOptions } from './lib/quarantine';
export { makeDirQuarantine } from './lib/quarantine';
