import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import { ACCOUNT_ITEM_ID } from '../engine/ids';
import { metaOf } from '../engine/util';
import { makeLimiter, restoreTask, runR, traverse, type RestoreDeps } from './deps';
import { RestoreAbort, restoreError, type RestoreError } from './errors';
import { FALLBACK_FOLDER, loadFolderHistories, resolveFolder } from './folders';
import { lastLiveAtOrBefore, liveAt } from './history-view';
import { isMessageState, writeMessageFromBlob } from './write-message';
import type * as TE from 'fp-ts/TaskEither';

export interface RestoreAccountParams {
  readonly account: AccountId;
  /** The account to create at the target; it must not hold anything yet. */
  readonly newAccount: AccountId;
  /** The instant to restore (epoch ms). */
  readonly at: number;
  /**
   * Also bring back every message that existed at some instant up to `at` and is deleted at
   * `at`, in its last state before the deletion (without `\\Deleted`): the legal-hold restore.
   */
  readonly undelete: boolean;
}

export interface RestoreSummary {
  readonly folders: number;
  readonly messages: number;
  /** Of `messages`, those that were deleted at the instant (with `undelete`). */
  readonly undeleted: number;
  /** Messages already at the target (undelete, restore of one item). */
  readonly skipped: number;
  /** Live items of kinds a mail target does not take (contacts, appointments...): not written. */
  readonly ignored: number;
  readonly bytes: number;
}

const withoutDeleted = (flags: ReadonlyArray<string>): string[] => flags.filter((f) => f !== '\\Deleted');

/** Creates folders once, parents first (the target creates missing parents itself). */
export const makeFolderEnsurer = (deps: RestoreDeps, account: AccountId) => {
  const done = new Set<string>();
  return async (path: string, meta: FolderMeta): Promise<boolean> => {
    if (done.has(path)) return false;
    done.add(path);
    await runR(deps.target.ensureFolder(account, path, { ...meta, path }), restoreError.target('ensureFolder', `${account}:${path}`));
    return true;
  };
};

/**
 * Restores an account as it was at instant T into a new, empty account: its settings, its
 * folders (paths as they were then) and its messages (content from the volume, flags and
 * received date then). Streams item by item; memory holds the folder histories only.
 */
export const restoreAccount = (deps: RestoreDeps, params: RestoreAccountParams): TE.TaskEither<RestoreError, RestoreSummary> =>
  restoreTask('restoreAccount', async () => {
    const { account, newAccount, at, undelete } = params;
    const hasContent = await runR(deps.target.accountHasContent(newAccount), restoreError.target('accountHasContent', newAccount));
    if (hasContent) {
      throw new RestoreAbort(
        restoreError.refusal('TargetNotEmpty', 'restoreAccount', newAccount, `${newAccount} already holds folders or messages at ${deps.target.uri}; restore into a new account`),
      );
    }
    const folders = await loadFolderHistories(deps.store, account);
    const accountHistory = await runR(deps.store.getHistory(account, ACCOUNT_ITEM_ID), restoreError.store('readAccount', account));
    const accountState = accountHistory._tag === 'Some' ? (liveAt(accountHistory.value, at) ?? lastLiveAtOrBefore(accountHistory.value, at)) : undefined;
    if (accountState === undefined && folders.size === 0) {
      throw new RestoreAbort(restoreError.refusal('AccountNotFound', 'restoreAccount', account, `the backup holds nothing of ${account} at or before ${new Date(at).toISOString()}`));
    }
    const meta: AccountMeta =
      accountState?.kind === 'account'
        ? { ...(metaOf(accountState) as AccountMeta), address: newAccount }
        : { kind: 'account', address: newAccount, status: 'active', settings: {} };
    await runR(deps.target.ensureAccount(newAccount, meta), restoreError.target('ensureAccount', newAccount));

    const ensureFolder = makeFolderEnsurer(deps, newAccount);
    let folderCount = 0;
    const liveFolders = [...folders.keys()]
      .map((id) => resolveFolder(folders, id, at))
      .filter((f) => f !== undefined && f.liveAt)
      .sort((a, b) => (a?.path ?? '').localeCompare(b?.path ?? ''));
    for (const f of liveFolders) if (f !== undefined && (await ensureFolder(f.path, f.meta))) folderCount++;
    deps.onProgress?.({ phase: 'folders', done: folderCount });

    const limiter = makeLimiter(deps.concurrency ?? 4);
    let messages = 0;
    let undeleted = 0;
    let bytes = 0;
    let ignored = 0;
    await traverse(
      (guard) =>
        deps.store.forEachHistory(
          account,
          guard(async (_a, _id, history) => {
            const live = liveAt(history, at);
            const state = live ?? (undelete ? lastLiveAtOrBefore(history, at) : undefined);
            if (state === undefined) return;
            if (!isMessageState(state)) {
              if (live !== undefined && state.kind !== 'folder' && state.kind !== 'account') ignored++;
              return;
            }
            const folder = resolveFolder(folders, state.folderId, at);
            const path = folder?.path ?? FALLBACK_FOLDER.path;
            if (await ensureFolder(path, folder?.meta ?? FALLBACK_FOLDER)) folderCount++;
            await limiter.run(async () => {
              await writeMessageFromBlob(deps, newAccount, path, state, live === undefined ? withoutDeleted(state.flags) : state.flags);
              messages++;
              if (live === undefined) undeleted++;
              bytes += state.size ?? 0;
              deps.onProgress?.({ phase: 'messages', done: messages });
            });
          }),
        ),
      restoreError.store('readItems', account),
    );
    await limiter.drain();
    deps.onProgress?.({ phase: 'done', done: messages });
    return { folders: folderCount, messages, undeleted, skipped: 0, ignored, bytes };
  });
