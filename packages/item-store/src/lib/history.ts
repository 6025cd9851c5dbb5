import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type { History, ItemMeta, Transaction, TxId } from './codecs';
import { decodeTransaction, parseJson } from './decode';
import { storeError, type StoreError } from './errors';

/*
 * Item histories as pure functions. A history is ordered by `tx` and `start`; each entry is
 * valid on [start, end), the last one has `end: null`. Nothing is ever rewritten except the
 * previous entry's `end`, closed when a new state arrives. The store applies the same steps
 * to an item's last entry only (`stepAppend`/`stepDelete`), so both agree by construction.
 */

export interface NewState {
  readonly tx: TxId;
  /** When the change happened (epoch ms): the new entry's `start`. */
  readonly at: number;
  readonly meta: ItemMeta;
  readonly digest?: string;
  readonly size?: number;
}

export interface Deletion {
  readonly tx: TxId;
  readonly at: number;
}

/** What one change does to a history: the previous last entry closed (if any) and the new entry. */
export interface Step {
  readonly closed: O.Option<Transaction>;
  readonly entry: Transaction;
}

const CONTROL_FIELDS = new Set(['tx', 'start', 'end', 'op', 'digest', 'size']);

/** The metadata part of a transaction (what a `delete` repeats, what identity compares). */
export const metaOf = (entry: Transaction | ItemMeta): ItemMeta => {
  const meta: Record<string, unknown> = {};
  for (const k of Object.keys(entry)) if (!CONTROL_FIELDS.has(k)) meta[k] = (entry as Record<string, unknown>)[k];
  return meta as ItemMeta;
};

/** `meta` without stray control fields (which must never override the entry's own). */
export const cleanMeta = (meta: ItemMeta): ItemMeta =>
  'tx' in meta || 'start' in meta || 'end' in meta || 'op' in meta || 'digest' in meta || 'size' in meta ? metaOf(meta) : meta;

/** Equality of JSON values, where a property set to `undefined` counts as absent (as in JSON). */
export const jsonEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const ka = Object.keys(ra).filter((k) => ra[k] !== undefined);
  const kb = Object.keys(rb).filter((k) => rb[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && jsonEqual(ra[k], rb[k]));
};

const isInstant = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/**
 * What deciding the next step needs of an item's last entry. The store keeps this (not whole
 * transactions) for the items it appends to: its metadata as JSON text, which is what a row is
 * made of anyway, and one string is far cheaper to keep in memory than an object graph.
 */
export interface LastState {
  readonly tx: TxId;
  readonly start: number;
  readonly op: Transaction['op'];
  /** `JSON.stringify` of the metadata without control fields (see `cleanMeta`). */
  readonly metaJson: string;
  // Always present (undefined when absent): one object shape for all, which V8 handles fastest.
  readonly digest: string | undefined;
  readonly size: number | undefined;
}

export const lastStateOf = (e: Transaction): LastState => ({ tx: e.tx, start: e.start, op: e.op, metaJson: JSON.stringify(metaOf(e)), digest: e.digest, size: e.size });

/**
 * Whether metadata equals the last state's. Equal JSON values (`jsonEqual`) always serialize to
 * texts of one length (only the key order may differ), so texts of different lengths settle it
 * without parsing; equal texts too. Only same-length, different texts are compared as values.
 */
const sameMeta = (lastJson: string, json: string, meta: ItemMeta): boolean =>
  lastJson.length === json.length && (lastJson === json || jsonEqual(JSON.parse(lastJson) as unknown, meta));

/** The entry a step records: `meta` must be clean (no control fields). */
export const makeEntry = (head: { tx: TxId; start: number; op: Transaction['op'] }, meta: ItemMeta, digest: string | undefined, size: number | undefined): Transaction =>
  // The first object fixes the key order of the JSON ({tx,start,end,op,...meta}).
  Object.assign({ tx: head.tx, start: head.start, end: null, op: head.op }, meta, digest === undefined ? {} : { digest }, size === undefined ? {} : { size }) as Transaction;

const checkOrder = (last: LastState | undefined, tx: TxId, at: number, op: string, key?: string): E.Either<StoreError, void> => {
  if (!isInstant(at)) return E.left(storeError.decode(op, `instant ${at} is not a non-negative integer of epoch milliseconds`, key));
  if (last === undefined) return E.right(undefined);
  if (tx <= last.tx) {
    return E.left(storeError.conflict(op, `transaction ${tx} is not above the last transaction ${last.tx} of the item${key === undefined ? '' : ` ${key}`}`, key));
  }
  if (at < last.start) {
    return E.left(
      storeError.conflict(op, `transaction ${tx} at ${at} is before the start ${last.start} of the last transaction ${last.tx}${key === undefined ? '' : ` of ${key}`}`, key),
    );
  }
  return E.right(undefined);
};

/**
 * The op of the entry a new state records after `last` (undefined for a new item): `create`
 * for a new or deleted item, `update` otherwise; None when the state equals the current one.
 * `s.meta` must be clean and `metaJson` its JSON text.
 */
export const appendOp = (last: LastState | undefined, s: NewState, metaJson: string, key?: string): E.Either<StoreError, O.Option<Transaction['op']>> => {
  const ordered = checkOrder(last, s.tx, s.at, 'appendState', key);
  if (E.isLeft(ordered)) return ordered;
  if (last === undefined || last.op === 'delete') return E.right(O.some('create'));
  if (last.digest === s.digest && last.size === s.size && sameMeta(last.metaJson, metaJson, s.meta)) return E.right(O.none);
  return E.right(O.some('update'));
};

/** Whether a deletion records an entry after `last`: None for an unknown or deleted item. */
export const deleteOp = (last: LastState | undefined, d: Deletion, key?: string): E.Either<StoreError, O.Option<'delete'>> => {
  const ordered = checkOrder(last, d.tx, d.at, 'markDeleted', key);
  if (E.isLeft(ordered)) return ordered;
  return E.right(last === undefined || last.op === 'delete' ? O.none : O.some('delete'));
};

/** Record a new state after `last` (the item's last entry). None when the state equals the current one. */
export const stepAppend = (last: Transaction | undefined, s: NewState, key?: string): E.Either<StoreError, O.Option<Step>> => {
  const meta = cleanMeta(s.meta);
  return E.map(
    O.map((op: Transaction['op']): Step => ({
      closed: last === undefined ? O.none : O.some({ ...last, end: s.at }),
      entry: makeEntry({ tx: s.tx, start: s.at, op }, meta, s.digest, s.size),
    })),
  )(appendOp(last === undefined ? undefined : lastStateOf(last), { ...s, meta }, JSON.stringify(meta), key));
};

/**
 * Mark the item deleted after `last`. The delete entry repeats the last metadata (and digest),
 * so a deleted item still says what it was and where it lived. None if there is nothing to
 * delete (unknown item, or already deleted).
 */
export const stepDelete = (last: Transaction | undefined, d: Deletion, key?: string): E.Either<StoreError, O.Option<Step>> =>
  E.map(
    O.map((): Step => {
      const l = last as Transaction;
      return { closed: O.some({ ...l, end: d.at }), entry: makeEntry({ tx: d.tx, start: d.at, op: 'delete' }, metaOf(l), l.digest, l.size) };
    }),
  )(deleteOp(last === undefined ? undefined : lastStateOf(last), d, key));

const applyStep = (history: History, step: Step): History => [
  ...history.slice(0, O.isSome(step.closed) ? -1 : history.length),
  ...(O.isSome(step.closed) ? [step.closed.value] : []),
  step.entry,
];

/** Append a state: `create` for a new or deleted item, `update` otherwise; None if identical. */
export const appendState = (history: History, s: NewState): E.Either<StoreError, O.Option<History>> =>
  E.map(O.map((step: Step) => applyStep(history, step)))(stepAppend(history[history.length - 1], s));

/** Append a `delete` entry; None if the item is unknown or already deleted. */
export const markDeleted = (history: History, d: Deletion): E.Either<StoreError, O.Option<History>> =>
  E.map(O.map((step: Step) => applyStep(history, step)))(stepDelete(history[history.length - 1], d));

const covers = (e: Transaction, at: number): boolean => e.start <= at && (e.end === null || at < e.end);

/** The entry valid at instant T, whatever its op. */
export const entryAt = (history: History, at: number): O.Option<Transaction> => {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i] as Transaction;
    if (covers(e, at)) return O.some(e);
    if (e.start <= at) break;
  }
  return O.none;
};

/** The item's state at instant T: none if it did not exist yet or was deleted then. */
export const stateAt = (history: History, at: number): O.Option<Transaction> =>
  O.filter((e: Transaction) => e.op !== 'delete')(entryAt(history, at));

/** The item's state once transaction `tx` (of any item) was recorded: the last entry with `tx` <= it. */
export const stateAtTx = (history: History, tx: number): O.Option<Transaction> => {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i] as Transaction;
    if (e.tx <= tx) return e.op === 'delete' ? O.none : O.some(e);
  }
  return O.none;
};

/** True when the item was in its deleted state at instant T (false if it did not exist yet). */
export const isDeletedAt = (history: History, at: number): boolean =>
  O.isSome(O.filter((e: Transaction) => e.op === 'delete')(entryAt(history, at)));

/** When the item was deleted, if it is deleted now. */
export const deletedAt = (history: History): O.Option<number> => {
  const last = history[history.length - 1];
  return last !== undefined && last.op === 'delete' ? O.some(last.start) : O.none;
};

/**
 * The invariants beyond shape: at least one entry, `tx` strictly increasing, `start`
 * non-decreasing, each `end` equal to the next `start`, only the last `end` is null.
 */
export const validateHistory = (history: History, op = 'validateHistory', key?: string): E.Either<StoreError, History> => {
  const where = key === undefined ? '' : ` of ${key}`;
  const fail = (i: number, why: string) => E.left(storeError.decode(op, `invalid history${where}: entry ${i} (tx ${history[i]?.tx}): ${why}`, key));
  if (history.length === 0) return E.left(storeError.decode(op, `invalid history${where}: it has no transaction`, key));
  for (let i = 0; i < history.length; i++) {
    const e = history[i] as Transaction;
    const next = history[i + 1];
    if (!isInstant(e.start)) return fail(i, `start ${e.start} is not a non-negative integer`);
    if (next === undefined) {
      if (e.end !== null) return fail(i, `the last entry must have end null, has ${e.end}`);
    } else {
      if (next.tx <= e.tx) return fail(i + 1, `tx is not above the previous ${e.tx}`);
      if (next.start < e.start) return fail(i + 1, `start ${next.start} is before the previous start ${e.start}`);
      if (e.end !== next.start) return fail(i, `end ${e.end} is not the next entry's start ${next.start}`);
    }
  }
  return E.right(history);
};

/** Decode an array of unknowns into a validated history (each element decoded on its own). */
export const decodeHistoryValue = (u: unknown, op = 'decodeHistory', key?: string): E.Either<StoreError, History> => {
  if (!Array.isArray(u)) {
    return E.left(storeError.decode(op, `invalid history${key === undefined ? '' : ` at ${key}`}: expected a JSON array of transactions`, key));
  }
  const out: Transaction[] = [];
  for (let i = 0; i < u.length; i++) {
    const r = decodeTransaction(op, key === undefined ? `[${i}]` : `${key}[${i}]`)(u[i]);
    if (E.isLeft(r)) return r;
    out.push(r.right);
  }
  return validateHistory(out, op, key);
};

/** Parse and validate a history from its JSON text. Never throws: bad input is a `DecodeError`. */
export const decodeHistory = (json: string, key?: string): E.Either<StoreError, History> =>
  E.flatMap(parseJson(json, 'decodeHistory', key), (u) => decodeHistoryValue(u, 'decodeHistory', key));

export const encodeHistory = (history: History): string => JSON.stringify(history);
