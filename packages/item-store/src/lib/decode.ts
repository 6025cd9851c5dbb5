import * as E from 'fp-ts/Either';
import * as t from 'io-ts';
import {
  AccountMeta,
  AppointmentMeta,
  ContactGroupMeta,
  ContactMeta,
  CosMeta,
  DistributionListMeta,
  DomainMeta,
  DriveDocumentMeta,
  FolderMeta,
  FORMAT_VERSION,
  Instant,
  ItemId,
  ItemKind,
  MessageMeta,
  Op,
  TaskMeta,
  Transaction,
  TxId,
} from './codecs';
import { storeError, type StoreError } from './errors';

/*
 * Decoding with messages a person can act on: which field, what was expected, what was there.
 */

const MAX_REPORTED = 3;

const show = (u: unknown): string => {
  if (u === undefined) return 'undefined (missing)';
  let s: string;
  try {
    s = typeof u === 'string' ? JSON.stringify(u) : (JSON.stringify(u) ?? String(u));
  } catch {
    s = String(u);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
};

const describeError = (e: t.ValidationError): string => {
  // Members of unions and intersections appear in the context as numeric keys; a reader
  // wants the field names only (array indexes are kept).
  const path = e.context
    .filter((_c, i) => {
      const parent = i === 0 ? undefined : (e.context[i - 1]?.type as { _tag?: string } | undefined);
      return i > 0 && parent?._tag !== 'IntersectionType' && parent?._tag !== 'UnionType';
    })
    .map((c) => c.key)
    .join('.');
  const expected = e.context[e.context.length - 1]?.type.name ?? 'value';
  return `${path === '' ? 'value' : path}: expected ${expected}, got ${show(e.value)}`;
};

/** PathReporter-style summary of io-ts errors (the first few; the rest are counted). */
export const reportErrors = (errors: t.Errors): string => {
  const lines = [...new Set(errors.map(describeError))];
  const head = lines.slice(0, MAX_REPORTED).join('; ');
  return lines.length > MAX_REPORTED ? `${head}; and ${lines.length - MAX_REPORTED} more` : head;
};

/** Decode `u` with `codec`; a failure is a `DecodeError` naming the operation, the key and the fields. */
export const decodeWith =
  <A, O>(codec: t.Type<A, O, unknown>, op: string, key?: string) =>
  (u: unknown): E.Either<StoreError, A> => {
    const r = codec.decode(u);
    return E.isRight(r)
      ? E.right(r.right)
      : E.left(storeError.decode(op, `invalid ${codec.name}${key === undefined ? '' : ` at ${key}`}: ${reportErrors(r.left)}`, key));
  };

/** `JSON.parse` as an `Either`: bad JSON is a `DecodeError`, never a throw. */
export const parseJson = (text: string, op: string, key?: string): E.Either<StoreError, unknown> =>
  E.tryCatch(
    () => JSON.parse(text) as unknown,
    (e) => storeError.decode(op, `not valid JSON${key === undefined ? '' : ` at ${key}`}: ${e instanceof Error ? e.message : String(e)}`, key),
  );

/**
 * Decode a versioned record: its `format` must be one this code knows (else
 * `UnsupportedFormat`, so an old binary never misreads a newer backup), then its shape.
 */
export const decodeVersioned =
  <A, O>(codec: t.Type<A, O, unknown>, op: string, key?: string, known: ReadonlyArray<number> = [FORMAT_VERSION]) =>
  (u: unknown): E.Either<StoreError, A> => {
    if (typeof u === 'object' && u !== null && 'format' in u) {
      const format = (u as { format: unknown }).format;
      if (typeof format === 'number' && !known.includes(format)) {
        return E.left(
          storeError.unsupported(
            op,
            `${codec.name}${key === undefined ? '' : ` at ${key}`} has format ${format}; this version of zxbackup reads format ${known.join(', ')}. Upgrade zxbackup to read it.`,
            key,
          ),
        );
      }
    }
    return decodeWith(codec, op, key)(u);
  };

const TransactionHead = t.type({ tx: TxId, start: Instant, end: t.union([Instant, t.null]), op: Op });
const TransactionTail = t.partial({ digest: t.refinement(t.string, (s) => /^[0-9a-f]{64}$/.test(s), 'Sha256Hex'), size: t.number });

const metaByKind: Record<ItemKind, t.Mixed> = {
  message: MessageMeta,
  folder: FolderMeta,
  contact: ContactMeta,
  contactGroup: ContactGroupMeta,
  appointment: AppointmentMeta,
  task: TaskMeta,
  driveDocument: DriveDocumentMeta,
  account: AccountMeta,
  distributionList: DistributionListMeta,
  domain: DomainMeta,
  cos: CosMeta,
};

// One codec per kind: dispatching on `kind` first is faster than trying the eleven union
// members in turn, and its errors name the fields of the right kind only.
const transactionByKind = Object.fromEntries(
  Object.entries(metaByKind).map(([kind, meta]) => [kind, t.intersection([TransactionHead, meta, TransactionTail], `Transaction(${kind})`)]),
) as unknown as Record<ItemKind, t.Mixed>;

/*
 * The fast path. Decoding a transaction with io-ts costs ~25 µs, and messages are nearly every
 * row a store holds, so a message is first checked by hand, field by field, against exactly
 * what its codec requires (`fastMessage`). Whatever it accepts the codec accepts too (a spec
 * checks this on mutated rows); anything else, of any kind, goes through the codec, which
 * also words the error. Nothing is trusted unchecked.
 */

const SHA256_HEX = /^[0-9a-f]{64}$/;
const OPS: Readonly<Record<string, true>> = { create: true, update: true, delete: true };
const isString = (v: unknown): v is string => typeof v === 'string';
const optString = (v: unknown): boolean => v === undefined || typeof v === 'string';
const optNumber = (v: unknown): boolean => v === undefined || typeof v === 'number';
const isStringArray = (v: unknown): boolean => {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
};

/** `end` as the codec takes it: `'absent'` for stored rows (the store derives it), else Instant | null. */
type EndMode = 'absent' | 'present';

const fastMessage = (u: unknown, end: EndMode): boolean => {
  if (typeof u !== 'object' || u === null || Array.isArray(u)) return false;
  const o = u as Record<string, unknown>;
  const tx = o['tx'];
  const op = o['op'];
  const e = o['end'];
  const folderId = o['folderId'];
  const digest = o['digest'];
  const to = o['to'];
  return (
    o['kind'] === 'message' &&
    typeof tx === 'number' && Number.isSafeInteger(tx) && tx > 0 &&
    typeof o['start'] === 'number' &&
    (end === 'absent' ? e === undefined : e === null || typeof e === 'number') &&
    typeof op === 'string' && OPS[op] === true &&
    ItemId.is(folderId) &&
    isStringArray(o['flags']) &&
    typeof o['receivedAt'] === 'number' &&
    optString(o['sourceKey']) && optString(o['subject']) && optString(o['from']) && optString(o['messageId']) &&
    (to === undefined || isStringArray(to)) &&
    optNumber(o['sentAt']) &&
    (digest === undefined || (isString(digest) && SHA256_HEX.test(digest))) &&
    optNumber(o['size'])
  );
};

const StoredHead = t.type({ tx: TxId, start: Instant, op: Op });

// A stored row is a transaction without `end` (the store derives it from the next row).
const storedByKind = Object.fromEntries(
  Object.entries(metaByKind).map(([kind, meta]) => [kind, t.intersection([StoredHead, meta, TransactionTail], `StoredTransaction(${kind})`)]),
) as unknown as Record<ItemKind, t.Mixed>;

const decodeByKind = (codecs: Record<ItemKind, t.Mixed>, name: string, op: string, key: string | undefined, u: unknown): E.Either<StoreError, unknown> => {
  const kind = typeof u === 'object' && u !== null ? (u as { kind?: unknown }).kind : undefined;
  if (typeof kind !== 'string' || !ItemKind.is(kind)) {
    return E.left(
      storeError.decode(op, `invalid ${name}${key === undefined ? '' : ` at ${key}`}: kind: expected one of ${Object.keys(ItemKind.keys).join('|')}, got ${show(kind)}`, key),
    );
  }
  return decodeWith(codecs[kind] as t.Type<unknown, unknown, unknown>, op, key)(u);
};

/** Decode one transaction (same result as the `Transaction` codec, with sharper errors). */
export const decodeTransaction =
  (op: string, key?: string) =>
  (u: unknown): E.Either<StoreError, Transaction> =>
    fastMessage(u, 'present') ? E.right(u as Transaction) : (decodeByKind(transactionByKind, 'Transaction', op, key, u) as E.Either<StoreError, Transaction>);

/** A transaction as the store keeps it: every field but `end`. */
export type StoredTransaction = Omit<Transaction, 'end'>;

/**
 * Decode a stored row (a transaction without `end`). A row that carries `end` is refused:
 * the store derives it, and a stale copy must never be believed.
 */
export const decodeStoredTransaction =
  (op: string, key?: string) =>
  (u: unknown): E.Either<StoreError, StoredTransaction> => {
    if (fastMessage(u, 'absent')) return E.right(u as StoredTransaction);
    if (typeof u === 'object' && u !== null && 'end' in u) {
      return E.left(storeError.decode(op, `invalid StoredTransaction${key === undefined ? '' : ` at ${key}`}: end: a stored row must not carry it (it is derived from the next row)`, key));
    }
    return decodeByKind(storedByKind, 'StoredTransaction', op, key, u) as E.Either<StoreError, StoredTransaction>;
  };

/** The io-ts codecs alone, without the fast path (for specs that compare both). */
export const slowDecoders = {
  transaction: (u: unknown): boolean => E.isRight(decodeByKind(transactionByKind, 'Transaction', 'spec', undefined, u)),
  stored: (u: unknown): boolean => typeof u === 'object' && u !== null && !('end' in u) && E.isRight(decodeByKind(storedByKind, 'StoredTransaction', 'spec', undefined, u)),
  fastMessage,
};
