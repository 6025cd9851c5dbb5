import type { AbstractLevel } from 'abstract-level';
import { ClassicLevel } from 'classic-level';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountStat, BackupStat, CommitBatch, CommitSummary, DeletedItemRef, DeletionIndexRepair, MetadataStore } from './api';
import { AccountId, FORMAT_VERSION, ItemId, type History, type Transaction, type TxId } from './codecs';
import { decodeStoredTransaction, decodeVersioned, decodeWith, parseJson, type StoredTransaction } from './decode';
import { describeCause, storeError, type StoreError } from './errors';
import * as H from './history';
import {
  AccountStat as AccountStatCodec,
  BackupStat as BackupStatCodec,
  DeletionRow,
  emptyBackupStat,
  ItemHead,
  newAccountStat,
  STORE_FORMAT_VERSION,
  StoreLayout,
} from './records';

/*
 * The metadata store over any `AbstractLevel` with string keys and values.
 *
 * Key layout, version STORE_FORMAT_VERSION (utf8 strings; `!` separates parts and occurs in no
 * account or item id, and it sorts below every character they may hold, so one item's keys
 * are contiguous):
 *   v                                    {format, layout}: the layout this database holds
 *   t!<account>!<itemId>!<tx, 16 digits> one transaction, without `end`: {"tx","start","op",
 *                                        ...metadata, digest?, size?}. A row is written once and
 *                                        never rewritten: its `end` is the next row's `start`
 *                                        (null for the last), filled in by every reader.
 *   c!<account>!<itemId>                 the item's head {"tx","start","op"}: which row is its
 *                                        last. `commit` reads it (then that row) to append.
 *   d!<at, 16 digits>!<account>!<itemId> {format, tx}: items whose current state is `delete`,
 *                                        by deletion instant. A re-created item leaves the index.
 *   a!<account>                          AccountStat. `items`/`deletedItems`/`lastTx` are kept
 *                                        by the store in the same batch as the changes.
 *   b                                    BackupStat
 * An append is two puts (the row and the head), both in the one `batch` of its commit, so a
 * crash leaves all of a commit or none. Writes are serialized within the process (read heads,
 * compute, write); LevelDB's own lock keeps other processes out.
 */

export type LevelDb = AbstractLevel<string | Buffer | Uint8Array, string, string>;

const SEP = '!';
const END = '\xff';
/** Rows per `nextv` call: big enough to amortize the native round trip, small enough to bound memory. */
const READ_CHUNK = 2000;
/** Items whose rows go in one batch when an account is removed. */
const REMOVE_CHUNK = 1000;

const pad16 = (n: number): string => String(n).padStart(16, '0');
const txKey = (account: string, itemId: string, tx: number): string => `t!${account}!${itemId}!${pad16(tx)}`;
const rowsPrefix = (account: string, itemId: string): string => `t!${account}!${itemId}!`;
const headKey = (account: string, itemId: string): string => `c!${account}!${itemId}`;
const delKey = (at: number, account: string, itemId: string): string => `d!${pad16(at)}!${account}!${itemId}`;
const statKey = (account: string): string => `a!${account}`;
const BACKUP_STAT_KEY = 'b';
const LAYOUT_KEY = 'v';

/*
 * Rows this store writes begin with `{"tx":N,"start":S,` (encodeRow), so a reader that only
 * needs an interval reads it from there without parsing the row. A row in any other shape
 * (not written by this code) is parsed and decoded instead, with the same result.
 */
const ROW_START = /^\{"tx":\d{1,16},"start":(\d{1,16}),/;

/** A row's text from its parts: `metaJson` is the JSON of metadata without control fields (H.cleanMeta). */
const encodeRowOf = (tx: number, start: number, op: string, metaJson: string, digest: string | undefined, size: number | undefined): string =>
  '{"tx":' + tx + ',"start":' + start + ',"op":"' + op + '"' + (metaJson.length > 2 ? ',' + metaJson.slice(1, -1) : '') +
  (digest === undefined ? '' : ',"digest":' + JSON.stringify(digest)) + (size === undefined ? '' : ',"size":' + JSON.stringify(size)) + '}';
const encodeRow = (e: Transaction): string => encodeRowOf(e.tx, e.start, e.op, JSON.stringify(H.metaOf(e)), e.digest, e.size);
const encodeHead = (e: { tx: number; start: number; op: string }): string => '{"tx":' + e.tx + ',"start":' + e.start + ',"op":"' + e.op + '"}';

type ItemStatus = 'absent' | 'live' | 'deleted';
const statusOf = (last: { op: Transaction['op'] } | undefined): ItemStatus => (last === undefined ? 'absent' : last.op === 'delete' ? 'deleted' : 'live');

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
/** Call a visitor; a promise only when it returned one (100,000 items need not cost 100,000 awaits). */
const callVisitor = (visit: () => void | Promise<void>): void | Promise<void> => {
  let r: void | Promise<void>;
  try {
    r = visit();
  } catch (e) {
    throw new VisitorFailed(e);
  }
  if (r === undefined) return undefined;
  return r.then(undefined, (e: unknown) => {
    throw new VisitorFailed(e);
  });
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

/** JSON.parse as an Either; the error is worded by `parseJson`. (No fp-ts combinators: this runs per row.) */
const parseRaw = (raw: string, op: string, key: string): E.Either<StoreError, unknown> => {
  try {
    return E.right(JSON.parse(raw) as unknown);
  } catch {
    return parseJson(raw, op, key);
  }
};

/** Decode an item head; hand-checked first (it is read on every commit), the codec words any error. */
const decodeHead = (raw: string, op: string, key: string): E.Either<StoreError, ItemHead> => {
  const parsed = parseRaw(raw, op, key);
  if (E.isLeft(parsed)) return parsed;
  const u = parsed.right;
  const h = u as Partial<Record<string, unknown>>;
  if (
    typeof u === 'object' && u !== null &&
    typeof h['tx'] === 'number' && Number.isSafeInteger(h['tx']) && h['tx'] > 0 &&
    typeof h['start'] === 'number' &&
    (h['op'] === 'create' || h['op'] === 'update' || h['op'] === 'delete')
  ) {
    return parsed as E.Right<ItemHead>;
  }
  return decodeWith(ItemHead, op, key)(u);
};

/** Decode a stored row; its `tx` must be the one its key names. */
const decodeRow = (raw: string, op: string, key: string): E.Either<StoreError, StoredTransaction> => {
  const parsed = parseRaw(raw, op, key);
  if (E.isLeft(parsed)) return parsed;
  const row = decodeStoredTransaction(op, key)(parsed.right);
  if (E.isLeft(row) || Number(key.slice(key.length - 16)) === row.right.tx) return row;
  return E.left(storeError.decode(op, `row ${key} holds transaction ${row.right.tx}, not the one its key names`, key));
};

/** The row as a transaction valid until `end`. Rows are fresh from JSON.parse: completing them in place is safe. */
const withEnd = (row: StoredTransaction, end: number | null): Transaction => {
  (row as { end?: number | null }).end = end;
  return row as Transaction;
};

/** Decode an item's rows (in key order) into its validated history, deriving each `end`. */
const assembleHistory = (rows: ReadonlyArray<readonly [string, string]>, op: string, where: string): E.Either<StoreError, History> => {
  const decoded: StoredTransaction[] = [];
  for (const [k, v] of rows) {
    const r = decodeRow(v, op, k);
    if (E.isLeft(r)) return r;
    decoded.push(r.right);
  }
  const history = decoded.map((row, i) => withEnd(row, decoded[i + 1]?.start ?? null));
  return H.validateHistory(history, op, where);
};

export interface MetadataStoreOptions {
  /**
   * How many item heads (last transactions) `commit` keeps decoded in memory, so that items
   * changed again soon (the Real Time Scanner's usual case) are not read back from LevelDB.
   * About 1.5 KiB each. 0 disables the cache.
   */
  readonly headCacheSize?: number;
}

/**
 * The store over `db`. It must be the only writer of `db` (its head cache and write queue
 * assume so); LevelDB's lock gives that across processes, one store per handle within one.
 */
export const makeMetadataStore = (db: LevelDb, options: MetadataStoreOptions = {}): MetadataStore => {
  const cacheSize = options.headCacheSize ?? 10_000;
  // Least recently used first (Map keeps insertion order). Holds only heads known to be in
  // the database: filled after a batch is written, dropped before an item is replaced.
  const headCache = new Map<string, H.LastState>();
  // Evicts the least recently *inserted* head: cheaper than a true LRU, as good for
  // items changed in bursts.
  const remember = (key: string, last: H.LastState): void => {
    if (cacheSize <= 0) return;
    headCache.set(key, last);
    if (headCache.size > cacheSize) headCache.delete(headCache.keys().next().value as string);
  };

  let ready: Promise<void> | undefined;
  const ensureLayout = (): Promise<void> =>
    (ready ??= (async () => {
      const raw = await db.get(LAYOUT_KEY);
      if (raw === undefined) {
        await db.put(LAYOUT_KEY, JSON.stringify({ format: STORE_FORMAT_VERSION, layout: 'zxbackup-metadata' }));
        return;
      }
      orAbort(E.flatMap(parseJson(raw, 'open', LAYOUT_KEY), decodeVersioned(StoreLayout, 'open', LAYOUT_KEY, [STORE_FORMAT_VERSION])));
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

  /** One atomic batch. A chained batch: measured cheaper per operation than an array on classic-level. */
  const writeRows = (rows: ReadonlyArray<Row>): Promise<void> => {
    const b = db.batch();
    for (const r of rows) {
      if (r.type === 'put') b.put(r.key, r.value);
      else b.del(r.key);
    }
    return b.write();
  };

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

  /** Visit the keys of a range in chunks. */
  const scanKeyChunks = async (range: { gte: string; lt: string }, visit: (keys: string[]) => Promise<void> | void): Promise<void> => {
    const it = db.keys(range);
    try {
      for (;;) {
        const keys = await it.nextv(READ_CHUNK);
        if (keys.length === 0) return;
        const r = visit(keys);
        if (r !== undefined) await r;
      }
    } finally {
      await it.close();
    }
  };

  const scanKeys = async (range: { gte: string; lt: string }): Promise<string[]> => {
    const out: string[] = [];
    await scanKeyChunks(range, (keys) => void out.push(...keys));
    return out;
  };

  const readHistory = async (op: string, account: AccountId, itemId: ItemId): Promise<History> => {
    const prefix = rowsPrefix(account, itemId);
    const rows: Array<[string, string]> = [];
    await scan({ gte: prefix, lt: prefix + END }, (k, v) => void rows.push([k, v]));
    return rows.length === 0 ? [] : orAbort(assembleHistory(rows, op, `${account}/${itemId}`));
  };

  /**
   * The last entries of items (undefined for an unknown item), from the head cache or from
   * their heads and last rows. A head whose row is missing or disagrees is a DecodeError.
   */
  const readLast = async (op: string, items: ReadonlyArray<{ account: string; itemId: string }>, keys: ReadonlyArray<string>): Promise<Map<string, H.LastState | undefined>> => {
    const out = new Map<string, H.LastState | undefined>();
    const missing: Array<{ key: string; account: string; itemId: string }> = [];
    for (let i = 0; i < items.length; i++) {
      const { account, itemId } = items[i] as { account: string; itemId: string };
      const key = keys[i] as string;
      if (out.has(key)) continue;
      const cached = headCache.get(key);
      if (cached === undefined) {
        out.set(key, undefined);
        missing.push({ key, account, itemId });
      } else out.set(key, cached);
    }
    if (missing.length === 0) return out;
    const rawHeads = await db.getMany(missing.map((m) => m.key));
    const present: Array<{ key: string; rowKey: string; head: ItemHead }> = [];
    missing.forEach((m, i) => {
      const raw = rawHeads[i];
      if (raw === undefined) return;
      const head = orAbort(decodeHead(raw, op, m.key));
      present.push({ key: m.key, rowKey: txKey(m.account, m.itemId, head.tx), head });
    });
    if (present.length === 0) return out;
    const rawRows = await db.getMany(present.map((p) => p.rowKey));
    present.forEach((p, i) => {
      const raw = rawRows[i];
      if (raw === undefined) throw new Abort(storeError.decode(op, `the head ${p.key} names transaction ${p.head.tx}, whose row ${p.rowKey} is missing`, p.rowKey));
      const row = orAbort(decodeRow(raw, op, p.rowKey));
      if (row.start !== p.head.start || row.op !== p.head.op) {
        throw new Abort(storeError.decode(op, `the head ${p.key} (start ${p.head.start}, ${p.head.op}) disagrees with its row ${p.rowKey} (start ${row.start}, ${row.op})`, p.key));
      }
      out.set(p.key, H.lastStateOf(withEnd(row, null)));
    });
    return out;
  };

  /** Counters of an account stat after an item moved from one status to another. */
  const adjust = (stat: AccountStat, from: ItemStatus, to: ItemStatus, tx?: number): AccountStat => {
    if (from === to && (tx === undefined || (stat.lastTx !== undefined && stat.lastTx >= tx))) return stat;
    const count = (s: ItemStatus, which: ItemStatus): number => (s === which ? 1 : 0);
    return {
      ...stat,
      items: stat.items - count(from, 'live') + count(to, 'live'),
      deletedItems: stat.deletedItems - count(from, 'deleted') + count(to, 'deleted'),
      ...(tx === undefined || (stat.lastTx !== undefined && stat.lastTx >= tx) ? {} : { lastTx: tx }),
    };
  };

  /** Rows that replace an item's head and deletion-index entry when its last entry goes from `before` to `after`. */
  const indexRows = (
    account: string,
    itemId: string,
    before: { tx: number; start: number; op: string } | undefined,
    after: { tx: number; start: number; op: string } | undefined,
  ): Row[] => {
    const rows: Row[] = [];
    if (before?.op === 'delete') rows.push({ type: 'del', key: delKey(before.start, account, itemId) });
    if (after === undefined) rows.push({ type: 'del', key: headKey(account, itemId) });
    else {
      rows.push({ type: 'put', key: headKey(account, itemId), value: encodeHead(after) });
      if (after.op === 'delete') rows.push({ type: 'put', key: delKey(after.start, account, itemId), value: JSON.stringify({ format: FORMAT_VERSION, tx: after.tx }) });
    }
    return rows;
  };

  /**
   * Remove items of one account in one batch, decoding only their heads: their rows (the keys
   * given), heads, deletion-index entries and counters.
   */
  const dropItems = async (op: string, account: AccountId, items: ReadonlyArray<{ itemId: string; rowKeys: ReadonlyArray<string> }>): Promise<void> => {
    if (items.length === 0) return;
    const keys = items.map((i) => headKey(account, i.itemId));
    keys.forEach((k) => headCache.delete(k));
    const [rawHeads, [rawStat]] = await Promise.all([db.getMany(keys), db.getMany([statKey(account)])]);
    let stat = readStat(rawStat, op, account);
    const rows: Row[] = [];
    items.forEach((item, i) => {
      for (const key of item.rowKeys) rows.push({ type: 'del', key });
      const raw = rawHeads[i];
      if (raw === undefined) return;
      const head = orAbort(decodeHead(raw, op, keys[i] as string));
      rows.push(...indexRows(account, item.itemId, head, undefined));
      if (stat !== undefined) stat = adjust(stat, statusOf(head), 'absent');
    });
    if (stat !== undefined) rows.push({ type: 'put', key: statKey(account), value: JSON.stringify(stat) });
    await writeRows(rows);
  };

  /** Replace one item's history in one batch, keeping head, index and counters in step. */
  const replaceItem = async (op: string, account: AccountId, itemId: ItemId, history: History): Promise<void> => {
    const hk = headKey(account, itemId);
    headCache.delete(hk);
    const prefix = rowsPrefix(account, itemId);
    const [oldKeys, [rawHead, rawStat]] = await Promise.all([scanKeys({ gte: prefix, lt: prefix + END }), db.getMany([hk, statKey(account)])]);
    const before = rawHead === undefined ? undefined : orAbort(decodeHead(rawHead, op, hk));
    const after = history[history.length - 1];
    const rows = new Map<string, Row>();
    const set = (r: Row) => rows.set(r.key, r);
    for (const key of oldKeys) set({ type: 'del', key });
    for (const e of history) set({ type: 'put', key: txKey(account, itemId, e.tx), value: encodeRow(e) });
    indexRows(account, itemId, before, after).forEach(set);
    const stat = readStat(rawStat, op, account) ?? newAccountStat(account);
    set({ type: 'put', key: statKey(account), value: JSON.stringify(adjust(stat, statusOf(before), statusOf(after), after?.tx)) });
    await writeRows([...rows.values()]);
  };

  const commit = (batch: CommitBatch): TE.TaskEither<StoreError, CommitSummary> =>
    run(
      'commit',
      serial(async () => {
        await ensureLayout();
        const accounts = [...new Set([...batch.changes.map((c) => c.account), ...(batch.accountStats ?? []).map((s) => s.account)])];
        const hks = batch.changes.map((c) => headKey(c.account, c.itemId));
        const [lasts, rawStats] = await Promise.all([readLast('commit', batch.changes, hks), db.getMany(accounts.map(statKey))]);
        const stats = new Map<string, AccountStat>();
        const touched = new Set<string>();
        accounts.forEach((a, i) => stats.set(a, readStat(rawStats[i], 'commit', a) ?? newAccountStat(a)));

        // Rows in order; a batch applies them in order, so of several changes of one item
        // the last head and deletion-index entry win. Heads are written once, at the end.
        const rows: Row[] = [];
        const changed = new Set<string>();
        const counters = new Map<string, { live: number; deleted: number; lastTx: number }>();
        let recorded = 0;
        let unchanged = 0;
        for (let ci = 0; ci < batch.changes.length; ci++) {
          const change = batch.changes[ci] as (typeof batch.changes)[number];
          const hk = hks[ci] as string;
          const last = lasts.get(hk);
          const where = `${change.account}/${change.itemId}`;
          let next: H.LastState;
          if (change.kind === 'upsert') {
            const meta = H.cleanMeta(change.meta);
            const metaJson = JSON.stringify(meta);
            const op = orAbort(H.appendOp(last, { tx: change.tx, at: change.at, meta, digest: change.digest, size: change.size }, metaJson, where));
            if (O.isNone(op)) {
              unchanged++;
              continue;
            }
            next = { tx: change.tx, start: change.at, op: op.value, metaJson, digest: change.digest, size: change.size };
          } else {
            const op = orAbort(H.deleteOp(last, { tx: change.tx, at: change.at }, where));
            if (O.isNone(op) || last === undefined) {
              unchanged++;
              continue;
            }
            next = { ...last, tx: change.tx, start: change.at, op: 'delete' };
          }
          recorded++;
          // The previous row is not touched: its `end` is this row's `start`, derived on read.
          rows.push({ type: 'put', key: txKey(change.account, change.itemId, next.tx), value: encodeRowOf(next.tx, next.start, next.op, next.metaJson, next.digest, next.size) });
          if (last?.op === 'delete') rows.push({ type: 'del', key: delKey(last.start, change.account, change.itemId) });
          if (next.op === 'delete') rows.push({ type: 'put', key: delKey(next.start, change.account, change.itemId), value: JSON.stringify({ format: FORMAT_VERSION, tx: next.tx }) });
          changed.add(hk);
          lasts.set(hk, next);
          const c = counters.get(change.account) ?? { live: 0, deleted: 0, lastTx: 0 };
          const from = statusOf(last);
          const to = statusOf(next);
          c.live += (to === 'live' ? 1 : 0) - (from === 'live' ? 1 : 0);
          c.deleted += (to === 'deleted' ? 1 : 0) - (from === 'deleted' ? 1 : 0);
          c.lastTx = Math.max(c.lastTx, next.tx);
          counters.set(change.account, c);
        }
        for (const hk of changed) rows.push({ type: 'put', key: hk, value: encodeHead(lasts.get(hk) as H.LastState) });
        for (const [a, c] of counters) {
          const stat = stats.get(a) as AccountStat;
          stats.set(a, {
            ...stat,
            items: stat.items + c.live,
            deletedItems: stat.deletedItems + c.deleted,
            ...(stat.lastTx !== undefined && stat.lastTx >= c.lastTx ? {} : { lastTx: c.lastTx }),
          });
          touched.add(a);
        }
        // The caller's stats carry scan state (cursor, times); the counters stay the store's.
        for (const given of batch.accountStats ?? []) {
          const kept = stats.get(given.account) as AccountStat;
          const lastTx = Math.max(kept.lastTx ?? 0, given.lastTx ?? 0);
          stats.set(given.account, { ...given, format: FORMAT_VERSION, items: kept.items, deletedItems: kept.deletedItems, ...(lastTx > 0 ? { lastTx } : {}) });
          touched.add(given.account);
        }
        for (const a of touched) rows.push({ type: 'put', key: statKey(a), value: JSON.stringify(stats.get(a)) });
        if (batch.backupStat !== undefined) rows.push({ type: 'put', key: BACKUP_STAT_KEY, value: JSON.stringify(batch.backupStat) });
        if (rows.length > 0) await writeRows(rows);
        for (const [k, last] of lasts) if (last !== undefined) remember(k, last);
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
        const prefix = rowsPrefix(account, itemId);
        await dropItems('removeItem', account, [{ itemId, rowKeys: await scanKeys({ gte: prefix, lt: prefix + END }) }]);
      }),
      `${account}/${itemId}`,
    );

  const removeAccount = (account: AccountId): TE.TaskEither<StoreError, number> =>
    run(
      'removeAccount',
      serial(async () => {
        await ensureLayout();
        let removed = 0;
        // Items with rows, a chunk of whole items per batch (an item is never split).
        let chunk: Array<{ itemId: string; rowKeys: string[] }> = [];
        let rowsInChunk = 0;
        const flush = async (keepLast: boolean): Promise<void> => {
          const open = keepLast ? chunk.pop() : undefined;
          await dropItems('removeAccount', account, chunk);
          removed += chunk.length;
          chunk = open === undefined ? [] : [open];
          rowsInChunk = open?.rowKeys.length ?? 0;
        };
        const rowPrefix = `t!${account}!`;
        await scanKeyChunks({ gte: rowPrefix, lt: rowPrefix + END }, async (keys) => {
          for (const k of keys) {
            const { itemId } = splitItemKey(k, true);
            const last = chunk[chunk.length - 1];
            if (last?.itemId === itemId) last.rowKeys.push(k);
            else chunk.push({ itemId, rowKeys: [k] });
            rowsInChunk++;
          }
          // The last item of the chunk may go on in the next keys: it waits.
          if (chunk.length > REMOVE_CHUNK || rowsInChunk > REMOVE_CHUNK * 10) await flush(true);
        });
        await flush(false);
        // Heads without rows (damage): they go too, with their index entries.
        const headPrefix = `c!${account}!`;
        await scanKeyChunks({ gte: headPrefix, lt: headPrefix + END }, async (keys) => {
          const items = keys.map((k) => ({ itemId: k.slice(headPrefix.length), rowKeys: [] }));
          await dropItems('removeAccount', account, items);
          removed += items.length;
        });
        await db.del(statKey(account));
        return removed;
      }),
      account,
    );

  const rebuildDeletionIndex = (account?: AccountId): TE.TaskEither<StoreError, DeletionIndexRepair> =>
    run(
      'rebuildDeletionIndex',
      serial(async () => {
        await ensureLayout();
        const op = 'rebuildDeletionIndex';
        let removed = 0;
        let added = 0;
        // 1. Entries the heads do not justify go.
        await scanChunks({ gte: 'd!', lt: `d!${END}` }, async (entries) => {
          const checked: Array<{ key: string; head: string; at: number; tx: number | undefined }> = [];
          const drop: Row[] = [];
          for (const [k, v] of entries) {
            const parts = k.split(SEP);
            const [, at, a, itemId] = parts;
            const wellFormed = parts.length === 4 && at !== undefined && /^\d{16}$/.test(at) && a !== undefined && itemId !== undefined && AccountId.is(a) && ItemId.is(itemId);
            if (account !== undefined && (!wellFormed || a !== account)) continue;
            if (!wellFormed) {
              drop.push({ type: 'del', key: k });
              continue;
            }
            const row = E.flatMap(parseJson(v, op, k), decodeVersioned(DeletionRow, op, k));
            checked.push({ key: k, head: headKey(a, itemId), at: Number(at), tx: E.isRight(row) ? row.right.tx : undefined });
          }
          const heads = checked.length === 0 ? [] : await db.getMany(checked.map((c) => c.head));
          checked.forEach((c, i) => {
            const raw = heads[i];
            const head = raw === undefined ? undefined : orAbort(decodeHead(raw, op, c.head));
            if (head === undefined || head.op !== 'delete' || head.start !== c.at || head.tx !== c.tx) drop.push({ type: 'del', key: c.key });
          });
          if (drop.length > 0) await writeRows(drop);
          removed += drop.length;
        });
        // 2. Deleted items without their entry get one.
        const headPrefix = account === undefined ? 'c!' : `c!${account}!`;
        await scanChunks({ gte: headPrefix, lt: headPrefix + END }, async (entries) => {
          const deleted: Array<{ key: string; tx: number }> = [];
          for (const [k, v] of entries) {
            const head = orAbort(decodeHead(v, op, k));
            if (head.op !== 'delete') continue;
            const { account: a, itemId } = splitItemKey(k, false);
            deleted.push({ key: delKey(head.start, a, itemId), tx: head.tx });
          }
          if (deleted.length === 0) return;
          const present = await db.getMany(deleted.map((d) => d.key));
          const put: Row[] = [];
          deleted.forEach((d, i) => {
            if (present[i] === undefined) put.push({ type: 'put', key: d.key, value: JSON.stringify({ format: FORMAT_VERSION, tx: d.tx }) });
          });
          if (put.length > 0) await writeRows(put);
          added += put.length;
        });
        return { removed, added };
      }),
      account,
    );

  /**
   * Visit raw rows of a range a chunk at a time. The next chunk is read (by LevelDB, on
   * another thread) while this one is visited: two chunks in memory at most.
   */
  const scanChunks = async (range: { gte: string; lt: string }, visit: (rows: ReadonlyArray<[string, string]>) => Promise<void>): Promise<void> => {
    const it = db.iterator(range);
    let pending = it.nextv(READ_CHUNK);
    try {
      for (;;) {
        const rows = await pending;
        if (rows.length === 0) return;
        pending = it.nextv(READ_CHUNK);
        await visit(rows);
      }
    } finally {
      // A visitor that failed leaves a read in flight: let it end before closing.
      await pending.catch(() => undefined);
      await it.close();
    }
  };

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

  const itemIdOf = (raw: string, op: string, key: string): ItemId => {
    if (!ItemId.is(raw)) throw new Abort(storeError.decode(op, `key ${key} names no valid item id`, key));
    return raw;
  };

  /** Current states: the heads of the account, then the last rows of its live items, a chunk at a time. */
  const forEachCurrent = async (account: AccountId, visit: (itemId: ItemId, state: Transaction) => void | Promise<void>): Promise<number> => {
    const op = 'forEachItemAt';
    const prefix = `c!${account}!`;
    let count = 0;
    await scanChunks({ gte: prefix, lt: prefix + END }, async (entries) => {
      const live: Array<{ key: string; itemId: ItemId; rowKey: string; head: ItemHead }> = [];
      for (const [k, v] of entries) {
        const head = orAbort(decodeHead(v, op, k));
        if (head.op === 'delete') continue;
        const itemId = itemIdOf(k.slice(prefix.length), op, k);
        live.push({ key: k, itemId, rowKey: txKey(account, itemId, head.tx), head });
      }
      if (live.length === 0) return;
      const rows = await db.getMany(live.map((l) => l.rowKey));
      for (let i = 0; i < live.length; i++) {
        const l = live[i] as (typeof live)[number];
        const raw = rows[i];
        if (raw === undefined) throw new Abort(storeError.decode(op, `the head ${l.key} names transaction ${l.head.tx}, whose row ${l.rowKey} is missing`, l.rowKey));
        const row = orAbort(decodeRow(raw, op, l.rowKey));
        if (row.start !== l.head.start || row.op !== l.head.op) {
          throw new Abort(storeError.decode(op, `the head ${l.key} (start ${l.head.start}, ${l.head.op}) disagrees with its row ${l.rowKey}`, l.key));
        }
        count++;
        const r = callVisitor(() => visit(l.itemId, withEnd(row, null)));
        if (r !== undefined) await r;
      }
    });
    return count;
  };

  /*
   * States at a past instant T in one pass over the account's rows. An item's rows come in tx
   * order with non-decreasing starts, and each is valid until the next one's start, so the
   * state at T is its last row with start <= T. Only that row is decoded; the others are
   * judged on the start read from their first bytes (ROW_START). One row is held at a time.
   */
  const forEachAt = async (account: AccountId, at: number, visit: (itemId: ItemId, state: Transaction) => void | Promise<void>): Promise<number> => {
    const op = 'forEachItemAt';
    const prefix = `t!${account}!`;
    let count = 0;
    let item = ''; // `t!<account>!<itemId>` of the rows being read
    let prevStart = -1;
    let candKey: string | undefined;
    let candRaw = '';
    let candStart = 0;
    let candEnd: number | null = null;
    const finish = (): void | Promise<void> => {
      if (candKey === undefined) return undefined;
      const key = candKey;
      candKey = undefined;
      const row = orAbort(decodeRow(candRaw, op, key));
      if (row.start !== candStart) throw new Abort(storeError.decode(op, `row ${key} holds start ${row.start}, its text begins with ${candStart}`, key));
      if (row.op === 'delete') return undefined;
      const itemId = itemIdOf(item.slice(prefix.length), op, key);
      count++;
      return callVisitor(() => visit(itemId, withEnd(row, candEnd)));
    };
    await scanChunks({ gte: prefix, lt: prefix + END }, async (rows) => {
      for (const [k, v] of rows) {
        const cut = k.lastIndexOf(SEP);
        if (item.length !== cut || !k.startsWith(item)) {
          const r = finish();
          if (r !== undefined) await r;
          item = k.slice(0, cut);
          prevStart = -1;
        }
        const m = ROW_START.exec(v);
        const start = m === null ? orAbort(decodeRow(v, op, k)).start : Number(m[1]);
        if (start < prevStart) {
          throw new Abort(storeError.decode(op, `invalid history of ${item.slice(2).replace(SEP, '/')}: row ${k} starts at ${start}, before the previous row (${prevStart})`, k));
        }
        prevStart = start;
        if (start <= at) {
          candKey = k;
          candRaw = v;
          candStart = start;
          candEnd = null;
        } else if (candKey !== undefined && candEnd === null) candEnd = start;
      }
    });
    const r = finish();
    if (r !== undefined) await r;
    return count;
  };

  const forEachItemAt = (
    account: AccountId,
    at: number | 'now',
    visit: (itemId: ItemId, state: Transaction) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number> =>
    run('forEachItemAt', async () => {
      await ensureLayout();
      return at === 'now' ? forEachCurrent(account, visit) : forEachAt(account, at, visit);
    }, account);

  /**
   * Every history of a range, one item at a time (its raw rows only are held). The ids come
   * from the keys and must decode; the history is handed over as an Either.
   */
  const traverse = async (
    op: string,
    account: AccountId | undefined,
    strict: boolean,
    visit: (account: AccountId, itemId: ItemId, history: E.Either<StoreError, History>) => void | Promise<void>,
  ): Promise<number> => {
    const prefix = account === undefined ? 't!' : `t!${account}!`;
    let count = 0;
    let item = '';
    let rows: Array<readonly [string, string]> = [];
    const flush = (): void | Promise<void> => {
      if (rows.length === 0) return undefined;
      const group = rows;
      rows = [];
      const firstKey = (group[0] as readonly [string, string])[0];
      const { account: a, itemId } = splitItemKey(firstKey, true);
      const acc = orAbort(decodeWith(AccountId, op, firstKey)(a));
      const id = orAbort(decodeWith(ItemId, op, firstKey)(itemId));
      count++;
      const history = assembleHistory(group, op, `${a}/${itemId}`);
      if (strict) orAbort(history);
      return callVisitor(() => visit(acc, id, history));
    };
    await scanChunks({ gte: prefix, lt: prefix + END }, async (chunk) => {
      for (const row of chunk) {
        const k = row[0];
        const cut = k.lastIndexOf(SEP);
        if (item.length !== cut || !k.startsWith(item)) {
          const r = flush();
          if (r !== undefined) await r;
          item = k.slice(0, cut);
        }
        rows.push(row);
      }
    });
    const r = flush();
    if (r !== undefined) await r;
    return count;
  };

  const forEachHistory = (
    account: AccountId | undefined,
    visit: (account: AccountId, itemId: ItemId, history: History) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number> =>
    run('forEachHistory', async () => {
      await ensureLayout();
      return traverse('forEachHistory', account, true, (a, i, h) => visit(a, i, (h as E.Right<History>).right));
    }, account);

  const forEachHistoryEither = (
    account: AccountId | undefined,
    visit: (account: AccountId, itemId: ItemId, history: E.Either<StoreError, History>) => void | Promise<void>,
  ): TE.TaskEither<StoreError, number> =>
    run('forEachHistoryEither', async () => {
      await ensureLayout();
      return traverse('forEachHistoryEither', account, false, visit);
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
    removeAccount,
    rebuildDeletionIndex,
    stateAt,
    stateAtTx,
    forEachItemAt,
    forEachHistory,
    forEachHistoryEither,
    deletedBetween,
    listAccounts,
    getAccountStat,
    putAccountStat,
    getBackupStat,
    close,
  };
};

/** LevelDB settings of the on-disk store (see openMetadataStore). */
export interface OpenMetadataStoreOptions extends MetadataStoreOptions {
  /** Bytes written to the memtable (and its log) before it is sorted into a table file. Default 32 MiB. */
  readonly writeBufferSize?: number;
  /** LevelDB's block cache in bytes. Default 32 MiB. */
  readonly cacheSize?: number;
}

/**
 * Open (creating if needed) the on-disk store in `dir` with classic-level. A store already
 * open in another process is `BackupPathLocked`: LevelDB admits one process at a time.
 */
export const openMetadataStore = (dir: string, options: OpenMetadataStoreOptions = {}): TE.TaskEither<StoreError, MetadataStore> => async () => {
  // A bigger write buffer means fewer, larger level-0 files and less compaction per append.
  const db = new ClassicLevel<string, string>(dir, {
    keyEncoding: 'utf8',
    valueEncoding: 'utf8',
    writeBufferSize: options.writeBufferSize ?? 32 * 1024 * 1024,
    cacheSize: options.cacheSize ?? 32 * 1024 * 1024,
  });
  try {
    await db.open();
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    if (cause?.code === 'LEVEL_LOCKED') {
      return E.left(storeError.locked('openMetadataStore', `the metadata store ${dir} is open in another process (${describeCause(cause)}); stop it or wait for it to finish`, dir));
    }
    return E.left(storeError.io('openMetadataStore', e, dir, 'opening the metadata store'));
  }
  const store = makeMetadataStore(db, options);
  // Fail now, not at the first write, when the directory holds another layout.
  const probe = await store.getBackupStat()();
  if (E.isLeft(probe)) {
    await db.close().catch(() => undefined);
    return E.left(probe.left);
  }
  return E.right(store);
};
