import { pipe } from 'fp-ts/function';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, AccountMeta, FolderMeta, ItemId, MetadataStore, Transaction } from '@zxbackup/item-store';
import { engineError, type EngineError } from './errors';
import { ACCOUNT_ITEM_ID } from './ids';

/*
 * The current state of one account as the store holds it, in the compact form a diff needs.
 * Built with one streaming pass over the account's metadata (never its blobs); about a hundred
 * bytes per item.
 */

export interface MessageRec {
  readonly id: ItemId;
  readonly folderId: ItemId;
  readonly sourceKey: string | undefined;
  readonly flags: string;
  readonly receivedAt: number;
  readonly size: number | undefined;
  readonly digest: string | undefined;
  /** Start of the current state: a new state never starts before it. */
  readonly start: number;
  /** Seen in the current scan (kept, changed or moved). */
  claimed: boolean;
}

export interface FolderRec {
  readonly id: ItemId;
  readonly sourceKey: string | undefined;
  readonly meta: FolderMeta;
  readonly start: number;
}

export interface AccountIndex {
  readonly account: AccountId;
  accountState: { readonly meta: AccountMeta; readonly start: number } | undefined;
  readonly folders: Map<ItemId, FolderRec>;
  readonly folderByKey: Map<string, ItemId>;
  readonly messages: Map<ItemId, MessageRec>;
  readonly bySourceKey: Map<string, ItemId[]>;
  /** `digest|receivedAt` → ids: finds a message that moved under a new source key. */
  readonly byContent: Map<string, ItemId[]>;
  /** Ids of live items of other kinds (contacts, appointments...), never touched by a mail scan. */
  readonly others: Set<ItemId>;
}

export const flagsKey = (flags: ReadonlyArray<string>): string => [...flags].sort().join(' ');
export const contentKey = (digest: string, receivedAt: number): string => `${digest}|${receivedAt}`;

const push = <K, V>(m: Map<K, V[]>, k: K, v: V): void => {
  const list = m.get(k);
  if (list === undefined) m.set(k, [v]);
  else list.push(v);
};

export const emptyIndex = (account: AccountId): AccountIndex => ({
  account,
  accountState: undefined,
  folders: new Map(),
  folderByKey: new Map(),
  messages: new Map(),
  bySourceKey: new Map(),
  byContent: new Map(),
  others: new Set(),
});

export const addMessage = (index: AccountIndex, rec: MessageRec): void => {
  index.messages.set(rec.id, rec);
  if (rec.sourceKey !== undefined) push(index.bySourceKey, rec.sourceKey, rec.id);
  if (rec.digest !== undefined) push(index.byContent, contentKey(rec.digest, rec.receivedAt), rec.id);
};

export const addFolder = (index: AccountIndex, rec: FolderRec): void => {
  index.folders.set(rec.id, rec);
  if (rec.sourceKey !== undefined) index.folderByKey.set(rec.sourceKey, rec.id);
};

export const indexState = (index: AccountIndex, itemId: ItemId, state: Transaction): void => {
  if (itemId === ACCOUNT_ITEM_ID && state.kind === 'account') {
    const { tx: _tx, start, end: _end, op: _op, digest: _d, size: _s, ...meta } = state;
    index.accountState = { meta: meta as AccountMeta, start };
  } else if (state.kind === 'message') {
    addMessage(index, {
      id: itemId,
      folderId: state.folderId,
      sourceKey: state.sourceKey,
      flags: flagsKey(state.flags),
      receivedAt: state.receivedAt,
      size: state.size,
      digest: state.digest,
      start: state.start,
      claimed: false,
    });
  } else if (state.kind === 'folder') {
    const { tx: _tx, start, end: _end, op: _op, digest: _d, size: _s, ...meta } = state;
    addFolder(index, { id: itemId, sourceKey: state.sourceKey, meta: meta as FolderMeta, start });
  } else {
    index.others.add(itemId);
  }
};

export const loadAccountIndex = (store: MetadataStore, account: AccountId): TE.TaskEither<EngineError, AccountIndex> => {
  const index = emptyIndex(account);
  return pipe(
    store.forEachItemAt(account, 'now', (itemId, state) => indexState(index, itemId, state)),
    TE.mapLeft(engineError.store('loadAccountIndex', account)),
    TE.map(() => index),
  );
};

/** True when `id` names a live item of the account (any kind). */
export const isLive = (index: AccountIndex, id: ItemId): boolean =>
  index.messages.has(id) || index.folders.has(id) || index.others.has(id) || (id === ACCOUNT_ITEM_ID && index.accountState !== undefined);

/** Makes an index from an earlier session usable again: nothing is claimed yet. */
export const resetClaims = (index: AccountIndex): void => {
  for (const m of index.messages.values()) m.claimed = false;
};
