import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, FolderMeta } from '@zxbackup/item-store';
import { runR, writingRestoreTask, type RestoreDeps } from './deps';
import { restoreError, type RestoreError } from './errors';
import { FALLBACK_FOLDER, loadFolderHistories, resolveFolder } from './folders';
import { ddmmyy, lastLiveAtOrBefore } from './history-view';
import { inReadOrder } from './read-ahead';
import { makeFolderEnsurer } from './restore-account';
import { isMessageState, makeDuplicateCheck, writeMessageFromBlob, type MessageState } from './write-message';
import type { Digest } from '@zxbackup/volume-contract';

export interface UndeleteParams {
  readonly account: AccountId;
  /** Deletion instants from `from` to `to`, both included (epoch ms). */
  readonly from: number;
  readonly to: number;
  /** true: each message goes back to the folder it was deleted from (recreated if gone); false: into `Undeleted DD-MM-YY`. */
  readonly targetOriginalFolder: boolean;
  /** The restore's time: names the folder and the `undelete_DD_MM_YY` keyword (UTC). */
  readonly now: number;
}

export interface UndeleteSummary {
  readonly restored: number;
  /** Already at the target (same size, received date and content): not written again. */
  readonly skipped: number;
  /** Deleted items that are not messages (folders come back as needed; other kinds are not mail). */
  readonly ignored: number;
  readonly folders: ReadonlyArray<string>;
}

/** The keyword each undeleted message carries, e.g. `undelete_05_03_26`. */
export const undeleteKeyword = (now: number): string => `undelete_${ddmmyy(now).underscored}`;
/** The folder of an undelete that does not target the original folders, e.g. `Undeleted 05-03-26`. */
export const undeleteFolder = (now: number): string => `Undeleted ${ddmmyy(now).dashed}`;

/**
 * Brings back, into the same account at the target, every message deleted between `from` and
 * `to`: its last state before the deletion, without `\\Deleted`, tagged `undelete_DD_MM_YY`.
 * Never writes a message the folder already holds. The messages are written in the volume's read
 * order (an S3 volume's pack by pack), after their states are read.
 */
export const undeleteItems = (deps: RestoreDeps, params: UndeleteParams): TE.TaskEither<RestoreError, UndeleteSummary> =>
  writingRestoreTask(deps, 'undeleteItems', async () => {
    const { account, from, to, targetOriginalFolder, now } = params;
    // deletedBetween is [from, to): `to` itself is included here.
    const refs = await runR(deps.store.deletedBetween(from, to + 1, account), restoreError.store('deletedBetween', account));
    const folders = await loadFolderHistories(deps.store, account);
    const ensureFolder = makeFolderEnsurer(deps, account);
    const duplicates = makeDuplicateCheck(deps, account);
    const keyword = undeleteKeyword(now);
    const used = new Set<string>();
    let restored = 0;
    let skipped = 0;
    let ignored = 0;
    // The messages first, then written in the volume's read order (see restoreAccount).
    const found: Array<{ readonly state: MessageState; readonly deletedAt: number }> = [];
    for (const ref of refs) {
      const history = await runR(deps.store.getHistory(account, ref.itemId), restoreError.store('readItem', `${account}/${ref.itemId}`));
      if (O.isNone(history)) continue;
      const state = lastLiveAtOrBefore(history.value, ref.deletedAt - 1) ?? lastLiveAtOrBefore(history.value, ref.deletedAt);
      if (state === undefined || !isMessageState(state)) {
        ignored++;
        continue;
      }
      found.push({ state, deletedAt: ref.deletedAt });
    }
    for (const { state, deletedAt } of await inReadOrder(deps.volume, found, (f) => f.state.digest as Digest | undefined)) {
      let path: string;
      let meta: FolderMeta;
      if (targetOriginalFolder) {
        const f = resolveFolder(folders, state.folderId, deletedAt - 1);
        path = f?.path ?? FALLBACK_FOLDER.path;
        meta = f?.meta ?? FALLBACK_FOLDER;
      } else {
        path = undeleteFolder(now);
        meta = { kind: 'folder', path, view: 'message' };
      }
      await ensureFolder(path, meta);
      used.add(path);
      if (await duplicates.has(path, state)) {
        skipped++;
        continue;
      }
      const flags = [...new Set([...state.flags.filter((f) => f !== '\\Deleted'), keyword])].sort();
      await writeMessageFromBlob(deps, account, path, state, flags);
      await duplicates.remember(path, state);
      restored++;
      deps.onProgress?.({ phase: 'messages', done: restored + skipped, total: refs.length });
    }
    deps.onProgress?.({ phase: 'done', done: restored + skipped, total: refs.length });
    return { restored, skipped, ignored, folders: [...used].sort() };
  });
