import { pipe } from 'fp-ts/function';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { FORMAT_VERSION, SERVER_ACCOUNT, type AccountId, type AccountStat } from '@zxbackup/item-store';
import { makeAccountLocks } from './account-locks';
import { loadAccountIndex } from './account-index';
import { makeAccountSession } from './account-session';
import { makeCommitter, run } from './committer';
import { Abort, describeEngineError, engineError, type EngineError } from './errors';
import { ACCOUNT_ITEM_ID } from './ids';
import { addSummary, emptySummary, silentLogger, type EngineDeps, type MutableSummary, type ScanSummary } from './types';

export interface SmartScanOptions {
  /** Scan only these accounts (default: every account of the source, and mark vanished ones deleted). */
  readonly accounts?: ReadonlyArray<AccountId>;
  /** Ignore the scan cursors: list every folder (`--deep`; what an Account Scan does). */
  readonly full?: boolean;
}

export interface AccountScanOptions {
  /** Ignore the cursor (default true: the Account Scan / Safety Scan). */
  readonly full?: boolean;
  /** When the changes happened, if not now (the Real Time Scanner passes the live change's time). */
  readonly at?: number;
}

export interface ScanEngine {
  /**
   * The SmartScan: for each account, what changed since its cursor (everything with `full`):
   * new messages are read and stored, changed ones updated, vanished ones marked deleted.
   * Accounts gone from the source are marked deleted (their items stay restorable). One
   * account's failure is logged and reported in `failures`; the others go on.
   */
  smartScan(options?: SmartScanOptions): TE.TaskEither<EngineError, ScanSummary>;
  /** The Account Scan (the seed's Safety Scan): a full scan of one account. Its failure is a Left. */
  accountScan(account: AccountId, options?: AccountScanOptions): TE.TaskEither<EngineError, ScanSummary>;
}

const ACCOUNT_STAT_DEFAULTS = { items: 0, deletedItems: 0 };

/**
 * Makes the scan engine. `at` of every change a scan records is the scan time (`clock()` when
 * the account's scan starts), new messages included: the backup knows a message from the
 * moment it saw it, not from its received date (which a restored or migrated message predates).
 */
export const makeScanEngine = (deps: EngineDeps): ScanEngine => {
  const clock = deps.clock ?? Date.now;
  const log = deps.log ?? silentLogger;
  const locks = deps.locks ?? makeAccountLocks();
  const shouldStop = deps.shouldStop ?? (() => false);
  const concurrency = deps.concurrency ?? 6;
  const batchSize = deps.batchSize ?? 1000;

  const scanOne = (account: AccountId, full: boolean, atOverride: number | undefined, progress: { done: number; total: number }): Promise<MutableSummary> =>
    locks.run(account, async () => {
      const counters = emptySummary();
      counters.accounts = 1;
      const scanTime = clock();
      const at = Math.round(atOverride ?? scanTime);
      const report = (phase: 'index' | 'scan' | 'finish' | 'done') =>
        deps.onProgress?.({
          account,
          accountsDone: progress.done,
          accountsTotal: progress.total,
          phase,
          foldersDone: counters.foldersScanned + counters.foldersSkipped,
          messagesRead: counters.messagesRead,
          changes: counters.created + counters.updated + counters.moved + counters.deleted,
        });
      report('index');
      const stat = await run(pipe(deps.store.getAccountStat(account), TE.mapLeft(engineError.store('getAccountStat', account))));
      const prev: AccountStat | undefined = O.toUndefined(stat);
      const index = await run(loadAccountIndex(deps.store, account));
      const committer = makeCommitter({ store: deps.store, volume: deps.volume, txIds: deps.txIds, account, batchSize, shouldStop });
      const session = makeAccountSession({
        store: deps.store,
        volume: deps.volume,
        source: deps.source,
        index,
        committer,
        at,
        concurrency,
        counters,
        mode: 'account',
      });
      report('scan');
      let aborted: Abort | undefined;
      const scanned = await deps.source.scanAccount(account, full ? undefined : prev?.cursor, { full }, async (event) => {
        if (aborted !== undefined) throw aborted;
        try {
          if (event.type === 'account') await session.account(event.meta);
          else if (event.type === 'folderUnchanged') session.folderUnchanged(event.folderKey);
          else {
            await session.folder(event.folderKey, event.meta, event.entries);
            report('scan');
          }
        } catch (e) {
          aborted = e instanceof Abort ? e : new Abort({ error: engineError.internal('scanEvent', account)(e) });
          throw aborted;
        }
      })();
      if (aborted !== undefined) throw aborted;
      if (E.isLeft(scanned)) throw new Abort({ error: engineError.source('scanAccount', account)(scanned.left) });
      report('finish');
      await session.finish();
      // The cursor goes with (or after) the last change of the account: a crash before this
      // commit leaves the old cursor, and the rerun redoes what was not recorded.
      await committer.commit((lastTx) => [
        {
          ...ACCOUNT_STAT_DEFAULTS,
          ...(prev ?? {}),
          format: FORMAT_VERSION,
          account,
          cursor: scanned.right.cursor,
          lastScanAt: scanTime,
          ...(lastTx === undefined ? {} : { lastTx }),
          items: session.liveItems(),
          deletedItems: (prev?.deletedItems ?? 0) + session.deletions(),
          deletedAt: undefined,
        },
      ]);
      const totals = committer.totals();
      counters.recorded = totals.recorded;
      counters.unchanged = totals.unchanged;
      report('done');
      return counters;
    });

  /** Runs one account; an `Abort` becomes a failure or a stop in the summary. */
  const scanCaught = async (account: AccountId, full: boolean, at: number | undefined, progress: { done: number; total: number }): Promise<ScanSummary> => {
    try {
      return await scanOne(account, full, at, progress);
    } catch (e) {
      if (e instanceof Abort && 'stopped' in e.reason) return { ...emptySummary(), stopped: true };
      const error = e instanceof Abort && 'error' in e.reason ? e.reason.error : engineError.internal('scanAccount', account)(e);
      return { ...emptySummary(), failures: [{ account, error }] };
    }
  };

  /** Accounts the store knows and the source no longer lists: mark the account item deleted. */
  const markVanishedAccounts = async (present: ReadonlySet<string>, summary: MutableSummary): Promise<void> => {
    const known = await run(pipe(deps.store.listAccounts(), TE.mapLeft(engineError.store('listAccounts'))));
    for (const account of known) {
      if (account === SERVER_ACCOUNT || present.has(account)) continue;
      await locks.run(account, async () => {
        const stat = O.toUndefined(await run(pipe(deps.store.getAccountStat(account), TE.mapLeft(engineError.store('getAccountStat', account)))));
        if (stat?.deletedAt !== undefined) return;
        const now = Math.round(clock());
        const committer = makeCommitter({ store: deps.store, volume: deps.volume, txIds: deps.txIds, account, batchSize, shouldStop: () => false });
        await committer.add({ kind: 'delete', itemId: ACCOUNT_ITEM_ID, at: now });
        await committer.commit((lastTx) => [
          { ...ACCOUNT_STAT_DEFAULTS, ...(stat ?? {}), format: FORMAT_VERSION, account, deletedAt: now, ...(lastTx === undefined ? {} : { lastTx }) },
        ]);
        summary.accountsDeleted++;
        log.info('account gone from the source: marked deleted, its items stay restorable', { account });
      });
    }
  };

  const toTask =
    <A>(op: string, f: () => Promise<A>): TE.TaskEither<EngineError, A> =>
    () =>
      f().then(
        (a) => E.right(a),
        (e: unknown) =>
          E.left(e instanceof Abort && 'error' in e.reason ? e.reason.error : engineError.internal(op)(e)),
      );

  return {
    smartScan: (options = {}) =>
      toTask('smartScan', async () => {
        const listed = options.accounts ?? (await run(pipe(deps.source.listAccounts(), TE.mapLeft(engineError.source('listAccounts')))));
        const summary = emptySummary();
        const progress = { done: 0, total: listed.length };
        for (const account of listed) {
          if (shouldStop()) {
            summary.stopped = true;
            break;
          }
          const s = await scanCaught(account, options.full ?? false, undefined, progress);
          for (const f of s.failures) log.error('account scan failed', { account, error: describeEngineError(f.error) });
          addSummary(summary, s);
          progress.done++;
          if (s.stopped) break;
        }
        if (options.accounts === undefined && !summary.stopped) await markVanishedAccounts(new Set(listed), summary);
        return summary as ScanSummary;
      }),

    accountScan: (account, options = {}) =>
      toTask('accountScan', async () => {
        const s = await scanCaught(account, options.full ?? true, options.at, { done: 0, total: 1 });
        const failure = s.failures[0];
        if (failure !== undefined) throw new Abort({ error: failure.error });
        return s;
      }),
  };
};
