import * as path from 'node:path';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { AccountId, ItemId, Transaction } from '@zxbackup/item-store';
import {
  checkCoherency,
  decodeRetentionPolicy,
  executeCoherencyFix,
  executePurgePlan,
  isInfiniteRetention,
  makeDirQuarantine,
  planCoherencyFix,
  planPurge,
  type CoherencyFixSummary,
  type CoherencyReport,
  type PurgePlan,
  type PurgeSummary,
  type RefetchBlob,
} from '@zxbackup/retention';
import { makeSource } from './connectors';
import { appError, fromPackageError, type AppError } from './errors';
import { runOperation, type ProgressUpdate } from './operation-runner';
import type { WriterSession } from './session';
import type { SourceUri } from './source-uri';

export interface MaintenanceHooks {
  readonly onProgress?: (p: ProgressUpdate) => void;
  readonly onFinish?: () => void;
  readonly onStart?: (operationId: string) => void;
}

const hooks = (session: WriterSession, h: MaintenanceHooks) => ({
  backupRoot: session.path.root,
  operations: session.path.operations,
  notifier: session.notifier,
  ...(h.onProgress ? { onProgress: h.onProgress } : {}),
  ...(h.onFinish ? { onFinish: h.onFinish } : {}),
  ...(h.onStart ? { onStart: h.onStart } : {}),
});

/** The retention policy from `ZxBackup_DataRetentionDays` / `ZxBackup_AccountRetentionDays` (defaults 30). */
const loadPolicy = (session: WriterSession) =>
  pipe(
    session.path.config.list(),
    TE.mapLeft(fromPackageError),
    TE.flatMap((attributes) => TE.fromEither(pipe(decodeRetentionPolicy(attributes), (e) => e))),
    TE.mapLeft((e) => (('_tag' in e && (e._tag === 'Usage' || e._tag === 'Failed')) ? (e as AppError) : appError('Usage', (e as { message?: string }).message ?? String(e._tag)))),
  );

export type PurgeOutcome =
  | { readonly kind: 'infinite'; readonly plan: PurgePlan }
  | { readonly kind: 'planned'; readonly plan: PurgePlan }
  | { readonly kind: 'executed'; readonly id: string; readonly plan: PurgePlan; readonly summary: PurgeSummary };

/**
 * The Backup Purge: plan (what goes, what stays, why), then — unless `dryRun` — execute it as
 * an operation (recorded in `backupstat`). With infinite retention it exits at once.
 */
export const runPurge = (session: WriterSession, options: { readonly now: number; readonly dryRun: boolean } & MaintenanceHooks): TE.TaskEither<AppError, PurgeOutcome> =>
  pipe(
    loadPolicy(session),
    TE.flatMap((policy) =>
      pipe(
        planPurge({ store: session.store, policy, now: options.now, ...(options.dryRun ? { volume: session.volume } : {}) }),
        TE.mapLeft(fromPackageError),
        TE.flatMap((plan): TE.TaskEither<AppError, PurgeOutcome> => {
          if (isInfiniteRetention(policy)) return TE.right({ kind: 'infinite', plan });
          if (options.dryRun) return TE.right({ kind: 'planned', plan });
          return pipe(
            runOperation(hooks(session, options), 'Purge', { now: options.now }, (control) =>
              pipe(
                executePurgePlan(plan, {
                  store: session.store,
                  volume: session.volume,
                  onProgress: (p) => control.progress(p),
                  shouldStop: control.shouldStop,
                }),
                TE.map((s) => ({ ...s }) as PurgeSummary & Record<string, unknown>),
              ),
            ),
            TE.mapLeft(fromPackageError),
            // executePurgePlan records lastPurgeAt in backupstat itself.
            TE.tap(({ id, result }) =>
              TE.fromTask(() =>
                session.notifier.notify({
                  level: 'Information',
                  event: 'purge.result',
                  subject: `Purge: ${result.itemsRemoved} item(s) and ${result.accountsRemoved} account(s) removed, ${result.blobsDeleted} blob(s) deleted`,
                  details: { operation: id, ...result },
                }),
              ),
            ),
            TE.map(({ id, result }) => ({ kind: 'executed' as const, id, plan, summary: result })),
          );
        }),
      ),
    ),
  );

/**
 * Where a lost blob can be read again: the message as the source has it now, found by its
 * source key (Maildir base name) in the folder it was in; the source looks in other folders too.
 */
const refetchFromSource =
  (session: WriterSession, source: SourceUri): RefetchBlob =>
  (account: AccountId, _itemId: ItemId, tx: Transaction) => {
    if (tx.kind !== 'message' || tx.sourceKey === undefined) return undefined;
    const sourceKey = tx.sourceKey;
    const maildir = makeSource(source);
    return pipe(
      session.store.getHistory(account, tx.folderId),
      TE.map((folder) => {
        const last = O.isSome(folder) ? folder.value[folder.value.length - 1] : undefined;
        const folderKey = last && last.kind === 'folder' && last.sourceKey ? last.sourceKey : '';
        return folderKey === '' ? `cur/${sourceKey}` : `${folderKey}/cur/${sourceKey}`;
      }),
      TE.flatMap((locator) => maildir.openBlob(account, locator)),
    );
  };

export interface CoherencyOutcome {
  readonly id: string;
  readonly report: CoherencyReport;
  readonly fix?: CoherencyFixSummary;
}

/**
 * The Coherency Check as an operation; with `fix`, repairs what can be repaired without
 * losing data: blobs fetched again from the source, orphans moved to `<path>/quarantine`,
 * index entries rebuilt. Lost blobs are reported, never dropped.
 */
export const runCoherencyCheck = (
  session: WriterSession,
  options: { readonly deep: boolean; readonly fix: boolean; readonly accounts?: ReadonlyArray<AccountId>; readonly source?: SourceUri } & MaintenanceHooks,
): TE.TaskEither<AppError, CoherencyOutcome> =>
  pipe(
    runOperation(hooks(session, options), 'CoherencyCheck', { deep: options.deep, fix: options.fix, ...(options.accounts ? { accounts: options.accounts } : {}) }, (control) =>
      pipe(
        checkCoherency({
          store: session.store,
          volume: session.volume,
          deep: options.deep,
          ...(options.accounts ? { accounts: options.accounts } : {}),
          onProgress: (p) => control.progress(p),
        }),
        TE.flatMap((report) =>
          !options.fix || report.problems.length === 0
            ? TE.right({ report })
            : pipe(
                executeCoherencyFix(planCoherencyFix(report), {
                  store: session.store,
                  volume: session.volume,
                  quarantine: makeDirQuarantine({ dir: path.join(session.path.root, 'quarantine'), volume: session.volume }),
                  ...(options.source ? { refetchBlob: refetchFromSource(session, options.source) } : {}),
                  onProgress: (p) => control.progress(p),
                }),
                TE.map((fix) => ({ report, fix })),
              ),
        ),
        TE.map((r) => ({ ...r }) as { report: CoherencyReport; fix?: CoherencyFixSummary } & Record<string, unknown>),
      ),
    ),
    TE.mapLeft(fromPackageError),
    TE.tap(({ id, result }) =>
      result.report.problems.length === 0
        ? TE.right(undefined)
        : TE.fromTask(() =>
            session.notifier.notify({
              level: result.fix && result.fix.lost.length === 0 ? 'Warning' : 'Error',
              event: 'coherency.problems',
              subject: `Coherency Check found ${result.report.problems.length} problem(s)${result.fix ? `: ${result.fix.mended.length} mended, ${result.fix.lost.length} lost` : ''}`,
              details: { operation: id, counts: result.report.counts, problems: result.report.problems.slice(0, 50) },
            }),
          ),
    ),
    TE.map(({ id, result }) => ({ id, report: result.report, ...(result.fix ? { fix: result.fix } : {}) })),
  );
