import type { AccountId, AccountMeta, FolderMeta, History, ItemId } from '@zxbackup/item-store';
import { ACCOUNT_ITEM_ID } from '../engine/ids';
import { metaOf } from '../engine/util';
import { runR, traverse, writingRestoreTask, type RestoreDeps } from './deps';
import { RestoreAbort, restoreError, type RestoreError } from './errors';
import { FALLBACK_FOLDER, loadFolderHistories, resolveFolder } from './folders';
import { lastLiveAtOrBefore, liveAt } from './history-view';
import { inReadOrder, makeReadAhead, prefetchBlob } from './read-ahead';
import { filePathOf, isMessageState, plannedMessage, writeMessageFileFromBlob, writeMessageFromBlob, type PlannedMessage } from './write-message';
import type { Digest, ReadHints } from '@zxbackup/volume-contract';
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

/**
 * Messages planned at once: what a restore holds of each (its folder, flags, dates, digest) until
 * it is written, ~200 bytes. An account with more is restored window by window, each in the
 * volume's order; a pack may then be read once per window.
 */
const PLAN_MESSAGES = 100_000;
/**
 * Messages planned before the volume hears of their blobs (`warmUp`): a walk of a large account
 * takes a while (~0.1 s per 1,500 messages here), during which the first downloads can already
 * be on their way. The first blobs of the list name the first packs of its read order.
 */
const WARM_UP_AFTER = 64;
/**
 * Messages whose files are under way at once on the file path. A write there holds nothing in
 * memory but its plan entry (the volume writes the bytes from its own thread), so the window is
 * sized to the volume's downloads: an S3 volume streams 3 packs of 8 MiB at once, ~180 messages
 * each at 45 KB (the mean of the benchmark's mailboxes); 512 files asked ahead cover all three,
 * so no blob a download brings waits for its file to be asked. The window refills by halves:
 * the volume gets its requests 256 at a time.
 */
const FILES_AHEAD = 512;
const INTO_FILES: ReadHints = { into: 'files' };

const withoutDeleted = (flags: ReadonlyArray<string>): string[] => flags.filter((f) => f !== '\\Deleted');

/**
 * Creates folders once (the target creates missing parents itself). Callers may run at the same
 * time: each waits until the folder exists; true for the one call that created it.
 */
export const makeFolderEnsurer = (deps: RestoreDeps, account: AccountId) => {
  const made = new Map<string, Promise<void>>();
  return async (path: string, meta: FolderMeta): Promise<boolean> => {
    const making = made.get(path);
    if (making !== undefined) {
      await making;
      return false;
    }
    const make = runR(deps.target.ensureFolder(account, path, { ...meta, path }), restoreError.target('ensureFolder', `${account}:${path}`));
    made.set(path, make);
    await make;
    return true;
  };
};

/**
 * Restores an account as it was at instant T into a new, empty account: its settings, its
 * folders (paths as they were then) and its messages (content from the volume, flags and
 * received date then). One walk over the store plans the messages (up to PLAN_MESSAGES at a
 * time), which are then written in the volume's read order; memory holds the folder histories,
 * the plan and the blobs fetched ahead of the writes (`readAhead` of them, each at most
 * `READ_AHEAD_MAX_BUFFERED`; bigger ones stream). When the volume can write a blob into a file
 * (`writeToFile`) and the target can take a message as a file (`writeMessageFile`), messages go
 * the file path instead: the volume writes each message's file itself, nothing of it is held
 * here, and `filesAhead` of them are under way at once. The walk starts while the folders are
 * read and made; no message is written before its folder.
 */
export const restoreAccount = (deps: RestoreDeps, params: RestoreAccountParams): TE.TaskEither<RestoreError, RestoreSummary> =>
  writingRestoreTask(deps, 'restoreAccount', async () => {
    const { account, newAccount, at, undelete } = params;
    const hasContent = await runR(deps.target.accountHasContent(newAccount), restoreError.target('accountHasContent', newAccount));
    if (hasContent) {
      throw new RestoreAbort(
        restoreError.refusal('TargetNotEmpty', 'restoreAccount', newAccount, `${newAccount} already holds folders or messages at ${deps.target.uri}; restore into a new account`),
      );
    }
    const ensureFolder = makeFolderEnsurer(deps, newAccount);
    let folderCount = 0;

    /** The account at the target, and the folder histories the messages need. */
    const load = async (): Promise<ReadonlyMap<ItemId, History>> => {
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
      return folders;
    };
    const loaded = load();
    /**
     * Every folder live at T, also those no message is restored into. A message waits only for
     * its own folder (made here or by its writer, once): making them all took a few hundred ms
     * (a subscription file made durable per folder), while the first blobs were ready.
     */
    const makeFolders = async (): Promise<void> => {
      const folders = await loaded;
      const liveFolders = [...folders.keys()]
        .map((id) => resolveFolder(folders, id, at))
        .filter((f) => f !== undefined && f.liveAt)
        .sort((a, b) => (a?.path ?? '').localeCompare(b?.path ?? ''));
      for (const f of liveFolders) if (f !== undefined && (await ensureFolder(f.path, f.meta))) folderCount++;
      deps.onProgress?.({ phase: 'folders', done: folderCount });
    };
    const foldersMade = makeFolders();
    // Awaited below; until then a failure must not count as unhandled.
    loaded.catch(() => undefined);
    foldersMade.catch(() => undefined);

    let messages = 0;
    let undeleted = 0;
    let bytes = 0;
    let ignored = 0;
    interface Planned {
      readonly state: PlannedMessage;
      readonly live: boolean;
    }
    interface Pending extends Planned {
      readonly content: ReturnType<typeof prefetchBlob> | undefined;
    }
    interface ByFile extends Planned {
      readonly state: PlannedMessage & { readonly digest: string; readonly size: number };
    }
    /** Writes one message into its folder (made first, once), with `write`. */
    const writeOne = async (m: Planned, write: (path: string, flags: ReadonlyArray<string>) => Promise<void>): Promise<void> => {
      const folders = await loaded;
      const folder = resolveFolder(folders, m.state.folderId, at);
      const path = folder?.path ?? FALLBACK_FOLDER.path;
      if (await ensureFolder(path, folder?.meta ?? FALLBACK_FOLDER)) folderCount++;
      await write(path, m.live ? m.state.flags : withoutDeleted(m.state.flags));
      messages++;
      if (!m.live) undeleted++;
      bytes += m.state.size ?? 0;
      deps.onProgress?.({ phase: 'messages', done: messages });
    };
    const writers = deps.concurrency ?? 4;
    const ahead = makeReadAhead<Pending>(Math.max(writers, deps.readAhead ?? 16), writers, (m) =>
      writeOne(m, (path, flags) => writeMessageFromBlob(deps, newAccount, path, m.state, flags, m.content)),
    );
    // The file path: a message with a blob and a size goes there when both sides can. Each write
    // lasts until its file is complete, so the window bounds the files under way.
    const files = filePathOf(deps);
    const toFile = (p: Planned): p is ByFile => files !== undefined && p.state.digest !== undefined && p.state.size !== undefined;
    const filesAhead =
      files === undefined
        ? undefined
        : makeReadAhead<ByFile>(deps.filesAhead ?? FILES_AHEAD, deps.filesAhead ?? FILES_AHEAD, (m) =>
            writeOne(m, (path, flags) => writeMessageFileFromBlob(files, newAccount, path, m.state, flags)),
          );
    /** Writes the planned messages in the volume's read order (a message without content is refused by writeMessageFromBlob, first). */
    const writePlan = async (plan: readonly Planned[]): Promise<void> => {
      const byFile: ByFile[] = filesAhead === undefined ? [] : plan.filter(toFile);
      const byStream = byFile.length === 0 ? plan : plan.filter((p) => !toFile(p));
      if (filesAhead === undefined || byStream.length > 0) {
        for (const p of await inReadOrder(deps.volume, byStream, (q) => q.state.digest as Digest | undefined)) {
          await ahead.push(() => ({
            ...p,
            content: p.state.digest === undefined ? undefined : prefetchBlob(deps.volume, p.state.digest as Digest, p.state.size),
          }));
        }
      }
      if (filesAhead === undefined || byFile.length === 0) return;
      for (const p of await inReadOrder(deps.volume, byFile, (q) => q.state.digest as Digest | undefined, INTO_FILES)) await filesAhead.push(() => p);
    };
    /** Every write settled (a failed restore returns with none under way); the first failure, if any. */
    const drain = async (): Promise<void> => {
      const [a, b] = await Promise.allSettled([ahead.drain(), filesAhead?.drain()]);
      if (a.status === 'rejected') throw a.reason;
      if (b.status === 'rejected') throw b.reason;
    };
    const warmUpAfter = deps.warmUpAfter ?? WARM_UP_AFTER;
    const walk = async (): Promise<void> => {
      let plan: Planned[] = [];
      let warmed = false;
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
              plan.push({ state: plannedMessage(state), live: live !== undefined });
              if (!warmed && plan.length >= warmUpAfter) {
                warmed = true;
                if (files === undefined) deps.volume.warmUp?.(plan.flatMap((p) => (p.state.digest === undefined ? [] : [p.state.digest as Digest])));
                else deps.volume.warmUp?.(plan.filter(toFile).map((p) => p.state.digest as Digest), INTO_FILES);
              }
              if (plan.length >= PLAN_MESSAGES) {
                const full = plan;
                plan = [];
                warmed = false;
                await writePlan(full);
              }
            }),
          ),
        restoreError.store('readItems', account),
      );
      await writePlan(plan);
    };
    const walked = (async () => {
      try {
        await walk();
      } catch (error) {
        await drain().catch(() => undefined); // the walk's own failure is the one to report
        throw error;
      }
      await drain();
    })();
    const [loading, making, walking] = await Promise.allSettled([loaded, foldersMade, walked]);
    // A failed load fails every write too: its error is the one to report.
    if (loading.status === 'rejected') throw loading.reason;
    if (making.status === 'rejected') throw making.reason;
    if (walking.status === 'rejected') throw walking.reason;
    deps.onProgress?.({ phase: 'done', done: messages });
    return { folders: folderCount, messages, undeleted, skipped: 0, ignored, bytes };
  });
