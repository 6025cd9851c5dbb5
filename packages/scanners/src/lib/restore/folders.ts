import type { AccountId, FolderMeta, History, ItemId, MetadataStore } from '@zxbackup/item-store';
import { metaOf } from '../engine/util';
import { runR } from './deps';
import { restoreError } from './errors';
import { lastLive, lastLiveAtOrBefore, liveAt } from './history-view';

/** Every folder history of an account (folders are few; their histories stay in memory). */
export const loadFolderHistories = async (store: MetadataStore, account: AccountId): Promise<Map<ItemId, History>> => {
  const out = new Map<ItemId, History>();
  await runR(
    store.forEachHistory(account, (_a, id, history) => {
      if (history[history.length - 1]?.kind === 'folder') out.set(id, history);
    }),
    restoreError.store('readFolders', account),
  );
  return out;
};

export interface ResolvedFolder {
  readonly path: string;
  readonly meta: FolderMeta;
  /** The folder existed at the instant asked for (otherwise `path` is where it last was). */
  readonly liveAt: boolean;
}

/** Where a folder was at T; when it did not exist then, where it last was before (or at all). */
export const resolveFolder = (histories: ReadonlyMap<ItemId, History>, folderId: ItemId, at: number): ResolvedFolder | undefined => {
  const h = histories.get(folderId);
  if (h === undefined) return undefined;
  const live = liveAt(h, at);
  const state = live ?? lastLiveAtOrBefore(h, at) ?? lastLive(h);
  if (state === undefined || state.kind !== 'folder') return undefined;
  return { path: state.path, meta: metaOf(state) as FolderMeta, liveAt: live !== undefined };
};

/** Folder used when a message's folder is unknown to the backup. */
export const FALLBACK_FOLDER: FolderMeta = { kind: 'folder', path: 'INBOX', view: 'message' };
