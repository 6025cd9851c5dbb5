import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, ItemId, MetadataStore, Transaction, TxId } from '@zxbackup/item-store';
import type { BlobVolume, Digest } from '@zxbackup/volume-contract';
import type { CoherencyProblem, CoherencyReport } from './coherency';
import { causeText, storeFailed, volumeFailed, type RetentionError } from './errors';
import type { Quarantine } from './quarantine';
import { itemKey, run, type OnProgress } from './steps';

/*
 * Repairs after a coherency check, planned first (what is mended, how, what is left).
 * Nothing is deleted without a copy: orphan and corrupt blobs go to quarantine; a missing or
 * corrupt blob is fetched again from the source and stored only if it hashes to its digest;
 * what cannot be mended is reported as lost, never silently dropped.
 */

export interface RefetchStep {
  readonly reason: 'blob-missing' | 'blob-corrupt' | 'blob-unreadable';
  readonly digest: Digest;
  readonly account: AccountId;
  readonly itemId: ItemId;
  readonly tx: TxId;
}

/** A deletion-index problem of an item; mended by rebuilding its account's deletion index from the item heads. */
export interface ReindexStep {
  readonly reason: 'index-missing' | 'index-dangling';
  readonly account: AccountId;
  readonly itemId: ItemId;
}

export interface CoherencyFixPlan {
  readonly refetch: ReadonlyArray<RefetchStep>;
  /** Orphan blobs, moved to quarantine (none while a history is unreadable: they may be its blobs). */
  readonly quarantine: ReadonlyArray<Digest>;
  /** Deletion-index entries missing or pointing nowhere; their accounts' indexes are rebuilt. */
  readonly reindex: ReadonlyArray<ReindexStep>;
  /** Problems no automatic repair exists for; they stay and are reported. */
  readonly leftAsIs: ReadonlyArray<CoherencyProblem>;
}

/** Refetch from the source; `undefined` when the source cannot provide it (the blob is then lost). */
export type RefetchBlob = (account: AccountId, itemId: ItemId, tx: Transaction) => TE.TaskEither<unknown, Readable> | undefined;

export interface ExecuteCoherencyFixOptions {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly quarantine: Quarantine;
  readonly refetchBlob?: RefetchBlob;
  readonly onProgress?: OnProgress;
}

export interface LostBlob extends RefetchStep {
  readonly why: string;
}

export interface CoherencyFixSummary {
  readonly mended: ReadonlyArray<Digest>;
  readonly lost: ReadonlyArray<LostBlob>;
  readonly quarantined: ReadonlyArray<Digest>;
  /** Deletion-index entries added or removed. */
  readonly reindexed: number;
  readonly leftAsIs: ReadonlyArray<CoherencyProblem>;
}

/** Decide the repairs for a report. Pure. */
export const planCoherencyFix = (report: CoherencyReport): CoherencyFixPlan => {
  const refetch: RefetchStep[] = [];
  const quarantine: Digest[] = [];
  const reindex: ReindexStep[] = [];
  const leftAsIs: CoherencyProblem[] = [];
  const seen = new Set<string>();
  for (const p of report.problems) {
    switch (p.kind) {
      case 'blob-missing':
      case 'blob-corrupt':
      case 'blob-unreadable':
        if (p.digest === undefined || p.account === undefined || p.itemId === undefined || p.tx === undefined) leftAsIs.push(p);
        else if (!seen.has(p.digest)) {
          seen.add(p.digest);
          refetch.push({ reason: p.kind, digest: p.digest, account: p.account, itemId: p.itemId, tx: p.tx });
        }
        break;
      case 'blob-orphan':
        // While a history is unreadable, the blobs it references are unknown: no orphan moves.
        if (p.digest === undefined || report.unreadableHistories > 0) leftAsIs.push(p);
        else quarantine.push(p.digest);
        break;
      case 'index-missing':
      case 'index-dangling':
        if (p.account === undefined || p.itemId === undefined) leftAsIs.push(p);
        else reindex.push({ reason: p.kind, account: p.account, itemId: p.itemId });
        break;
      default:
        // Unreadable histories stay for a person to look at (a restore from an archive, or an
        // Account Scan).
        leftAsIs.push(p);
    }
  }
  return { refetch, quarantine, reindex, leftAsIs };
};

/** The plan as lines for people (`--dry-run`). */
export const formatCoherencyFixPlan = (plan: CoherencyFixPlan): ReadonlyArray<string> => [
  `Coherency fix plan: ${plan.refetch.length} blobs to fetch again from the source, ${plan.quarantine.length} orphan blobs to quarantine, ${plan.reindex.length} index entries to rebuild, ${plan.leftAsIs.length} problems left as they are`,
  ...plan.refetch.map((r) => `  refetch ${r.digest} (${r.reason}) of ${r.account}/${r.itemId} tx ${r.tx}`),
  ...plan.quarantine.map((d) => `  quarantine ${d}`),
  ...plan.reindex.map((r) => `  reindex ${r.account}/${r.itemId} (${r.reason})`),
  ...plan.leftAsIs.map((p) => `  left: ${p.kind}${p.account === undefined ? '' : ` ${p.account}`}${p.itemId === undefined ? '' : `/${p.itemId}`}${p.digest === undefined ? '' : ` ${p.digest}`}: ${p.detail}`),
];

const refetchOne = async (step: RefetchStep, options: ExecuteCoherencyFixOptions): Promise<E.Either<RetentionError, { mended: true } | { mended: false; why: string }>> => {
  const { store, volume } = options;
  const lost = (why: string) => E.right({ mended: false as const, why });
  if (options.refetchBlob === undefined) return lost('no source to fetch it from');
  const h = await run(store.getHistory(step.account, step.itemId));
  if (E.isLeft(h)) return E.left(storeFailed('getHistory', itemKey(step.account, step.itemId))(h.left));
  const entry = O.isSome(h.right) ? h.right.value.find((e) => e.tx === step.tx) : undefined;
  if (entry === undefined) return lost(`transaction ${step.tx} is no longer in the history`);
  const task = options.refetchBlob(step.account, step.itemId, entry);
  if (task === undefined) return lost('the source cannot provide it');
  const stream = await run(task);
  if (E.isLeft(stream)) return lost(`the source failed: ${causeText(stream.left)}`);
  if (step.reason !== 'blob-missing') {
    // The damaged copy leaves first (to quarantine): a put of the same digest would be deduplicated onto it.
    const moved = await run(options.quarantine.moveToQuarantine(step.digest, 'corrupt'));
    if (E.isLeft(moved)) {
      stream.right.destroy();
      if (moved.left._tag === 'QuarantineFailed') return lost(`the damaged copy could not be copied to quarantine, so it was left in place (${moved.left.message})`);
      return E.left(moved.left);
    }
  }
  const put = await run(volume.put(stream.right, { expectedDigest: step.digest, ...(entry.size === undefined ? {} : { size: entry.size }) }));
  if (E.isLeft(put)) {
    if (put.left._tag === 'BlobCorrupt') return lost('the source returned different content (its digest does not match)');
    return E.left(volumeFailed('put', step.digest)(put.left));
  }
  return E.right({ mended: true as const });
};

const executeAsync = async (plan: CoherencyFixPlan, options: ExecuteCoherencyFixOptions): Promise<E.Either<RetentionError, CoherencyFixSummary>> => {
  const onProgress = options.onProgress ?? (() => undefined);
  const total = plan.refetch.length + plan.quarantine.length + plan.reindex.length;
  let done = 0;
  const mended: Digest[] = [];
  const lost: LostBlob[] = [];
  for (const step of plan.refetch) {
    const r = await refetchOne(step, options);
    if (E.isLeft(r)) return r;
    if (r.right.mended) mended.push(step.digest);
    else lost.push({ ...step, why: r.right.why });
    onProgress({ phase: 'refetch', done: ++done, total });
  }
  if (mended.length > 0) {
    const flushed = await run(options.volume.flush());
    if (E.isLeft(flushed)) return E.left(volumeFailed('flush')(flushed.left));
  }
  const quarantined: Digest[] = [];
  for (const digest of plan.quarantine) {
    const moved = await run(options.quarantine.moveToQuarantine(digest, 'orphan'));
    if (E.isLeft(moved)) return moved;
    quarantined.push(digest);
    onProgress({ phase: 'quarantine', done: ++done, total });
  }
  // The store rebuilds an account's deletion index from its item heads: one pass mends every
  // missing and dangling entry of the account.
  let reindexed = 0;
  for (const account of new Set(plan.reindex.map((r) => r.account))) {
    const rebuilt = await run(options.store.rebuildDeletionIndex(account));
    if (E.isLeft(rebuilt)) return E.left(storeFailed('rebuildDeletionIndex', account)(rebuilt.left));
    reindexed += rebuilt.right.removed + rebuilt.right.added;
    done += plan.reindex.filter((r) => r.account === account).length;
    onProgress({ phase: 'reindex', done, total });
  }
  return E.right({ mended, lost, quarantined, reindexed, leftAsIs: plan.leftAsIs });
};

/** Execute a fix plan under the backup path's write lock. Rerunnable: a fresh check plans what is left. */
export const executeCoherencyFix = (plan: CoherencyFixPlan, options: ExecuteCoherencyFixOptions): TE.TaskEither<RetentionError, CoherencyFixSummary> => () =>
  executeAsync(plan, options);
