import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, ItemId } from '@zxbackup/item-store';
import { runR, writingRestoreTask, type RestoreDeps } from './deps';
import { RestoreAbort, restoreError, type RestoreError } from './errors';
import { FALLBACK_FOLDER, loadFolderHistories, resolveFolder } from './folders';
import { deletionOf, lastLive, liveAt } from './history-view';
import { makeFolderEnsurer } from './restore-account';
import { isMessageState, makeDuplicateCheck, writeMessageFromBlob } from './write-message';

export interface RestoreItemParams {
  readonly account: AccountId;
  readonly itemId: ItemId;
  /** The instant whose state to restore (default: the item's last live state). */
  readonly at?: number;
  /** Folder path to restore into (default: the item's folder at that instant, recreated if gone). */
  readonly restoreFolder?: string;
}

export interface RestoreItemResult {
  readonly itemId: ItemId;
  readonly kind: string;
  readonly folder: string;
  /** false when the folder already held the same message (nothing written). */
  readonly written: boolean;
}

/** Restores one message (or one folder) of an account, as of an instant, into the same account. */
export const restoreItem = (deps: RestoreDeps, params: RestoreItemParams): TE.TaskEither<RestoreError, RestoreItemResult> =>
  writingRestoreTask(deps, 'restoreItem', async () => {
    const { account, itemId } = params;
    const key = `${account}/${itemId}`;
    const history = await runR(deps.store.getHistory(account, itemId), restoreError.store('readItem', key));
    if (O.isNone(history)) throw new RestoreAbort(restoreError.refusal('ItemNotFound', 'restoreItem', key, `the backup holds no item ${itemId} in ${account}`));
    const state = params.at === undefined ? lastLive(history.value) : liveAt(history.value, params.at);
    if (state === undefined) {
      const when = params.at === undefined ? 'ever' : `at ${new Date(params.at).toISOString()}`;
      throw new RestoreAbort(restoreError.refusal('ItemNotFound', 'restoreItem', key, `item ${itemId} of ${account} did not exist ${when}`));
    }
    // The folder as it was when the state was current: at T, or just before the deletion.
    const when = params.at ?? (deletionOf(history.value) ?? Number.MAX_SAFE_INTEGER) - 1;
    const ensureFolder = makeFolderEnsurer(deps, account);
    if (state.kind === 'folder') {
      const path = params.restoreFolder ?? state.path;
      await ensureFolder(path, { kind: 'folder', path, view: state.view });
      return { itemId, kind: state.kind, folder: path, written: true };
    }
    if (!isMessageState(state)) {
      throw new RestoreAbort(restoreError.refusal('UnsupportedItem', 'restoreItem', key, `a ${state.kind} cannot be restored into ${deps.target.uri}`));
    }
    const folders = await loadFolderHistories(deps.store, account);
    const folder = params.restoreFolder === undefined ? resolveFolder(folders, state.folderId, when) : undefined;
    const path = params.restoreFolder ?? folder?.path ?? FALLBACK_FOLDER.path;
    await ensureFolder(path, folder?.meta ?? { kind: 'folder', path, view: 'message' });
    if (await makeDuplicateCheck(deps, account).has(path, state)) return { itemId, kind: state.kind, folder: path, written: false };
    await writeMessageFromBlob(deps, account, path, state, state.flags.filter((f) => f !== '\\Deleted'));
    return { itemId, kind: state.kind, folder: path, written: true };
  });
