import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, ItemId, ItemKind, Transaction } from '@zxbackup/item-store';
import { restoreTask, traverse, type RestoreDeps } from './deps';
import { restoreError, type RestoreError } from './errors';
import { loadFolderHistories, resolveFolder } from './folders';
import { deletionOf, lastLive } from './history-view';

export type SearchType = 'message' | 'contact' | 'folder' | 'document' | 'all';

export interface SearchParams {
  readonly account: AccountId;
  /** Case-insensitive text looked for in subject, from, to, folder path, names and summaries. */
  readonly searchString?: string;
  readonly type?: SearchType;
  /** Only items whose date (received date for a message, else its last change) is before / after these instants. */
  readonly before?: number;
  readonly after?: number;
  readonly filter: 'all' | 'deleted' | 'not_deleted';
  /** At most this many hits (default 1,000), in item id order. */
  readonly limit?: number;
}

export interface SearchHit {
  readonly itemId: ItemId;
  readonly kind: ItemKind;
  /** The folder path (at deletion for a deleted item). */
  readonly folder?: string;
  readonly subject?: string;
  readonly from?: string;
  readonly receivedAt?: number;
  readonly deletedAt?: number;
  readonly lastTx: number;
}

const KINDS: Record<SearchType, ReadonlyArray<ItemKind> | 'all'> = {
  message: ['message'],
  contact: ['contact', 'contactGroup'],
  folder: ['folder'],
  document: ['driveDocument'],
  all: 'all',
};

const textOf = (s: Transaction, folder: string | undefined): string => {
  const parts: Array<string | undefined> = [folder];
  if (s.kind === 'message') parts.push(s.subject, s.from, ...(s.to ?? []));
  else if (s.kind === 'folder') parts.push(s.path);
  else if (s.kind === 'contact') parts.push(...Object.values(s.fields));
  else if (s.kind === 'contactGroup' || s.kind === 'driveDocument') parts.push(s.name);
  else if (s.kind === 'appointment' || s.kind === 'task') parts.push(s.summary);
  else if (s.kind === 'account' || s.kind === 'distributionList') parts.push(s.address);
  return parts.filter((p): p is string => p !== undefined).join('\n').toLowerCase();
};

/** Finds items of an account by text, kind, date and deletion state (the restore UI's search). */
export const searchItems = (deps: Pick<RestoreDeps, 'store'>, params: SearchParams): TE.TaskEither<RestoreError, ReadonlyArray<SearchHit>> =>
  restoreTask('searchItems', async () => {
    const { account, filter } = params;
    const kinds = KINDS[params.type ?? 'all'];
    const needle = params.searchString?.toLowerCase();
    const limit = params.limit ?? 1000;
    // Folders first (few), so each hit is decided as it streams by and memory stays bounded.
    const folders = await loadFolderHistories(deps.store, account);
    const out: SearchHit[] = [];
    await traverse(
      (guard) =>
        deps.store.forEachHistory(
          account,
          guard(async (_a, itemId, history) => {
            const last = history[history.length - 1];
            if (last === undefined || out.length >= limit) return;
            if (kinds !== 'all' && !kinds.includes(last.kind)) return;
            const deletedAt = deletionOf(history);
            if ((filter === 'deleted' && deletedAt === undefined) || (filter === 'not_deleted' && deletedAt !== undefined)) return;
            const state = lastLive(history) ?? last;
            const date = state.kind === 'message' ? state.receivedAt : last.start;
            if ((params.before !== undefined && !(date < params.before)) || (params.after !== undefined && !(date > params.after))) return;
            const folder =
              'folderId' in state ? resolveFolder(folders, state.folderId, (deletedAt ?? Number.MAX_SAFE_INTEGER) - 1)?.path : state.kind === 'folder' ? state.path : undefined;
            if (needle !== undefined && !textOf(state, folder).includes(needle)) return;
            out.push({
              itemId,
              kind: state.kind,
              ...(folder === undefined ? {} : { folder }),
              ...(state.kind === 'message'
                ? { ...(state.subject === undefined ? {} : { subject: state.subject }), ...(state.from === undefined ? {} : { from: state.from }), receivedAt: state.receivedAt }
                : {}),
              ...(deletedAt === undefined ? {} : { deletedAt }),
              lastTx: last.tx,
            });
          }),
        ),
      restoreError.store('searchItems', account),
    );
    return out;
  });
