import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import { SERVER_ACCOUNT, type AccountId, type History, type ItemId, type MetadataStore, type StoreError, type TxId } from '@zxbackup/item-store';
import { VolumeStreamError, type BlobVolume, type Digest } from '@zxbackup/volume-contract';
import { storeFailed, volumeFailed, causeText, type RetentionError } from './errors';
import { itemKey, run, type OnProgress } from './steps';

/*
 * The Coherency Check (the seed's "Coherency Check"): every history, the deletion index, the
 * account of every history, and every blob — present, of the right size, and with `deep` read
 * through and verified against its digest. It reads only; `planCoherencyFix` decides repairs.
 *
 * Histories are read in one streaming pass (`forEachHistoryEither`): a history the store
 * cannot decode, or whose invariants fail, is one `history-unreadable` problem and the pass
 * goes on, so one bad row is one problem, not a failed check. Orphan blobs are still looked
 * for; while a history is unreadable they may be its blobs, so `planCoherencyFix` then leaves
 * them where they are.
 */

export type CoherencyProblemKind =
  /** The store cannot decode or validate a history (garbage in a row, broken invariants). */
  | 'history-unreadable'
  /** Transaction ids not strictly increasing. */
  | 'tx-order'
  /** Validity intervals inconsistent (end ≠ next start, an open entry before the last). */
  | 'interval'
  | 'blob-missing'
  /** The blob's content does not match its digest or its recorded size. */
  | 'blob-corrupt'
  /** The volume failed to read the blob (an I/O error on that blob). */
  | 'blob-unreadable'
  /** On the volume, referenced by no history. */
  | 'blob-orphan'
  /** Histories of an account that has neither an account item nor an account stat. */
  | 'account-missing'
  /** A deletion-index entry for an item that does not exist or is not deleted at that instant. */
  | 'index-dangling'
  /** A deleted item without its deletion-index entry. */
  | 'index-missing'
  /** The deletion index itself cannot be read. */
  | 'index-unreadable'
  /** Part of the backup could not be enumerated (a malformed key); some checks were skipped (see detail). */
  | 'check-incomplete';

export interface CoherencyProblem {
  readonly kind: CoherencyProblemKind;
  readonly account?: AccountId;
  readonly itemId?: ItemId;
  readonly digest?: Digest;
  /** For blob problems: a transaction that references the blob (what a refetch asks the source for). */
  readonly tx?: TxId;
  readonly detail: string;
}

export interface CoherencyReport {
  readonly deep: boolean;
  readonly problems: ReadonlyArray<CoherencyProblem>;
  readonly counts: Readonly<Partial<Record<CoherencyProblemKind, number>>>;
  readonly accounts: number;
  readonly histories: number;
  readonly transactions: number;
  readonly blobsReferenced: number;
  readonly blobsRead: number;
  readonly bytesRead: number;
  readonly blobsListed: number;
  /** false when a part could not be enumerated; orphan detection is then skipped. */
  readonly complete: boolean;
  /** Histories reported `history-unreadable`: the blobs they reference are unknown. */
  readonly unreadableHistories: number;
  /** One line for people. */
  readonly summary: string;
}

export interface CheckCoherencyOptions {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  /** Only these accounts (orphan blobs are then not looked for: other accounts reference blobs too). */
  readonly accounts?: ReadonlyArray<AccountId>;
  /** Read every referenced blob through and verify its digest. */
  readonly deep: boolean;
  /** Blobs checked in parallel (default 4). */
  readonly concurrency?: number;
  readonly onProgress?: OnProgress;
}

interface BlobRef {
  account: AccountId;
  itemId: ItemId;
  tx: TxId;
  size: number | undefined;
  /** The referencing item still exists at the source, so a refetch may work. */
  live: boolean;
}

const MAX_SAFE_INSTANT = Number.MAX_SAFE_INTEGER;

/** Invariants of a history (the store enforces them on read; checked again as a second opinion). */
export const historyProblems = (account: AccountId, itemId: ItemId, history: History): CoherencyProblem[] => {
  const out: CoherencyProblem[] = [];
  for (let i = 0; i < history.length; i++) {
    const e = history[i];
    const next = history[i + 1];
    if (e === undefined) continue;
    if (next === undefined) {
      if (e.end !== null) out.push({ kind: 'interval', account, itemId, tx: e.tx, detail: `the last entry (tx ${e.tx}) is closed at ${e.end}` });
      continue;
    }
    if (next.tx <= e.tx) out.push({ kind: 'tx-order', account, itemId, tx: next.tx, detail: `tx ${next.tx} follows tx ${e.tx}` });
    if (e.end === null) out.push({ kind: 'interval', account, itemId, tx: e.tx, detail: `entry tx ${e.tx} is open but is not the last` });
    else if (e.end !== next.start) out.push({ kind: 'interval', account, itemId, tx: e.tx, detail: `entry tx ${e.tx} ends at ${e.end}, the next starts at ${next.start}` });
  }
  return out;
};

const isDecodeProblem = (e: StoreError): boolean => e._tag === 'DecodeError' || e._tag === 'UnsupportedFormat';

/** Read a blob through; the volume verifies the digest as it streams (the `get` contract). */
const readThrough = async (volume: BlobVolume, digest: Digest): Promise<E.Either<RetentionError, { bytes: number } | CoherencyProblem>> => {
  const opened = await run(volume.get(digest));
  if (E.isLeft(opened)) {
    if (opened.left._tag === 'BlobNotFound') return E.right({ kind: 'blob-missing', digest, detail: 'not on the volume' });
    if (opened.left._tag === 'BlobCorrupt') return E.right({ kind: 'blob-corrupt', digest, detail: causeText(opened.left.cause) });
    return E.left(volumeFailed('get', digest)(opened.left));
  }
  let bytes = 0;
  try {
    for await (const chunk of opened.right) bytes += (chunk as Buffer).length;
  } catch (e) {
    if (e instanceof VolumeStreamError && e.volumeError._tag === 'BlobCorrupt') {
      return E.right({ kind: 'blob-corrupt', digest, detail: `content does not match its digest (${causeText(e.volumeError.cause)})` });
    }
    return E.right({ kind: 'blob-unreadable', digest, detail: causeText(e) });
  }
  return E.right({ bytes });
};

const checkAsync = async (options: CheckCoherencyOptions): Promise<E.Either<RetentionError, CoherencyReport>> => {
  const { store, volume, deep } = options;
  const onProgress = options.onProgress ?? (() => undefined);
  const problems: CoherencyProblem[] = [];
  const only = options.accounts === undefined ? undefined : new Set<string>(options.accounts);

  const statAccountsE = await run(store.listAccounts());
  if (E.isLeft(statAccountsE)) return E.left(storeFailed('listAccounts')(statAccountsE.left));
  const statAccounts = new Set<string>(statAccountsE.right);

  // The deletion index, keyed by item (one entry per deleted item: a few bytes each).
  const index = new Map<string, { account: AccountId; itemId: ItemId; deletedAt: number; tx: TxId; matched: boolean }>();
  let indexReadable = true;
  const indexE = await run(store.deletedBetween(0, MAX_SAFE_INSTANT));
  if (E.isLeft(indexE)) {
    if (!isDecodeProblem(indexE.left)) return E.left(storeFailed('deletedBetween')(indexE.left));
    indexReadable = false;
    problems.push({ kind: 'index-unreadable', detail: indexE.left.message });
  } else {
    for (const ref of indexE.right) {
      if (only !== undefined && !only.has(ref.account)) continue;
      const key = itemKey(ref.account, ref.itemId);
      if (index.has(key)) problems.push({ kind: 'index-dangling', account: ref.account, itemId: ref.itemId, detail: `a second deletion-index entry at ${ref.deletedAt}` });
      else index.set(key, { ...ref, matched: false });
    }
  }

  // State gathered over the histories.
  const referenced = new Map<string, BlobRef>();
  const historyProblemsFound: CoherencyProblem[] = [];
  const unreadable = new Set<string>();
  const accountsSeen = new Map<string, { histories: number; hasAccountItem: boolean; unreadable: number }>();
  let histories = 0;
  let transactions = 0;
  let complete = true;

  const visit = (account: AccountId, itemId: ItemId, read: E.Either<StoreError, History>): void => {
    histories++;
    if (histories % 1000 === 0) onProgress({ phase: 'histories', done: histories });
    const seen = accountsSeen.get(account) ?? { histories: 0, hasAccountItem: false, unreadable: 0 };
    seen.histories++;
    accountsSeen.set(account, seen);
    if (E.isLeft(read)) {
      seen.unreadable++;
      unreadable.add(itemKey(account, itemId));
      historyProblemsFound.push({ kind: 'history-unreadable', account, itemId, detail: read.left.message });
      return;
    }
    const history = read.right;
    transactions += history.length;
    historyProblemsFound.push(...historyProblems(account, itemId, history));
    const last = history[history.length - 1];
    if (history.some((e) => e.kind === 'account')) seen.hasAccountItem = true;
    const live = last !== undefined && last.op !== 'delete';
    for (const e of history) {
      if (e.digest === undefined) continue;
      const ref = referenced.get(e.digest);
      if (ref === undefined) referenced.set(e.digest, { account, itemId, tx: e.tx, size: e.size, live });
      else if (live && !ref.live) referenced.set(e.digest, { account, itemId, tx: e.tx, size: e.size, live });
    }
    if (indexReadable && last !== undefined) {
      const entry = index.get(itemKey(account, itemId));
      if (last.op === 'delete') {
        if (entry === undefined) historyProblemsFound.push({ kind: 'index-missing', account, itemId, tx: last.tx, detail: `deleted at ${last.start} but absent from the deletion index` });
        else if (entry.deletedAt !== last.start || entry.tx !== last.tx) {
          historyProblemsFound.push({ kind: 'index-missing', account, itemId, tx: last.tx, detail: `deleted at ${last.start} (tx ${last.tx}) but indexed at ${entry.deletedAt} (tx ${entry.tx})` });
        } else entry.matched = true;
      }
    }
  };

  // One streaming pass per requested account, or over everything.
  for (const account of options.accounts ?? [undefined]) {
    const r = await run(store.forEachHistoryEither(account, visit));
    if (E.isLeft(r)) {
      if (!isDecodeProblem(r.left)) return E.left(storeFailed('forEachHistoryEither', account)(r.left));
      // A key that names no valid item: the pass cannot go past it.
      complete = false;
      problems.push({
        kind: 'check-incomplete',
        ...(account === undefined ? {} : { account }),
        detail: `the histories could not all be enumerated (${r.left.message}); the histories after that key were not checked, and orphan blobs were not looked for`,
      });
    }
  }
  problems.push(...historyProblemsFound);
  onProgress({ phase: 'histories', done: histories });

  // Index entries no history claimed (read on their own: the pass may not have reached them).
  if (indexReadable) {
    for (const [key, ref] of index) {
      if (ref.matched || unreadable.has(key)) continue;
      const h = await run(store.getHistory(ref.account, ref.itemId));
      if (E.isLeft(h)) {
        if (!isDecodeProblem(h.left)) return E.left(storeFailed('getHistory', key)(h.left));
        if (complete) continue; // reported as unreadable by the history pass
        problems.push({ kind: 'history-unreadable', account: ref.account, itemId: ref.itemId, detail: h.left.message });
        continue;
      }
      const last = O.isSome(h.right) ? h.right.value[h.right.value.length - 1] : undefined;
      if (last !== undefined && last.op === 'delete' && last.start === ref.deletedAt && last.tx === ref.tx) continue;
      const why = last === undefined ? 'the item does not exist' : 'the item is not deleted at that instant';
      problems.push({ kind: 'index-dangling', account: ref.account, itemId: ref.itemId, detail: `deletion-index entry at ${ref.deletedAt} (tx ${ref.tx}): ${why}` });
    }
  }

  // Accounts that are gone while their histories stay (an unreadable one may be the account item).
  for (const [account, seen] of accountsSeen) {
    if (account === SERVER_ACCOUNT || seen.hasAccountItem || seen.unreadable > 0 || statAccounts.has(account)) continue;
    problems.push({ kind: 'account-missing', account: account as AccountId, detail: `${seen.histories} histories, but no account item and no account stat` });
  }

  // Blobs: every referenced one, in parallel.
  const digests = [...referenced.keys()] as Digest[];
  let next = 0;
  let blobsRead = 0;
  let bytesRead = 0;
  let failure: RetentionError | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < digests.length) {
      const digest = digests[next++] as Digest;
      const ref = referenced.get(digest) as BlobRef;
      const where = { account: ref.account, itemId: ref.itemId, digest, tx: ref.tx };
      const stat = await run(volume.stat(digest));
      if (E.isLeft(stat)) {
        if (stat.left._tag === 'BlobNotFound') problems.push({ kind: 'blob-missing', ...where, detail: 'referenced but not on the volume' });
        else if (stat.left._tag === 'BlobCorrupt') problems.push({ kind: 'blob-corrupt', ...where, detail: causeText(stat.left.cause) });
        else failure = volumeFailed('stat', digest)(stat.left);
        continue;
      }
      if (ref.size !== undefined && stat.right.size !== ref.size) {
        problems.push({ kind: 'blob-corrupt', ...where, detail: `size ${stat.right.size} on the volume, ${ref.size} recorded` });
        continue;
      }
      if (deep) {
        const read = await readThrough(volume, digest);
        if (E.isLeft(read)) failure = read.left;
        else if ('kind' in read.right) problems.push({ ...read.right, ...where });
        else {
          blobsRead++;
          bytesRead += read.right.bytes;
        }
      }
      if (next % 500 === 0) onProgress({ phase: deep ? 'read blobs' : 'blobs', done: next, total: digests.length });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  if (failure !== undefined) return E.left(failure);
  onProgress({ phase: deep ? 'read blobs' : 'blobs', done: digests.length, total: digests.length });

  // Orphans: only when every history was enumerated, or a live blob could be taken for one.
  let blobsListed = 0;
  if (complete && only === undefined) {
    const why =
      unreadable.size === 0
        ? 'on the volume, referenced by no history'
        : `on the volume, referenced by no readable history (${unreadable.size} could not be read and may reference it)`;
    const listed = await run(
      volume.list((digest) => {
        blobsListed++;
        if (!referenced.has(digest)) problems.push({ kind: 'blob-orphan', digest, detail: why });
      }),
    );
    if (E.isLeft(listed)) return E.left(volumeFailed('list')(listed.left));
  }

  const counts: Partial<Record<CoherencyProblemKind, number>> = {};
  for (const p of problems) counts[p.kind] = (counts[p.kind] ?? 0) + 1;
  const what = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ');
  return E.right({
    deep,
    problems,
    counts,
    accounts: accountsSeen.size,
    histories,
    transactions,
    blobsReferenced: referenced.size,
    blobsRead,
    bytesRead,
    blobsListed,
    complete,
    unreadableHistories: unreadable.size,
    summary: `${histories} histories (${transactions} transactions), ${referenced.size} blobs${deep ? ` read (${bytesRead} bytes)` : ' checked'}: ${problems.length === 0 ? 'no problem' : `${problems.length} problems (${what})`}`,
  });
};

/** Check a backup path. Problems are the report (the caller exits non-zero when there are any); a Left means the check itself failed. */
export const checkCoherency = (options: CheckCoherencyOptions): TE.TaskEither<RetentionError, CoherencyReport> => () => checkAsync(options);
