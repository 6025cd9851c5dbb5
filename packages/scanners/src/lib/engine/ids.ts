import { createHash } from 'node:crypto';
import type { AccountId, ItemId } from '@zxbackup/item-store';

/*
 * Item ids derived from what the source says, so a scan rerun after a crash finds the ids it
 * gave before, and a flag change or a move (same source key in another folder) keeps the id.
 */

/** The account's own item (its settings, password hash, status). */
export const ACCOUNT_ITEM_ID = 'account' as ItemId;

const hash24 = (parts: ReadonlyArray<string>): string => createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 24);

export const messageIdFor = (account: AccountId, sourceKey: string, salt?: string): ItemId =>
  `m${hash24(salt === undefined ? [account, sourceKey] : [account, sourceKey, salt])}` as ItemId;

export const folderIdFor = (account: AccountId, folderKey: string, salt?: string): ItemId =>
  `f${hash24(salt === undefined ? [account, 'folder', folderKey] : [account, 'folder', folderKey, salt])}` as ItemId;

/**
 * The first of `candidates` (then salted variants) that `taken` does not hold: a derived id
 * may already name another live item (the id of a vanished message reused by a move).
 */
export const firstFree = (make: (salt?: string) => ItemId, taken: (id: ItemId) => boolean): ItemId => {
  let id = make();
  for (let n = 1; taken(id); n++) id = make(String(n));
  return id;
};
