import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, DeletedItemRef, ItemId, MetadataStore, TxId } from '@zxbackup/item-store';
import type { BlobVolume, Digest } from '@zxbackup/volume-contract';
import { storeFailed, volumeFailed, type RetentionError } from './errors';
import { dataCutoff, isInfiniteRetention, judgeAccount, judgeDeletedItem, type RetentionPolicy } from './policy';
import { forEachConcurrently, itemKey, markReferenced, run, type OnProgress } from './steps';

/*
 * The Backup Purge (the seed's "Backup Purge"), planned before it destroys anything
 * (STYLE.md "Plans before destruction", after restic's prune):
 *
 * 1. plan: deleted items past the data retention (from the deletion index, each checked
 *    against its history) and deleted accounts past the account retention;
 * 2. execute: remove those histories and accounts from the metadata store, THEN mark every
 *    digest the remaining histories reference and sweep the unmarked blobs older than a grace
 *    period. Metadata goes first, so a purge killed at any point leaves at worst orphan blobs,
 *    never a history pointing at a missing blob; a rerun plans again and finishes the job.
 *
 * The caller holds the backup path's write lock from planning to the end of the execution:
 * nothing else writes metadata or blobs meanwhile, so the plan stays true.
 */

export const DEFAULT_GRACE_MS = 6 * 3_600_000;

export interface PlannedItem {
  readonly account: AccountId;
  readonly itemId: ItemId;
  readonly deletedAt: number;
  /** The delete transaction, as the deletion index holds it. */
  readonly tx: TxId;
}

export interface PlannedAccount {
  readonly account: AccountId;
  readonly deletedAt: number;
  readonly items: number;
  readonly transactions: number;
}

/** Blobs the sweep would delete, estimated at planning time (execution recomputes them). */
export interface PlannedBlobs {
  readonly referenced: number;
  readonly unreferenced: number;
  readonly sweepable: number;
  readonly sweepableBytes: number;
  readonly withinGrace: number;
  readonly unknownAge: number;
}

export interface PurgePlan {
  readonly now: number;
  readonly policy: RetentionPolicy;
  readonly graceMs: number;
  /** Set when both retentions are 0: the purge does not run. */
  readonly note?: string;
  readonly items: ReadonlyArray<PlannedItem>;
  readonly accounts: ReadonlyArray<PlannedAccount>;
  /** Items past the data retention kept because their deleted account is within the account retention. */
  readonly keptWithDeletedAccount: number;
  /** Deletion-index entries of items that are live now (skipped; a coherency check reports them). */
  readonly staleIndexEntries: number;
  /** Present when the plan was given a volume. */
  readonly blobs?: PlannedBlobs;
}

export const INFINITE_RETENTION_NOTE = 'infinite retention: nothing to purge';

export interface PlanPurgeOptions {
  readonly store: MetadataStore;
  readonly policy: RetentionPolicy;
  readonly now: number;
  /** When given, the plan also estimates the blob sweep (what `--dry-run` prints). */
  readonly volume?: BlobVolume;
  readonly graceMs?: number;
  readonly onProgress?: OnProgress;
}

const noProgress: OnProgress = () => undefined;

/** Ids of an account's items that are live now, from the store's current-state index (bounded by one account). */
const liveItems = async (store: MetadataStore, account: AccountId): Promise<E.Either<RetentionError, Set<string>>> => {
  const live = new Set<string>();
  const r = await run(store.forEachItemAt(account, 'now', (itemId) => void live.add(itemId)));
  return E.isLeft(r) ? E.left(storeFailed('forEachItemAt', account)(r.left)) : E.right(live);
};

/** Concurrent requests to the volume during the sweep. */
const SWEEP_CONCURRENCY = 8;

const emptyPlan = (now: number, policy: RetentionPolicy, graceMs: number, note?: string): PurgePlan => ({
  now,
  policy,
  graceMs,
  ...(note === undefined ? {} : { note }),
  items: [],
  accounts: [],
  keptWithDeletedAccount: 0,
  staleIndexEntries: 0,
});

type BlobAge = 'sweepable' | 'within-grace' | 'unknown-age';
const blobAge = (modifiedAt: number | undefined, now: number, graceMs: number): BlobAge =>
  graceMs === 0 ? 'sweepable' : modifiedAt === undefined ? 'unknown-age' : modifiedAt <= now - graceMs ? 'sweepable' : 'within-grace';

/** Unreferenced digests on the volume, collected before any is touched (listing and deleting do not mix). */
const listUnreferenced = async (
  volume: BlobVolume,
  referenced: ReadonlySet<string>,
): Promise<E.Either<RetentionError, { readonly unreferenced: Digest[]; readonly listed: number }>> => {
  const unreferenced: Digest[] = [];
  const listed = await run(
    volume.list((digest) => {
      if (!referenced.has(digest)) unreferenced.push(digest);
    }),
  );
  if (E.isLeft(listed)) return E.left(volumeFailed('list')(listed.left));
  return E.right({ unreferenced, listed: listed.right });
};

const planPurgeAsync = async (options: PlanPurgeOptions): Promise<E.Either<RetentionError, PurgePlan>> => {
  const { store, policy, now } = options;
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  const onProgress = options.onProgress ?? noProgress;
  if (isInfiniteRetention(policy)) return E.right(emptyPlan(now, policy, graceMs, INFINITE_RETENTION_NOTE));

  // Accounts: their deletion instant decides both their own fate and their items'.
  const accountsE = await run(store.listAccounts());
  if (E.isLeft(accountsE)) return E.left(storeFailed('listAccounts')(accountsE.left));
  const accountDeletedAt = new Map<string, number>();
  const purgedAccounts: PlannedAccount[] = [];
  for (const account of accountsE.right) {
    const stat = await run(store.getAccountStat(account));
    if (E.isLeft(stat)) return E.left(storeFailed('getAccountStat', account)(stat.left));
    const deletedAt = O.isSome(stat.right) ? stat.right.value.deletedAt : undefined;
    if (deletedAt === undefined) continue;
    accountDeletedAt.set(account, deletedAt);
    if (!judgeAccount(deletedAt, policy, now).purge) continue;
    // Everything of the account goes, readable or not: an unreadable history counts as an item.
    let items = 0;
    let transactions = 0;
    const counted = await run(
      store.forEachHistoryEither(account, (_a, _id, history) => {
        items++;
        if (E.isRight(history)) transactions += history.right.length;
      }),
    );
    if (E.isLeft(counted)) return E.left(storeFailed('forEachHistoryEither', account)(counted.left));
    // With no item left (a purge stopped after its items), the account stat still goes.
    purgedAccounts.push({ account, deletedAt, items, transactions });
  }
  const purgedAccountSet = new Set<string>(purgedAccounts.map((a) => a.account));

  // Items: every purgeable one was deleted before the data cutoff (the account clock only moves it earlier).
  const items: PlannedItem[] = [];
  let keptWithDeletedAccount = 0;
  let staleIndexEntries = 0;
  const cutoff = dataCutoff(policy, now);
  if (cutoff !== undefined) {
    const refsE = await run(store.deletedBetween(0, cutoff));
    if (E.isLeft(refsE)) return E.left(storeFailed('deletedBetween')(refsE.left));
    const byAccount = new Map<AccountId, DeletedItemRef[]>();
    for (const ref of refsE.right) {
      if (purgedAccountSet.has(ref.account)) continue;
      const verdict = judgeDeletedItem({ deletedAt: ref.deletedAt, accountDeletedAt: accountDeletedAt.get(ref.account) }, policy, now);
      if (!verdict.purge) {
        if (verdict.reason === 'kept-with-deleted-account') keptWithDeletedAccount++;
        continue;
      }
      const list = byAccount.get(ref.account) ?? [];
      list.push(ref);
      byAccount.set(ref.account, list);
    }
    // The index says deleted; an item live now (a damaged index) must never be purged.
    let done = 0;
    for (const [account, refs] of byAccount) {
      const live = await liveItems(store, account);
      if (E.isLeft(live)) return live;
      for (const ref of refs) {
        if (live.right.has(ref.itemId)) staleIndexEntries++;
        else items.push({ account: ref.account, itemId: ref.itemId, deletedAt: ref.deletedAt, tx: ref.tx });
      }
      done += refs.length;
      onProgress({ phase: 'plan', done, total: refsE.right.length });
    }
  }

  const plan: PurgePlan = { ...emptyPlan(now, policy, graceMs), items, accounts: purgedAccounts, keptWithDeletedAccount, staleIndexEntries };
  if (options.volume === undefined) return E.right(plan);

  // Dry-run estimate of the sweep: mark as if the plan had been executed.
  const plannedItems = new Set(items.map((i) => itemKey(i.account, i.itemId)));
  const marked = await markReferenced(store, (account, itemId) => !purgedAccountSet.has(account) && !plannedItems.has(itemKey(account, itemId)), onProgress);
  if (E.isLeft(marked)) return marked;
  const listedE = await listUnreferenced(options.volume, marked.right.referenced);
  if (E.isLeft(listedE)) return listedE;
  let sweepable = 0;
  let sweepableBytes = 0;
  let withinGrace = 0;
  let unknownAge = 0;
  for (const digest of listedE.right.unreferenced) {
    const stat = await run(options.volume.stat(digest));
    if (E.isLeft(stat)) {
      if (stat.left._tag === 'BlobNotFound') continue;
      if (stat.left._tag === 'BlobCorrupt') {
        unknownAge++;
        continue;
      }
      return E.left(volumeFailed('stat', digest)(stat.left));
    }
    const age = blobAge(stat.right.modifiedAt, now, graceMs);
    if (age === 'sweepable') {
      sweepable++;
      sweepableBytes += stat.right.storedSize ?? stat.right.size;
    } else if (age === 'within-grace') withinGrace++;
    else unknownAge++;
  }
  return E.right({
    ...plan,
    blobs: { referenced: marked.right.referenced.size, unreferenced: listedE.right.unreferenced.length, sweepable, sweepableBytes, withinGrace, unknownAge },
  });
};

/** Plan a purge at instant `now`: what goes, what stays and why. Reads only. */
export const planPurge = (options: PlanPurgeOptions): TE.TaskEither<RetentionError, PurgePlan> => () => planPurgeAsync(options);

export interface PurgeSummary {
  readonly itemsRemoved: number;
  /** Planned items whose history changed since the plan (recreated): kept. */
  readonly itemsSkipped: number;
  readonly accountsRemoved: number;
  readonly historiesOfAccountsRemoved: number;
  readonly blobsDeleted: number;
  readonly bytesFreed: number;
  readonly blobsWithinGrace: number;
  readonly blobsUnknownAge: number;
  /** true when `shouldStop` ended the purge early; a rerun finishes it. */
  readonly stopped: boolean;
}

export interface ExecutePurgeOptions {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly onProgress?: OnProgress;
  /** Polled between steps (doStopOperation); the purge stops cleanly and a rerun finishes it. */
  readonly shouldStop?: () => boolean;
}

const executeAsync = async (plan: PurgePlan, options: ExecutePurgeOptions): Promise<E.Either<RetentionError, PurgeSummary>> => {
  const { store, volume } = options;
  const onProgress = options.onProgress ?? noProgress;
  const shouldStop = options.shouldStop ?? (() => false);
  let summary: PurgeSummary = {
    itemsRemoved: 0,
    itemsSkipped: 0,
    accountsRemoved: 0,
    historiesOfAccountsRemoved: 0,
    blobsDeleted: 0,
    bytesFreed: 0,
    blobsWithinGrace: 0,
    blobsUnknownAge: 0,
    stopped: false,
  };
  if (plan.note !== undefined) return E.right(summary);
  const stopped = (): E.Either<RetentionError, PurgeSummary> => E.right({ ...summary, stopped: true });

  // 1. Metadata of expired deleted items. An item live again since the plan is skipped.
  let done = 0;
  let liveAccount: AccountId | undefined;
  let live = new Set<string>();
  for (const item of plan.items) {
    if (shouldStop()) return stopped();
    if (item.account !== liveAccount) {
      const l = await liveItems(store, item.account);
      if (E.isLeft(l)) return l;
      live = l.right;
      liveAccount = item.account;
    }
    if (live.has(item.itemId)) summary = { ...summary, itemsSkipped: summary.itemsSkipped + 1 };
    else {
      // Removing an item that is already gone (an interrupted run) is a no-op for the store.
      const removed = await run(store.removeItem(item.account, item.itemId));
      if (E.isLeft(removed)) return E.left(storeFailed('removeItem', itemKey(item.account, item.itemId))(removed.left));
      summary = { ...summary, itemsRemoved: summary.itemsRemoved + 1 };
    }
    if (++done % 100 === 0) onProgress({ phase: 'items', done, total: plan.items.length });
  }

  // 2. Expired deleted accounts, with every item they hold, then their account stat.
  done = 0;
  for (const account of plan.accounts) {
    if (shouldStop()) return stopped();
    const removed = await run(store.removeAccount(account.account));
    if (E.isLeft(removed)) return E.left(storeFailed('removeAccount', account.account)(removed.left));
    summary = { ...summary, accountsRemoved: summary.accountsRemoved + 1, historiesOfAccountsRemoved: summary.historiesOfAccountsRemoved + removed.right };
    onProgress({ phase: 'accounts', done: ++done, total: plan.accounts.length });
  }

  // 3. Mark what the remaining histories reference — recomputed from the store, never taken
  // from the plan, so that a blob is deleted only when nothing left references it.
  if (shouldStop()) return stopped();
  const marked = await markReferenced(store, () => true, onProgress);
  if (E.isLeft(marked)) return marked;

  // 4. Sweep unreferenced blobs older than the grace period.
  const listedE = await listUnreferenced(volume, marked.right.referenced);
  if (E.isLeft(listedE)) return listedE;
  const total = listedE.right.unreferenced.length;
  const swept = await forEachConcurrently(
    listedE.right.unreferenced,
    SWEEP_CONCURRENCY,
    async (digest, index): Promise<E.Either<RetentionError, void>> => {
      if (index % 100 === 0) onProgress({ phase: 'sweep', done: index, total });
      const stat = await run(volume.stat(digest));
      if (E.isLeft(stat)) {
        if (stat.left._tag === 'BlobNotFound') return E.right(undefined);
        // Unreadable even to stat: its age is unknown, so it stays (a coherency check reports it).
        if (stat.left._tag === 'BlobCorrupt') {
          summary = { ...summary, blobsUnknownAge: summary.blobsUnknownAge + 1 };
          return E.right(undefined);
        }
        return E.left(volumeFailed('stat', digest)(stat.left));
      }
      const age = blobAge(stat.right.modifiedAt, plan.now, plan.graceMs);
      if (age === 'within-grace') {
        summary = { ...summary, blobsWithinGrace: summary.blobsWithinGrace + 1 };
        return E.right(undefined);
      }
      if (age === 'unknown-age') {
        summary = { ...summary, blobsUnknownAge: summary.blobsUnknownAge + 1 };
        return E.right(undefined);
      }
      const deleted = await run(volume.delete(digest));
      if (E.isLeft(deleted) && deleted.left._tag !== 'BlobNotFound') return E.left(volumeFailed('delete', digest)(deleted.left));
      summary = { ...summary, blobsDeleted: summary.blobsDeleted + 1, bytesFreed: summary.bytesFreed + (stat.right.storedSize ?? stat.right.size) };
      return E.right(undefined);
    },
    shouldStop,
  );
  if (E.isLeft(swept)) return swept;
  if (swept.right.stopped) return stopped();
  onProgress({ phase: 'sweep', done: total, total });

  const stat = await run(store.getBackupStat());
  if (E.isLeft(stat)) return E.left(storeFailed('getBackupStat')(stat.left));
  const recorded = await run(store.commit({ changes: [], backupStat: { ...stat.right, lastPurgeAt: plan.now } }));
  if (E.isLeft(recorded)) return E.left(storeFailed('commit')(recorded.left));
  return E.right(summary);
};

/**
 * Execute a plan made by `planPurge` under the same write lock. Safe to kill at any point and
 * to rerun (with a fresh plan): metadata is removed before blobs, and blobs are chosen by a
 * mark over the store as it is after the removal.
 */
export const executePurgePlan = (plan: PurgePlan, options: ExecutePurgeOptions): TE.TaskEither<RetentionError, PurgeSummary> => () =>
  executeAsync(plan, options);

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The plan as lines for people (`doPurge --dry-run`): totals, then one line per account. */
export const formatPurgePlan = (plan: PurgePlan): ReadonlyArray<string> => {
  const days = (n: number): string => (n === 0 ? 'forever' : plural(n, 'day'));
  const lines = [
    `Purge plan at ${new Date(plan.now).toISOString()} (data retention ${days(plan.policy.dataRetentionDays)}, account retention ${days(plan.policy.accountRetentionDays)})`,
  ];
  if (plan.note !== undefined) return [...lines, plan.note];
  lines.push(`  deleted items to remove: ${plan.items.length}`);
  lines.push(`  deleted accounts to remove: ${plan.accounts.length} (${plural(plan.accounts.reduce((n, a) => n + a.items, 0), 'item')})`);
  if (plan.keptWithDeletedAccount > 0) lines.push(`  kept until their deleted account expires: ${plural(plan.keptWithDeletedAccount, 'item')}`);
  if (plan.staleIndexEntries > 0) lines.push(`  deletion-index entries of live items (skipped; run a coherency check): ${plan.staleIndexEntries}`);
  if (plan.blobs !== undefined) {
    const b = plan.blobs;
    lines.push(`  blobs: ${b.referenced} still referenced, ${b.unreferenced} unreferenced of which ${b.sweepable} to delete (${b.sweepableBytes} bytes), ${b.withinGrace} within the ${Math.round(plan.graceMs / 60_000)} min grace period, ${b.unknownAge} of unknown age (kept)`);
  } else lines.push('  blobs: unreferenced blobs are chosen after the metadata is removed');
  const perAccount = new Map<string, number>();
  for (const i of plan.items) perAccount.set(i.account, (perAccount.get(i.account) ?? 0) + 1);
  for (const a of plan.accounts) lines.push(`  ${a.account}: whole account (deleted ${new Date(a.deletedAt).toISOString()}), ${plural(a.items, 'item')}, ${plural(a.transactions, 'transaction')}`);
  for (const [account, n] of [...perAccount].sort(([x], [y]) => x.localeCompare(y))) lines.push(`  ${account}: ${plural(n, 'deleted item')}`);
  return lines;
};
