import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountStat, BackupStat, CommitBatch, CommitSummary, DeletedItemRef, MetadataStore } from './api';
import { AccountId, FORMAT_VERSION, ItemId, type History, type Transaction, type TxId } from './codecs';
import { decodeTransaction, decodeVersioned, decodeWith, parseJson } from './decode';
import { describeCause, storeError, type StoreError } from './errors';
import * as H from './history';
import { AccountStat as AccountStatCodec, BackupStat as BackupStatCodec, DeletionRow, emptyBackupStat, newAccountStat, StoreLayout } from './records';

/*
 * The metadata store over any `AbstractLevel` with string keys and values.
 *
 * Key layout (utf8 strings; `!` separates parts and occurs in no account or item id, and it
 * sorts below every character they may hold, so one item's keys are contiguous):
 *   v                                   {format, layout}: the layout this database holds
 *   t!<account>!<itemId>!<tx, 16 digits> one transaction (JSON). Closing the previous entry's
 *                                       `end` rewrites only that key.
 *   c!<account>!<itemId>                 the item's last transaction, a copy of its newest t! row:
 *                                       current items in one scan, and the head `commit` reads.
 *   d!<at, 16 digits>!<account>!<itemId> {format, tx}: items whose current state is `delete`,
 *                                       by deletion instant. A re-created item leaves the index.
 *   a!<account>                          AccountStat. `items`/`deletedItems`/`lastTx` are kept
 *                                       by the store in the same batch as the changes.
 *   b                                    BackupStat
 * Every write is one `batch`, so a crash leaves all of it or none. Writes are serialized
 * within the process (read heads, compute, write); LevelDB's own lock keeps other processes out.
 */

export type LevelDb = AbstractLevel<string | Buffer | Uint8Array, string, string>;

const SEP = '!';
const END = '\xff';
const READ_CHUNK = 1000;

const pad16 = (n: number): string => String(n).padStart(16, '0');
const txKey = (account: string, itemId: string, tx: number): string => `t!${account}!${itemId}!${pad16(tx)}`;
const headKey = (account: string, itemId: string): string => `c!${account}!${itemId}`;
const delKey = (at: number, account: string, itemId: string): string => `d!${pad16(at)}!${account}!${itemId}`;
const statKey = (account: string): string => `a!${account}`;
const BACKUP_STAT_KEY = 'b';
const LAYOUT_KEY = 'v';

/*
 * Rows this store writes begin with `{"tx":N,"start":S,"end":E,` (the key order of a new
 * entry), so closing a row's `end` or reading its interval needs no JSON round trip. A row
 * in any other order (written by other code) takes the slow path, with the same result.
 */
const ROW_HEAD = /^\{"tx":\d+,"start":(\d+),"end":(null|\d+),/;

const closeRow = (raw: string, closed: Transaction): string => {
  const open = `{"tx":${closed.tx},"start":${closed.start},"end":null,`;
  return raw.startsWith(open) ? `{"tx":${closed.tx},"start":${closed.start},"end":${closed.end},${raw.slice(open.length)}` : JSON.stringify(closed);
};

type ItemStatus = 'absent' | 'live' | 'deleted';
const statusOf = (last: Transaction | undefined): ItemStatus => (last === undefined ? 'absent' : last.op === 'delete' ? 'deleted' : 'live');

/** Thrown by our own code inside a store operation to leave it with a `StoreError`. */
class Abort {
  constructor(readonly error: StoreError) {}
}
const orAbort = <A>(r: E.Either<StoreError, A>): A => {
  if (E.isLeft(r)) throw new Abort(r.left);
  return r.right;
};

/** A visitor's failure: reported as an IOError of the operation, with the visitor's error as cause. */
class VisitorFailed {
  constructor(readonly cause: unknown) {}
}
const callVisitor = async (visit: () => void | Promise<void>): Promise<void> => {
  try {
    const r = visit();
    if (r !== undefined) await r;
  } catch (e) {
    throw new VisitorFailed(e);
  }
};

const run =
  <A>(op: string, body: () => Promise<A>, key?: string): TE.TaskEither<StoreError, A> =>
  () =>
    body().then(
      (a) => E.right(a),
      (e: unknown) => {
        if (e instanceof Abort) return E.left(e.error);
        if (e instanceof VisitorFailed) {
          return E.left({ _tag: 'IOError', op, message: `${op}: the visitor failed: ${describeCause(e.cause)}`, cause: e.cause, ...(key === undefined ? {} : { key }) });
        }
        return E.left(storeError.io(op, e, key));
      },
    );

type Row = { readonly type: 'put'; readonly key: string; readonly value: string } | { readonly type: 'del'; readonly key: string };

/** Split `t!<account>!<itemId>!<tx>` (or `c!<account>!<itemId>`) into its parts. */
const splitItemKey = (key: string, withTx: boolean): { account: string; itemId: string } => {
  const a = key.indexOf(SEP, 2);
  const end = withTx ? key.lastIndexOf(SEP) : key.length;
  return { account: key.slice(2, a), itemId: key.slice(a + 1, end) };
};

export interface MetadataStoreOptions {
  /**
   * How many item heads (last transactions) `commit` keeps decoded in memory, so that items
   * changed again soon (the Real Time Scanner's usual case) are not read back from LevelDB.
   * About 1.5 KiB each. 0 disables the cache.
   */
  readonly headCacheSize?: number;
}

type Head = { readonly entry: Transaction; readonly raw: string };

/**
 * The store over `db`. It must be the only writer of `db` (its head cache and write queue
 * assume so); LevelDB's lock gives that across processes, one store per handle within one.
 */
export const makeMetadataStore = (db: LevelDb, options: MetadataStoreOptions = {}): MetadataStore => {
  const cacheSize = options.headCacheSize ?? 10_000;
  // Least recently used first (Map keeps insertion order). Holds only heads known to be in
  // the database: filled after a batch is written, dropped before an item is replaced.
  const headCache = new Map<string, Head>();
  const remember = (key: string, head: Head): void => {
    if (cacheSize <= 0) return;
    headCache.delete(key);
    headCache.set(key, head);
    if (headCache.size > cacheSize) headCache.delete(headCache.keys().next().value as string);
  };

  // The layout row is checked once, before the first operation touches anything else.
  let ready: Promise<void> | undefined;
  const ensureLayout = (): Promise<void> =>
    (ready ??= (async () => {
      const raw = await db.get(LAYOUT_KEY);
      if (raw === undefined) {
        await db.put(LAYOUT_KEY, JSON.stringify({ format: FORMAT_VERSION, layout: 'zxbackup-metadata' }));
        return;
      }
      orAbort(E.flatMap(parseJson(raw, 'open', LAYOUT_KEY), decodeVersioned(StoreLayout, 'open', LAYOUT_KEY)));
    })().catch((e: unknown) => {
      ready = undefined;
      throw e;
    }));

  let queue: Promise<unknown> = Promise.resolve();
  /** Writes run one at a time: each reads the heads the previous one wrote. */
  const serial = <A>(body: () => Promise<A>): (() => Promise<A>) => () => {
    const next = queue.then(body, body);
    queue = next.catch(() => undefined);
    return next;
  };

  const decodeRow = (raw: string, op: string, key: string): Transaction =>
    orAbort(E.flatMap(parseJson(raw, op, key), decodeTransaction(op, key)));

  const readStat = (raw: string | undefined, op: string, account: AccountId): AccountStat | undefined =>
    raw === undefined ? undefined : orAbort(E.flatMap(parseJson(raw, op, statKey(account)), decodeVersioned(AccountStatCodec, op, statKey(account))));

  /** Visit raw rows of a key range in chunks (bounded memory whatever the range size). */
  const scan = async (range: { gte: string; lt: string }, visit: (key: string, value: string) => Promise<void> | void): Promise<void> => {
    const it = db.iterator(range);
    try {
      for (;;) {
        const rows = await it.nextv(READ_CHUNK);
        if (rows.length === 0) return;
        for (const [k, v] of rows) {
          const r = visit(k, v);
          if (r !== undefined) await r;
        }
      }
    } finally {
      await it.close();
    }
  };

  const scanKeys = async (range: { gte: string; lt: string }): Promise<string[]> => {
    const out: string[] = [];
    const it = db.keys(range);
    try {
      for (;;) {
        const keys = await it.nextv(READ_CHUNK);
        if (keys.length === 0) return out;
        out.push(...keys);
      }
    } finally {
      await it.close();
    }
  };

  const readHistory = async (op: string, account: AccountId, itemId: ItemId): Promise<History> => {
    const prefix = `t!${account}!${itemId}!`;
    const rows: Transaction[] = [];
    await scan({ gte: prefix, lt: prefix + END }, (k, v) => void rows.push(decodeRow(v, op, k)));
    return rows.length === 0 ? rows : orAbort(H.validateHistory(rows, op, `${account}/${itemId}`));
  };

  /** Counters of an account stat after an item moved from one status to another. */
  const adjust = (stat: AccountStat, from: ItemStatus, to: ItemStatus, tx?: number): AccountStat => {
    const count = (s: ItemStatus, which: ItemStatus): number => (s === which ? 1 : 0);
    return {
      ...stat,
      items: stat.items - count(from, 'live') + count(to, 'live'),
      deletedItems: stat.deletedItems - count(from, 'deleted') + count(to, 'deleted'),
      ...(tx === undefined || (stat.lastTx !== undefined && stat.lastTx >= tx) ? {} : { lastTx: tx }),
    };
  };

  /** Rows that replace an item's indexes when its last entry goes from `before` to `after`. */
  const indexRows = (account: string, itemId: string, before: Transaction | undefined, after: Transaction | undefined, afterRaw?: string): Row[] => {
    const rows: Row[] = [];
    if (before?.op === 'delete') rows.push({ type: 'del', key: delKey(before.start, account, itemId) });
    if (after === undefined) rows.push({ type: 'del', key: headKey(account, itemId) });
    else {
      rows.push({ type: 'put', key: headKey(account, itemId), value: afterRaw ?? JSON.stringify(after) });
      if (after.op === 'delete') rows.push({ type: 'put', key: delKey(after.start, account, itemId), value: JSON.stringify({ format: FORMAT_VERSION, tx: after.tx }) });
    }
    return rows;
  };

  /** Replace one item (history or nothing) in one batch, keeping indexes and counters in step. */
  const replaceItem = async (op: string, account: AccountId, itemId: ItemId, history: History | undefined): Promise<void> => {
    headCache.delete(headKey(account, itemId));
    const old = await readHistory(op, account, itemId);
    const before = old[old.length - 1];
    const after = history?.[history.length - 1];
    const rows = new Map<string, Row>();
    const set = (r: Row) => rows.set(r.key, r);
    for (const e of old) set({ type: 'del', key: txKey(account, itemId, e.tx) });
    for (const e of history ?? []) set({ type: 'put', key: txKey(account, itemId, e.tx), value: JSON.stringify(e) });
    indexRows(account, itemId, before, after).forEach(set);
    const stat = readStat(await db.get(statKey(account)), op, account) ?? newAccountStat(account);
    set({ type: 'put', key: statKey(account), value: JSON.stringify(adjust(stat, statusOf(before), statusOf(after), after?.tx)) });
    await db.batch([...rows.values()]);
  };

  const commit = (batch: CommitBatch): TE.TaskEither<StoreError, CommitSummary> =>
    run(
      'commit',
      serial(async () => {
        await ensureLayout();
        const itemKeys = [...new Set(batch.changes.map((c) => headKey(c.account, c.itemId)))];
        const accounts = [...new Set([...batch.changes.map((c) => c.account), ...(batch.accountStats ?? []).map((s) => s.account)])];
        const heads = new Map<string, Head>();
        const missing: string[] = [];
        for (const k of itemKeys) {
          const cached = headCache.get(k);
          if (cached === undefined) missing.push(k);
          else heads.set(k, cached);
        }
        const [rawHeads, rawStats] = await Promise.all([missing.length === 0 ? [] : db.getMany(missing), db.getMany(accounts.map(statKey))]);
        missing.forEach((k, i) => {
          const raw = rawHeads[i];
          if (raw !== undefined) heads.set(k, { entry: decodeRow(raw, 'commit', k), raw });
        });
        const stats = new Map<string, AccountStat>();
        const touched = new Set<string>();
        accounts.forEach((a, i) => stats.set(a, readStat(rawStats[i], 'commit', a) ?? newAccountStat(a)));

        // Later rows for the same key replace earlier ones: several changes of one item in a
        // batch write each transaction once, with its final `end`.
        const rows = new Map<string, Row>();
        const set = (r: Row) => rows.set(r.key, r);
        let recorded = 0;
        let unchanged = 0;
        for (const change of batch.changes) {
          const hk = headKey(change.account, change.itemId);
          const head = heads.get(hk);
          const last = head?.entry;
          const where = `${change.account}/${change.itemId}`;
          const step = orAbort(
            change.kind === 'upsert'
              ? H.stepAppend(last, { tx: change.tx, at: change.at, meta: change.meta, ...(change.digest === undefined ? {} : { digest: change.digest }), ...(change.size === undefined ? {} : { size: change.size }) }, where)
              : H.stepDelete(last, { tx: change.tx, at: change.at }, where),
          );
          if (O.isNone(step)) {
            unchanged++;
            continue;
          }
          recorded++;
          const { closed, entry } = step.value;
          if (O.isSome(closed) && head !== undefined) {
            set({ type: 'put', key: txKey(change.account, change.itemId, closed.value.tx), value: closeRow(head.raw, closed.value) });
          }
          const raw = JSON.stringify(entry);
          set({ type: 'put', key: txKey(change.account, change.itemId, entry.tx), value: raw });
          indexRows(change.account, change.itemId, last, entry, raw).forEach(set);
          heads.set(hk, { entry, raw });
          const stat = stats.get(change.account) as AccountStat;
          stats.set(change.account, adjust(stat, statusOf(last), statusOf(entry), entry.tx));
          touched.add(change.account);
        }
        // The caller's stats carry scan state (cursor, times); the counters stay the store's.
        for (const given of batch.accountStats ?? []) {
          const kept = stats.get(given.account) as AccountStat;
          const lastTx = Math.max(kept.lastTx ?? 0, given.lastTx ?? 0);
          stats.set(given.account, { ...given, format: FORMAT_VERSION, items: kept.items, deletedItems: kept.deletedItems, ...(lastTx > 0 ? { lastTx } : {}) });
          touched.add(given.account);
        }
        for (const a of touched) set({ type: 'put', key: statKey(a), value: JSON.stringify(stats.get(a)) });
        if (batch.backupStat !== undefined) set({ type: 'put', key: BACKUP_STAT_KEY, value: JSON.stringify(batch.backupStat) });
        if (rows.size > 0) await db.batch([...rows.values()]);
        for (const [k, head] of heads) remember(k, head);
        return { recorded, unchanged };
      }),
    );

  const getHistory = (account: AccountId, itemId: ItemId): TE.TaskEither<StoreError, O.Option<History>> =>
    run('getHistory', async () => {
      await ensureLayout();
      const h = await readHistory('getHistory', account, itemId);
      return h.length === 0 ? O.none : O.some(h);
    }, `${account}/${itemId}`);

  const putHistory = (account: AccountId, itemId: ItemId, history: History): TE.TaskEither<StoreError, void> =>
    run(
      'putHistory',
      serial(async () => {
        await ensureLayout();
        orAbort(H.validateHistory(history, 'putHistory', `${account}/${itemId}`));
        await replaceItem('putHistory', account, itemId, history);
      }),
      `${account}/${itemId}`,
    );

  const removeItem = (account: AccountId, itemId: ItemId): TE.TaskEither<StoreError, void> =>
    run(
      'removeItem',
      serial(async () => {
        await ensureLayout();
        await replaceItem('removeItem', account, itemId, undefined);
      }),
      `${account}/${itemId}`,
    );

  const stateAt = (account: AccountId, itemId: ItemId, at: number): TE.TaskEither<StoreError, O.Option<Transaction>> =>
    run('stateAt', async () => {
      await ensureLayout();
      return H.stateAt(await readHistory('stateAt', account, itemId), at);
    }, `${account}/${itemId}`);

  const stateAtTx = (account: AccountId, itemId: ItemId, tx: TxId): TE.TaskEither<StoreError, O.Option<Transaction>> =>
    run('stateAtTx', async () => {
      await ensureLayout();
      return H.stateAtTx(await readHistory('stateAtTx', account, itemId), tx);
    }, `${account}/${itemId}`);

  const forEachItemAt = (
    account: AccountId,
    at: number | 'now',
    visit: (itemId: ItemId, state: Transaction) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number> =>
    run('forEachItemAt', async () => {
      await ensureLayout();
      let count = 0;
      if (at === 'now') {
        const prefix = `c!${account}!`;
        await scan({ gte: prefix, lt: prefix + END }, async (k, v) => {
          const state = decodeRow(v, 'forEachItemAt', k);
          if (state.op === 'delete') return;
          count++;
          await callVisitor(() => visit(k.slice(prefix.length) as ItemId, state));
        });
        return count;
      }
      // Entries of one item have disjoint intervals, so at most one covers T: each row is
      // judged on its own and nothing is grouped. Only the covering row is decoded; the others
      // are skipped on the interval read from their head (ROW_HEAD), the only fields used.
      const prefix = `t!${account}!`;
      await scan({ gte: prefix, lt: prefix + END }, async (k, v) => {
        const m = ROW_HEAD.exec(v);
        if (m !== null) {
          const start = Number(m[1]);
          const end = m[2] === 'null' ? null : Number(m[2]);
          if (!(start <= at && (end === null || at < end))) return;
        }
        const state = decodeRow(v, 'forEachItemAt', k);
        if (!(state.start <= at && (state.end === null || at < state.end))) return;
        if (state.op === 'delete') return;
        count++;
        await callVisitor(() => visit(splitItemKey(k, true).itemId as ItemId, state));
      });
      return count;
    }, account);

  const forEachHistory = (
    account: AccountId | undefined,
    visit: (account: AccountId, itemId: ItemId, history: History) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number> =>
    run('forEachHistory', async () => {
      await ensureLayout();
      const prefix = account === undefined ? 't!' : `t!${account}!`;
      let count = 0;
      let group: { account: string; itemId: string; rows: Transaction[] } | undefined;
      const flush = async () => {
        if (group === undefined) return;
        const g = group;
        group = undefined;
        const where = `${g.account}/${g.itemId}`;
        const history = orAbort(H.validateHistory(g.rows, 'forEachHistory', where));
        const acc = orAbort(decodeWith(AccountId, 'forEachHistory', where)(g.account));
        const item = orAbort(decodeWith(ItemId, 'forEachHistory', where)(g.itemId));
        count++;
        await callVisitor(() => visit(acc, item, history));
      };
      await scan({ gte: prefix, lt: prefix + END }, async (k, v) => {
        const { account: a, itemId } = splitItemKey(k, true);
        if (group !== undefined && (group.account !== a || group.itemId !== itemId)) await flush();
        group ??= { account: a, itemId, rows: [] };
        group.rows.push(decodeRow(v, 'forEachHistory', k));
      });
      await flush();
      return count;
    }, account);

  const deletedBetween = (from: number, to: number, account?: AccountId): TE.TaskEither<StoreError, ReadonlyArray<DeletedItemRef>> =>
    run('deletedBetween', async () => {
      await ensureLayout();
      const out: DeletedItemRef[] = [];
      const lo = Math.max(0, Math.ceil(from));
      if (!(to > lo)) return out;
      const hi = Number.isSafeInteger(Math.ceil(to)) ? `d!${pad16(Math.ceil(to))}!` : `d!${END}`;
      await scan({ gte: `d!${pad16(lo)}!`, lt: hi }, (k, v) => {
        const parts = k.split(SEP);
        const [, at, a, itemId] = parts;
        if (parts.length !== 4 || at === undefined || a === undefined || itemId === undefined) {
          throw new Abort(storeError.decode('deletedBetween', `malformed deletion index key ${k}`, k));
        }
        if (account !== undefined && a !== account) return;
        const row = orAbort(E.flatMap(parseJson(v, 'deletedBetween', k), decodeVersioned(DeletionRow, 'deletedBetween', k)));
        out.push({
          account: orAbort(decodeWith(AccountId, 'deletedBetween', k)(a)),
          itemId: orAbort(decodeWith(ItemId, 'deletedBetween', k)(itemId)),
          deletedAt: Number(at),
          tx: row.tx,
        });
      });
      return out;
    });

  const listAccounts = (): TE.TaskEither<StoreError, ReadonlyArray<AccountId>> =>
    run('listAccounts', async () => {
      await ensureLayout();
      const keys = await scanKeys({ gte: 'a!', lt: `a!${END}` });
      return keys.map((k) => orAbort(decodeWith(AccountId, 'listAccounts', k)(k.slice(2))));
    });

  const getAccountStat = (account: AccountId): TE.TaskEither<StoreError, O.Option<AccountStat>> =>
    run('getAccountStat', async () => {
      await ensureLayout();
      return O.fromNullable(readStat(await db.get(statKey(account)), 'getAccountStat', account));
    }, statKey(account));

  const putAccountStat = (stat: AccountStat): TE.TaskEither<StoreError, void> =>
    run(
      'putAccountStat',
      serial(async () => {
        await ensureLayout();
        await db.put(statKey(stat.account), JSON.stringify(stat));
      }),
      statKey(stat.account),
    );

  const getBackupStat = (): TE.TaskEither<StoreError, BackupStat> =>
    run('getBackupStat', async () => {
      await ensureLayout();
      const raw = await db.get(BACKUP_STAT_KEY);
      return raw === undefined
        ? emptyBackupStat()
        : orAbort(E.flatMap(parseJson(raw, 'getBackupStat', BACKUP_STAT_KEY), decodeVersioned(BackupStatCodec, 'getBackupStat', BACKUP_STAT_KEY)));
    });

  const close = (): TE.TaskEither<StoreError, void> =>
    run(
      'close',
      serial(() => db.close()),
    );

  return {
    commit,
    getHistory,
    putHistory,
    removeItem,
    stateAt,
    stateAtTx,
    forEachItemAt,
    forEachHistory,
    deletedBetween,
    listAccounts,
    getAccountStat,
    putAccountStat,
    getBackupStat,
    close,
  };
};

/**
 * Open (creating if needed) the on-disk store in `dir` with classic-level. A store already
 * open in another process is `BackupPathLocked`: LevelDB admits one process at a time.
 */
export const openMetadataStore = (dir: string): TE.TaskEither<StoreError, MetadataStore> => async () => {
  const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') {
      return E.left(storeError.locked('openMetadataStore', `the metadata store ${dir} is open in another process (${describeCause(cause)}); stop it or wait for it to finish`, dir));
    }
    return E.left(storeError.io('openMetadataStore', e, dir, 'opening the metadata store'));
  }
  const store = makeMetadataStore(db);
  // Fail now, not at the first write, when the directory holds another layout.
  const probe = await store.getBackupStat()();
  if (E.isLeft(probe)) {
    await db.close().catch(() => undefined);
    return E.left(probe.left);
  }
  return E.right(store);
};
