import { pipe } from 'fp-ts/function';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import * as t from 'io-ts';
import { AccountId } from '@zxbackup/item-store';
import { makeCoalescer, type ChangeLog, type LogPosition } from '@zxbackup/transaction-log';
import type { FolderMeta, ItemId } from '@zxbackup/item-store';
import type { LiveChange, MessageEntry, Watcher } from '../source';
import { makeAccountLocks } from './account-locks';
import { loadAccountIndex, resetClaims, type AccountIndex } from './account-index';
import { makeAccountSession } from './account-session';
import { makeCommitter, run } from './committer';
import { Abort, describeEngineError, engineError, type EngineError } from './errors';
import { makeScanEngine } from './smart-scan';
import { emptySummary, silentLogger, type EngineDeps } from './types';
import { forEachConcurrent } from './util';

/** What the change log keeps of a live change (decoded on replay). */
export const LiveChangeRecord = t.intersection([
  t.type({ account: AccountId, at: t.number }),
  t.partial({
    /** Absent: an account-wide change (a folder created, removed or renamed). */
    folderKey: t.string,
    /** The watcher lost track of this account: a Safety Scan (full Account Scan) is due. */
    uncertain: t.literal(true),
    /** The source keys the change names (`LiveChange.names`); absent: the folder is listed. */
    names: t.array(t.string),
  }),
]);
export type LiveChangeRecord = t.TypeOf<typeof LiveChangeRecord>;

export interface RealTimeScannerDeps extends EngineDeps {
  /** Opened by the caller with the `LiveChangeRecord` codec; the scanner never closes it. */
  readonly changeLog: ChangeLog<LiveChangeRecord>;
  /** Changes of one folder within this window become one rescan (default 50 ms). */
  readonly windowMs?: number;
  /** Told when the watcher lost track (after the event was logged, before the Safety Scan runs). */
  readonly onUncertain?: (account: AccountId | undefined, reason: string) => void;
  /** A folder that held at least this many messages and is listed empty triggers a Safety Scan (default 10). */
  readonly emptiedFolderThreshold?: number;
  /** Wait before a failed batch is tried again (default 1 s). */
  readonly retryDelayMs?: number;
}

export interface RealTimeScannerStats {
  readonly received: number;
  readonly appendErrors: number;
  readonly batches: number;
  /** Folders listed in full. */
  readonly foldersRescanned: number;
  /** Folders of which only the messages the changes named were looked up. */
  readonly foldersHinted: number;
  readonly accountScans: number;
  readonly safetyScans: number;
  readonly failedBatches: number;
  readonly recorded: number;
  /** Last position checkpointed (everything up to it is in the store). */
  readonly checkpoint: number;
  /** Change time → committed, in ms, over the last 10,000 changes. */
  readonly latency: { readonly count: number; readonly p50: number; readonly p99: number; readonly max: number };
}

export interface RealTimeScanner {
  /** Stops watching, applies what is pending, checkpoints. The change log stays open. */
  stop(): Promise<void>;
  stats(): RealTimeScannerStats;
}

/** One change waiting to be applied; `pos` once the log made it durable. */
interface Slot {
  pos: LogPosition | undefined;
  applied: boolean;
  /** Settles once the append is done (or failed): nothing is applied before. */
  readonly appended: Promise<void>;
}

interface Pending {
  readonly account: AccountId;
  readonly folderKey?: string;
  readonly uncertain?: true;
  /** Source keys named by every change merged into this one; undefined: list the folder. */
  readonly names?: ReadonlyArray<string>;
  /** Oldest and newest change time merged into this one. */
  readonly firstAt: number;
  readonly at: number;
  readonly slots: ReadonlyArray<Slot>;
}

/** Accounts whose index the scanner keeps between batches (least recently used go first). */
const INDEX_CACHE_ACCOUNTS = 64;
const ACCOUNTS_AT_ONCE = 4;

const keyOf = (p: Pending): string => `${p.account}\0${p.uncertain === true ? '!' : (p.folderKey ?? '*')}`;

/** Above this many names a folder is listed instead (and the names are not kept). */
const MAX_NAMES = 10_000;

/** Names of two changes of one folder, or undefined (list it) unless both named theirs. */
const mergeNames = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string> | undefined): ReadonlyArray<string> | undefined =>
  a === undefined || b === undefined || a.length + b.length > MAX_NAMES ? undefined : [...a, ...b];

const merge = (a: Pending, b: Pending): Pending => {
  const { names: _names, ...rest } = a;
  const names = mergeNames(a.names, b.names);
  return { ...rest, ...(names === undefined ? {} : { names }), firstAt: Math.min(a.firstAt, b.firstAt), at: Math.max(a.at, b.at), slots: [...a.slots, ...b.slots] };
};

/** True when a lookup answered every key exactly once. */
const answersExactly = (keys: ReadonlyArray<string>, r: { readonly present: ReadonlyArray<MessageEntry>; readonly absent: ReadonlyArray<string> }): boolean => {
  const answered = new Set<string>();
  for (const k of [...r.present.map((e) => e.sourceKey), ...r.absent]) {
    if (answered.has(k)) return false;
    answered.add(k);
  }
  return answered.size === keys.length && keys.every((k) => answered.has(k));
};

const percentile = (sorted: ReadonlyArray<number>, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] ?? 0;

/**
 * The Real Time Scanner. Each live change is appended to the durable change log first, then
 * coalesced per (account, folder) for `windowMs`; a batch looks up just the messages the
 * changes of a folder named (when every change of it named some and the source can look them
 * up), or else relists the folder, diffs that against the store, stores new blobs, flushes the
 * volume, commits with the change time, and only then checkpoints the log. On start, what the
 * log holds beyond its checkpoint (changes acknowledged before a crash) is applied first. A folder change the store cannot
 * place (a new or vanished folder) becomes an incremental scan of the account; uncertainty and
 * an emptied folder become a Safety Scan (a full Account Scan).
 */
export const startRealTimeScanner = (deps: RealTimeScannerDeps): TE.TaskEither<EngineError, RealTimeScanner> => {
  const log = deps.log ?? silentLogger;
  const clock = deps.clock ?? Date.now;
  const locks = deps.locks ?? makeAccountLocks();
  const engineDeps: EngineDeps = { ...deps, locks, shouldStop: () => false };
  const engine = makeScanEngine(engineDeps);
  const threshold = deps.emptiedFolderThreshold ?? 10;
  const { changeLog } = deps;

  const outstanding: Slot[] = [];
  const indexCache = new Map<AccountId, { readonly index: AccountIndex; readonly generation: number }>();
  const appending = new Set<Promise<void>>();
  const latencies: number[] = [];
  const counters = {
    received: 0,
    appendErrors: 0,
    batches: 0,
    foldersRescanned: 0,
    foldersHinted: 0,
    accountScans: 0,
    safetyScans: 0,
    failedBatches: 0,
    recorded: 0,
    checkpoint: 0,
  };
  let work: Promise<void> = Promise.resolve();
  let stopping = false;
  const timers = new Set<NodeJS.Timeout>();

  /** Runs tasks one after another (batches, Safety Scans); a failure is the task's own business. */
  const enqueue = (task: () => Promise<void>): Promise<void> => {
    work = work.then(task, task);
    return work;
  };

  const safetyScan = async (account: AccountId, at: number, reason: string): Promise<void> => {
    counters.safetyScans++;
    log.warn('Safety Scan: full Account Scan', { account, reason });
    const s = await run(engine.accountScan(account, { full: true, at }));
    counters.recorded += s.recorded;
  };

  const incrementalScan = async (account: AccountId, at: number): Promise<void> => {
    counters.accountScans++;
    const s = await run(engine.accountScan(account, { full: false, at }));
    counters.recorded += s.recorded;
  };

  type FolderOutcome = 'done' | { readonly escalate: 'scan' | 'safety'; readonly reason: string };

  /** A dirty folder of a batch; `names` when every change of it named its messages. */
  interface DirtyFolder {
    readonly folderKey: string;
    readonly names?: ReadonlyArray<string>;
  }

  interface Hinted {
    readonly folderKey: string;
    readonly folderId: ItemId;
    readonly present: ReadonlyArray<MessageEntry>;
    readonly absent: ReadonlyArray<string>;
  }

  const countIn = (index: AccountIndex, folderId: ItemId): number => {
    let held = 0;
    for (const m of index.messages.values()) if (m.folderId === folderId) held++;
    return held;
  };

  /** Recorded messages of the folder among `absent` (each key's records in that folder). */
  const goneFrom = (index: AccountIndex, folderId: ItemId, absent: ReadonlyArray<string>): number => {
    let gone = 0;
    for (const key of absent) for (const id of index.bySourceKey.get(key) ?? []) if (index.messages.get(id)?.folderId === folderId) gone++;
    return gone;
  };

  /**
   * Records what changed in the dirty folders of one account, or says what to run instead. A
   * folder whose changes all named their messages is looked up message by message (when the
   * source can); any other is listed in full and diffed against the store.
   */
  const applyFolders = (account: AccountId, folders: ReadonlyArray<DirtyFolder>, at: number): Promise<FolderOutcome> =>
    locks.run(account, async (): Promise<FolderOutcome> => {
      // Reuse the index of this account's last batch unless another writer ran since (every
      // locked task bumps the generation once, ours included).
      const generation = locks.generation(account);
      const cached = indexCache.get(account);
      indexCache.delete(account);
      let index: AccountIndex;
      if (cached !== undefined && cached.generation === generation) {
        index = cached.index;
        resetClaims(index);
      } else {
        index = await run(loadAccountIndex(deps.store, account));
      }
      const toList = new Set<string>();
      const toLookUp: Array<{ folderKey: string; folderId: ItemId; keys: ReadonlyArray<string> }> = [];
      const statEntries = deps.source.statEntries;
      for (const { folderKey, names } of folders) {
        const folderId = index.folderByKey.get(folderKey);
        if (folderId === undefined) return { escalate: 'scan', reason: `new folder ${folderKey}` };
        if (names === undefined || names.length === 0 || statEntries === undefined) toList.add(folderKey);
        else toLookUp.push({ folderKey, folderId, keys: [...new Set(names)] });
      }
      const hinted: Hinted[] = [];
      const lookups = await Promise.all(toLookUp.map(async (f) => ({ ...f, found: await (statEntries as NonNullable<typeof statEntries>).call(deps.source, account, f.folderKey, f.keys)() })));
      for (const { folderKey, folderId, keys, found } of lookups) {
        if (E.isLeft(found)) {
          if (found.left._tag === 'SourceNotFound') return { escalate: 'scan', reason: `folder ${folderKey} is gone` };
          throw new Abort({ error: engineError.source('statEntries', `${account}:${folderKey}`)(found.left) });
        }
        if (answersExactly(keys, found.right)) hinted.push({ folderKey, folderId, ...found.right });
        else toList.add(folderKey);
      }
      // One source key present in two folders at once is no move a hint can place: list them.
      const presentIn = new Map<string, number>();
      for (const h of hinted) for (const e of h.present) presentIn.set(e.sourceKey, (presentIn.get(e.sourceKey) ?? 0) + 1);
      for (let i = hinted.length - 1; i >= 0; i--) {
        const h = hinted[i] as Hinted;
        if (h.present.some((e) => (presentIn.get(e.sourceKey) ?? 0) > 1)) {
          toList.add(h.folderKey);
          hinted.splice(i, 1);
        }
      }
      for (const h of hinted) {
        // Every recorded message of a folder gone and none there: the folder was emptied.
        if (h.present.length > 0 || h.absent.length < threshold) continue;
        const held = countIn(index, h.folderId);
        if (held >= threshold && goneFrom(index, h.folderId, h.absent) >= held) {
          return { escalate: 'safety', reason: `folder ${h.folderKey} held ${held} messages and is empty (emptied folder)` };
        }
      }
      const listings: Array<{ folderKey: string; meta: FolderMeta; entries: ReadonlyArray<MessageEntry> }> = [];
      // In the batch's order: a listing claims a message in its own folder before another listing can take it as moved.
      for (const { folderKey } of folders.filter((f) => toList.has(f.folderKey))) {
        const folderId = index.folderByKey.get(folderKey) as ItemId;
        const listed = await deps.source.listFolder(account, folderKey)();
        if (E.isLeft(listed)) {
          if (listed.left._tag === 'SourceNotFound') return { escalate: 'scan', reason: `folder ${folderKey} is gone` };
          throw new Abort({ error: engineError.source('listFolder', `${account}:${folderKey}`)(listed.left) });
        }
        if (listed.right.entries.length === 0) {
          const held = countIn(index, folderId);
          if (held >= threshold) return { escalate: 'safety', reason: `folder ${folderKey} held ${held} messages and is empty (emptied folder)` };
        }
        listings.push({ folderKey, ...listed.right });
      }
      const committer = makeCommitter({ store: deps.store, volume: deps.volume, txIds: deps.txIds, account, batchSize: deps.batchSize ?? 1000, shouldStop: () => false });
      const session = makeAccountSession({
        store: deps.store,
        volume: deps.volume,
        source: deps.source,
        index,
        committer,
        at,
        concurrency: deps.concurrency ?? 6,
        counters: emptySummary(),
        mode: 'folders',
      });
      for (const l of listings) await session.folder(l.folderKey, l.meta, l.entries);
      await session.messages(hinted);
      await session.finish();
      await committer.commit();
      indexCache.set(account, { index, generation: generation + 1 });
      if (indexCache.size > INDEX_CACHE_ACCOUNTS) indexCache.delete(indexCache.keys().next().value as AccountId);
      counters.foldersRescanned += listings.length;
      counters.foldersHinted += hinted.length;
      counters.recorded += committer.totals().recorded;
      return 'done';
    });

  const applyAccount = async (account: AccountId, changes: ReadonlyArray<Pending>): Promise<void> => {
    const at = Math.round(Math.max(...changes.map((c) => c.at)));
    const uncertain = changes.find((c) => c.uncertain === true);
    if (uncertain !== undefined) return safetyScan(account, at, 'the watcher lost track');
    if (changes.some((c) => c.folderKey === undefined)) return incrementalScan(account, at);
    const dirty = new Map<string, ReadonlyArray<string> | undefined>();
    for (const c of changes) {
      const key = c.folderKey as string;
      dirty.set(key, dirty.has(key) ? mergeNames(dirty.get(key), c.names) : c.names);
    }
    const folders = [...dirty].map(([folderKey, names]): DirtyFolder => (names === undefined ? { folderKey } : { folderKey, names }));
    const outcome = await applyFolders(account, folders, at);
    if (outcome === 'done') return;
    if (outcome.escalate === 'safety') return safetyScan(account, at, outcome.reason);
    log.info('live change needs an account scan', { account, reason: outcome.reason });
    return incrementalScan(account, at);
  };

  let checkpointTarget = 0;
  let checkpointing: Promise<void> | undefined;
  /**
   * Checkpoints the longest applied prefix of what was appended. Off the critical path: the
   * changes are durable in the store already, the checkpoint only shortens a replay. At most
   * one checkpoint write runs at a time; the latest position wins.
   */
  const advance = (): Promise<void> => {
    while (outstanding[0]?.applied === true) {
      const slot = outstanding.shift() as Slot;
      if (slot.pos !== undefined) checkpointTarget = Math.max(checkpointTarget, slot.pos);
    }
    if (checkpointing === undefined && checkpointTarget > counters.checkpoint) {
      checkpointing = (async () => {
        while (checkpointTarget > counters.checkpoint) {
          const position = checkpointTarget as LogPosition;
          const r = await changeLog.checkpoint(position)();
          // A lost checkpoint only means those changes are applied again (idempotently) after a restart.
          if (E.isLeft(r)) {
            log.error('change log checkpoint failed', { position, error: r.left.message });
            return;
          }
          counters.checkpoint = Math.max(counters.checkpoint, position);
        }
      })().finally(() => {
        checkpointing = undefined;
      });
    }
    return checkpointing ?? Promise.resolve();
  };

  const applyBatch = async (batch: ReadonlyArray<Pending>): Promise<void> => {
    counters.batches++;
    const byAccount = new Map<AccountId, Pending[]>();
    for (const p of batch) byAccount.set(p.account, [...(byAccount.get(p.account) ?? []), p]);
    // Accounts are independent (each has its own lock): apply a few at a time.
    await forEachConcurrent([...byAccount], ACCOUNTS_AT_ONCE, async ([account, changes]) => {
      try {
        await Promise.all(changes.flatMap((c) => c.slots.map((s) => s.appended)));
        await applyAccount(account, changes);
        const done = clock();
        for (const c of changes) {
          for (const s of c.slots) s.applied = true;
          latencies.push(done - c.firstAt);
        }
        if (latencies.length > 10_000) latencies.splice(0, latencies.length - 10_000);
      } catch (e) {
        counters.failedBatches++;
        const error = e instanceof Abort && 'error' in e.reason ? describeEngineError(e.reason.error) : String(e);
        log.error('live changes not applied; retrying', { account, error });
        // Not checkpointed: a restart replays them. Meanwhile try again after a pause.
        if (!stopping) {
          const timer = setTimeout(() => {
            timers.delete(timer);
            for (const c of changes) coalescer.push(c);
          }, deps.retryDelayMs ?? 1000);
          timers.add(timer);
        }
      }
    });
    void advance();
  };

  // Batches cut while one is being applied wait here, merged: the slower the store, the larger
  // the batch, so a backlog is absorbed instead of growing.
  const queued = new Map<string, Pending>();
  let draining = false;
  const submit = (batch: ReadonlyArray<Pending>): void => {
    for (const p of batch) {
      const before = queued.get(keyOf(p));
      queued.set(keyOf(p), before === undefined ? p : merge(before, p));
    }
    if (draining) return;
    draining = true;
    void enqueue(async () => {
      try {
        while (queued.size > 0) {
          const all = [...queued.values()];
          queued.clear();
          await applyBatch(all);
        }
      } finally {
        draining = false;
      }
    });
  };

  const coalescer = makeCoalescer<Pending>({
    windowMs: deps.windowMs ?? 50,
    keyOf,
    merge,
    emit: submit,
    onError: (cause) => log.error('live change batch failed', { error: String(cause) }),
  });

  const accept = (record: LiveChangeRecord): void => {
    counters.received++;
    // Durable first: once appended, a crash cannot lose the change. The coalescing window
    // runs meanwhile; a batch waits for the appends of its changes before applying them.
    const appended: Promise<void> = changeLog
      .append([record])()
      .then((r) => {
        if (E.isLeft(r)) {
          counters.appendErrors++;
          log.error('change log append failed: the change is applied but not durable until then', { account: record.account, error: r.left.message });
        } else slot.pos = r.right;
      })
      .finally(() => appending.delete(appended));
    appending.add(appended);
    const slot: Slot = { pos: undefined, applied: false, appended };
    outstanding.push(slot);
    coalescer.push({ ...record, firstAt: record.at, slots: [slot] });
  };

  const onChange = (change: LiveChange): void => {
    if (stopping) return;
    const named = change.folderKey !== undefined && change.names !== undefined && change.names.length > 0;
    accept({
      account: change.account,
      at: Math.round(change.at),
      ...(change.folderKey === undefined ? {} : { folderKey: change.folderKey }),
      ...(named ? { names: [...(change.names as ReadonlyArray<string>)] } : {}),
    });
  };

  const onUncertain = (account: AccountId | undefined, reason: string): void => {
    if (stopping) return;
    log.warn('the watcher lost track of changes', { account, reason });
    deps.onUncertain?.(account, reason);
    if (account !== undefined) {
      accept({ account, at: Math.round(clock()), uncertain: true });
      return;
    }
    // No account to log it under: a full SmartScan now (and one is due at every restart anyway).
    void enqueue(async () => {
      counters.safetyScans++;
      const r = await engine.smartScan({ full: true })();
      if (E.isLeft(r)) log.error('Safety Scan (full SmartScan) failed', { error: describeEngineError(r.left) });
      else counters.recorded += r.right.recorded;
    });
  };

  /** Applies what the log holds beyond its checkpoint: changes acknowledged before a crash. */
  const replay = async (): Promise<void> => {
    const from = await run(pipe(changeLog.checkpointed(), TE.mapLeft(engineError.txLog('checkpointed'))));
    counters.checkpoint = from;
    const merged = new Map<string, Pending>();
    const last = await run(
      pipe(
        changeLog.replay(from, (record) => {
          const p: Pending = { ...record, firstAt: record.at, slots: [] };
          const before = merged.get(keyOf(p));
          merged.set(keyOf(p), before === undefined ? p : merge(before, p));
        }),
        TE.mapLeft(engineError.txLog('replay')),
      ),
    );
    if (merged.size === 0) return;
    log.info('applying live changes logged before the last stop', { changes: merged.size, from, to: last });
    const byAccount = new Map<AccountId, Pending[]>();
    for (const p of merged.values()) byAccount.set(p.account, [...(byAccount.get(p.account) ?? []), p]);
    for (const [account, changes] of byAccount) await applyAccount(account, changes);
    await run(pipe(changeLog.checkpoint(last), TE.mapLeft(engineError.txLog('checkpoint'))));
    counters.checkpoint = last;
  };

  return pipe(
    TE.tryCatch(replay, (e) => (e instanceof Abort && 'error' in e.reason ? e.reason.error : engineError.internal('replay')(e))),
    TE.flatMap(() => {
      const watch = deps.source.watch;
      if (watch === undefined) {
        return TE.left(engineError.source('watch')({ _tag: 'SourceUnavailable', op: 'watch', message: `${deps.source.uri} cannot report live changes` }));
      }
      return pipe(watch.call(deps.source, { onChange, onUncertain }), TE.mapLeft(engineError.source('watch')));
    }),
    TE.map(
      (watcher: Watcher): RealTimeScanner => ({
        stop: async () => {
          stopping = true;
          await watcher.close();
          for (const timer of timers) clearTimeout(timer);
          timers.clear();
          // Appends still in flight push into the coalescer when they resolve.
          await Promise.all([...appending]);
          await coalescer.flush();
          await work;
          await advance();
          await checkpointing;
        },
        stats: () => {
          const sorted = [...latencies].sort((a, b) => a - b);
          return {
            ...counters,
            latency: { count: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? 0 },
          };
        },
      }),
    ),
  );
};
