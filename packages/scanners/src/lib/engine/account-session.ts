import { pipe } from 'fp-ts/function';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import type { AccountMeta, FolderMeta, ItemId, MessageMeta, MetadataStore } from '@zxbackup/item-store';
import type { BlobVolume } from '@zxbackup/volume-contract';
import type { MessageEntry, Source } from '../source';
import { addFolder, addMessage, contentKey, flagsKey, isLive, type AccountIndex, type MessageRec } from './account-index';
import { run, type Committer, type PendingChange } from './committer';
import { engineError } from './errors';
import { ACCOUNT_ITEM_ID, firstFree, folderIdFor, messageIdFor } from './ids';
import { ingestMessage, type IngestedMessage } from './ingest-message';
import type { MessageHeaders } from './message-headers';
import type { MutableSummary } from './types';
import { forEachConcurrent, metaOf, sameJson } from './util';

/*
 * The diff of one account against the store, folder by folder, as a scan reports them.
 *
 * Identity rules (so that a rerun after a crash finds the same ids, and history reads well):
 * - a message is found by its source key: first in the folder being listed, then in another
 *   folder (a move); a new message gets an id derived from its source key;
 * - a new source key whose content (digest) and received date match a message that vanished in
 *   the same scan is that message, moved under a new name;
 * - a folder is found by its key; a new key whose listing holds mostly the messages of a folder
 *   that vanished in the same scan is that folder, renamed (same id, new path).
 * Deletions are decided at the end, once every folder has been seen, so a move is never
 * recorded as a delete and a create.
 */

export interface SessionDeps {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly source: Source;
  readonly index: AccountIndex;
  readonly committer: Committer;
  /** When the changes happened (scan time, or the live change's time). */
  readonly at: number;
  readonly concurrency: number;
  readonly counters: MutableSummary;
  /** 'account': a whole-account scan, unreported folders are gone. 'folders': only the listed folders. */
  readonly mode: 'account' | 'folders';
}

export interface AccountSession {
  account(meta: AccountMeta): Promise<void>;
  folderUnchanged(folderKey: string): void;
  folder(folderKey: string, meta: FolderMeta, entries: ReadonlyArray<MessageEntry>): Promise<void>;
  /**
   * Only some messages of known folders (mode 'folders', live changes that named them): per
   * folder, `present` as the source lists them now, `absent` the source keys gone from it. The
   * folders' other messages are left as they are. An absent message is deleted at `finish`
   * unless a listing or a `present` of another folder claimed it (a move). The folders are
   * worked on together (their reads overlap).
   */
  messages(folders: ReadonlyArray<{ readonly folderKey: string; readonly present: ReadonlyArray<MessageEntry>; readonly absent: ReadonlyArray<string> }>): Promise<void>;
  /** Resolve renames and moves, record what vanished; `scope` (mode 'folders') is the folders listed. */
  finish(): Promise<void>;
  /** Live items of the account and deletions recorded by this session. */
  readonly liveItems: () => number;
  readonly deletions: () => number;
}

interface PendingMove {
  readonly folderId: ItemId;
  readonly entry: MessageEntry;
  readonly blob: IngestedMessage;
}

interface DeferredFolder {
  readonly folderKey: string;
  readonly meta: FolderMeta;
  readonly entries: ReadonlyArray<MessageEntry>;
}

const UPDATE_READS_AT_ONCE = 16;

const sortedFlags = (flags: ReadonlyArray<string>): string[] => [...flags].sort();

const headerFields = (h: MessageHeaders): Partial<MessageMeta> => ({
  ...(h.subject === undefined ? {} : { subject: h.subject }),
  ...(h.from === undefined ? {} : { from: h.from }),
  ...(h.to === undefined ? {} : { to: [...h.to] }),
  ...(h.messageId === undefined ? {} : { messageId: h.messageId }),
  ...(h.sentAt === undefined ? {} : { sentAt: h.sentAt }),
});

export const makeAccountSession = (deps: SessionDeps): AccountSession => {
  const { store, volume, source, index, committer, at, counters, mode } = deps;
  const account = index.account;
  const unchangedKeys = new Set<string>();
  const reported = new Set<ItemId>();
  const deferred: DeferredFolder[] = [];
  const pendingMoves: PendingMove[] = [];
  const assigned = new Set<ItemId>();
  /** Messages of folders not listed in full that a live change says are gone from there. */
  const absentIds = new Set<ItemId>();
  let deletions = 0;

  const emit = (c: PendingChange): Promise<void> => committer.add(c);

  const unchangedFolderIds = (): Set<ItemId> => {
    const ids = new Set<ItemId>();
    for (const key of unchangedKeys) {
      const id = index.folderByKey.get(key);
      if (id !== undefined) ids.add(id);
    }
    return ids;
  };

  /** May a message of this folder be claimed by a listing of another folder (a move)? */
  const movableFrom = (folderId: ItemId): boolean => {
    const f = index.folders.get(folderId);
    return f?.sourceKey === undefined || !unchangedKeys.has(f.sourceKey);
  };

  const claim = (sourceKey: string, folderId: ItemId): MessageRec | undefined => {
    const ids = index.bySourceKey.get(sourceKey) ?? [];
    const recs = ids.map((id) => index.messages.get(id)).filter((r): r is MessageRec => r !== undefined && !r.claimed);
    const rec = recs.find((r) => r.folderId === folderId) ?? recs.find((r) => movableFrom(r.folderId));
    if (rec !== undefined) rec.claimed = true;
    return rec;
  };

  const currentMeta = async (id: ItemId): Promise<MessageMeta> => {
    const history = await run(pipe(store.getHistory(account, id), TE.mapLeft(engineError.store('readItem', `${account}/${id}`))));
    const last = O.isSome(history) ? history.value[history.value.length - 1] : undefined;
    if (last === undefined || last.kind !== 'message') {
      // The index was built from this very store: a missing item means someone else removed it.
      throw new Error(`item ${account}/${id} vanished from the store during the scan`);
    }
    return metaOf(last) as MessageMeta;
  };

  // The index stays right after the session (the Real Time Scanner reuses it for the next batch).
  const replaceRec = (rec: MessageRec, next: Partial<MessageRec>): void => {
    index.messages.set(rec.id, { ...rec, ...next, start: Math.max(at, rec.start), claimed: true });
  };

  /** A known message changed folder, flags, received date or source key (no new bytes). */
  const updateMessage = async (rec: MessageRec, folderId: ItemId, entry: MessageEntry, blob?: IngestedMessage): Promise<void> => {
    const before = await currentMeta(rec.id);
    const meta: MessageMeta = {
      ...before,
      ...(blob === undefined ? {} : headerFields(blob.headers)),
      folderId,
      flags: sortedFlags(entry.flags),
      receivedAt: entry.receivedAt,
      sourceKey: entry.sourceKey,
    };
    const digest = blob?.digest ?? rec.digest;
    const size = blob?.size ?? rec.size;
    if (rec.folderId !== folderId) counters.moved++;
    else counters.updated++;
    replaceRec(rec, { folderId, flags: flagsKey(meta.flags), receivedAt: meta.receivedAt, digest, size });
    await emit({
      kind: 'upsert',
      itemId: rec.id,
      at,
      notBefore: rec.start,
      meta,
      ...(digest === undefined ? {} : { digest }),
      ...(size === undefined ? {} : { size }),
    });
  };

  const createMessage = async (folderId: ItemId, entry: MessageEntry, blob: IngestedMessage): Promise<void> => {
    const id = firstFree((salt) => messageIdFor(account, entry.sourceKey, salt), (i) => isLive(index, i) || assigned.has(i));
    assigned.add(id);
    const meta: MessageMeta = {
      kind: 'message',
      folderId,
      flags: sortedFlags(entry.flags),
      receivedAt: entry.receivedAt,
      sourceKey: entry.sourceKey,
      ...headerFields(blob.headers),
    };
    addMessage(index, {
      id,
      folderId,
      sourceKey: entry.sourceKey,
      flags: flagsKey(meta.flags),
      receivedAt: entry.receivedAt,
      size: blob.size,
      digest: blob.digest,
      start: at,
      claimed: true,
    });
    counters.created++;
    await emit({ kind: 'upsert', itemId: id, at, meta, digest: blob.digest, size: blob.size });
  };

  const read = async (entry: MessageEntry): Promise<IngestedMessage | undefined> => {
    const blob = await ingestMessage(source, volume, account, entry);
    if (blob === undefined) {
      counters.vanishedWhileReading++;
      return undefined;
    }
    committer.noteBlob();
    counters.messagesRead++;
    counters.bytesRead += blob.size;
    if (blob.stored) counters.blobsStored++;
    return blob;
  };

  /** Unclaimed messages with this content that a move could have come from. */
  const contentCandidates = (blob: IngestedMessage, receivedAt: number): MessageRec[] =>
    (index.byContent.get(contentKey(blob.digest, receivedAt)) ?? [])
      .map((id) => index.messages.get(id))
      .filter((r): r is MessageRec => r !== undefined && !r.claimed && movableFrom(r.folderId));

  interface Plan {
    readonly toRead: Array<{ folderId: ItemId; entry: MessageEntry; rec?: MessageRec }>;
    readonly toUpdate: Array<{ folderId: ItemId; entry: MessageEntry; rec: MessageRec }>;
  }

  /** Claims the entries' messages and sorts out what must be read and what only updated. */
  const planEntries = (plan: Plan, folderId: ItemId, entries: ReadonlyArray<MessageEntry>): void => {
    for (const entry of entries) {
      const rec = claim(entry.sourceKey, folderId);
      if (rec === undefined) plan.toRead.push({ folderId, entry });
      else if (rec.size !== undefined && rec.size !== entry.size) plan.toRead.push({ folderId, entry, rec });
      else if (rec.folderId !== folderId || rec.flags !== flagsKey(entry.flags) || rec.receivedAt !== entry.receivedAt) plan.toUpdate.push({ folderId, entry, rec });
    }
  };

  const runUpdates = (plan: Plan): Promise<void> =>
    // Each update reads the item's current state (for its header fields): overlap the reads.
    forEachConcurrent(plan.toUpdate, UPDATE_READS_AT_ONCE, ({ folderId, entry, rec }) => updateMessage(rec, folderId, entry));

  const runReads = (plan: Plan): Promise<void> =>
    forEachConcurrent(plan.toRead, deps.concurrency, async ({ folderId, entry, rec }) => {
      const blob = await read(entry);
      if (blob === undefined) return;
      if (rec !== undefined) {
        // Same source key, other bytes: the message was rewritten in place.
        if (rec.digest !== blob.digest || rec.folderId !== folderId || rec.flags !== flagsKey(entry.flags) || rec.receivedAt !== entry.receivedAt) {
          await updateMessage(rec, folderId, entry, blob);
        }
      } else if (contentCandidates(blob, entry.receivedAt).length > 0) {
        pendingMoves.push({ folderId, entry, blob });
      } else {
        await createMessage(folderId, entry, blob);
      }
    });

  const diffEntries = async (folderId: ItemId, entries: ReadonlyArray<MessageEntry>): Promise<void> => {
    const plan: Plan = { toRead: [], toUpdate: [] };
    planEntries(plan, folderId, entries);
    await runUpdates(plan);
    await runReads(plan);
  };

  const upsertFolder = async (id: ItemId, folderKey: string, meta: FolderMeta): Promise<void> => {
    const full: FolderMeta = { ...meta, kind: 'folder', sourceKey: folderKey };
    const before = index.folders.get(id);
    if (before !== undefined && sameJson(before.meta, full)) return;
    if (before === undefined) counters.created++;
    else counters.updated++;
    if (before?.sourceKey !== undefined && before.sourceKey !== folderKey) index.folderByKey.delete(before.sourceKey);
    addFolder(index, { id, sourceKey: folderKey, meta: full, start: at });
    await emit({ kind: 'upsert', itemId: id, at, ...(before === undefined ? {} : { notBefore: before.start }), meta: full });
  };

  const newFolderId = (folderKey: string): ItemId => {
    const id = firstFree((salt) => folderIdFor(account, folderKey, salt), (i) => isLive(index, i) || assigned.has(i));
    assigned.add(id);
    return id;
  };

  /** Store folders reported by neither event (so far): gone, or renamed. */
  const unreportedFolders = (): ItemId[] =>
    [...index.folders.values()].filter((f) => !reported.has(f.id) && (f.sourceKey === undefined || !unchangedKeys.has(f.sourceKey))).map((f) => f.id);

  const processFolder = async (id: ItemId, folderKey: string, meta: FolderMeta, entries: ReadonlyArray<MessageEntry>): Promise<void> => {
    reported.add(id);
    counters.foldersScanned++;
    await upsertFolder(id, folderKey, meta);
    await diffEntries(id, entries);
  };

  const liveCountIn = (folderId: ItemId): number => {
    let n = 0;
    for (const m of index.messages.values()) if (m.folderId === folderId) n++;
    return n;
  };

  /** The vanished folder whose messages the new listing mostly holds, if any. */
  const renamedFrom = (entries: ReadonlyArray<MessageEntry>, vanished: ReadonlyArray<ItemId>): ItemId | undefined => {
    let best: { id: ItemId; overlap: number } | undefined;
    for (const id of vanished) {
      let overlap = 0;
      for (const e of entries) {
        const ids = index.bySourceKey.get(e.sourceKey) ?? [];
        if (ids.some((m) => index.messages.get(m)?.folderId === id && index.messages.get(m)?.claimed === false)) overlap++;
      }
      if (overlap > 0 && 2 * overlap >= Math.max(liveCountIn(id), entries.length) && (best === undefined || overlap > best.overlap)) {
        best = { id, overlap };
      }
    }
    return best?.id;
  };

  const deleteItem = async (id: ItemId, notBefore: number): Promise<void> => {
    counters.deleted++;
    deletions++;
    await emit({ kind: 'delete', itemId: id, at, notBefore });
  };

  return {
    account: async (meta) => {
      const before = index.accountState;
      if (before !== undefined && sameJson(before.meta, meta)) return;
      if (before === undefined) counters.created++;
      else counters.updated++;
      index.accountState = { meta, start: at };
      await emit({ kind: 'upsert', itemId: ACCOUNT_ITEM_ID, at, ...(before === undefined ? {} : { notBefore: before.start }), meta });
    },

    folderUnchanged: (folderKey) => {
      unchangedKeys.add(folderKey);
      counters.foldersSkipped++;
    },

    folder: async (folderKey, meta, entries) => {
      const known = index.folderByKey.get(folderKey);
      // A folder listed twice in one session: its messages are claimed already.
      if (known !== undefined && reported.has(known)) return;
      if (known !== undefined) return processFolder(known, folderKey, meta, entries);
      if (mode === 'account' && unreportedFolders().length > 0) {
        // Maybe a renamed folder: decide once every folder has been reported.
        deferred.push({ folderKey, meta, entries });
        return;
      }
      return processFolder(newFolderId(folderKey), folderKey, meta, entries);
    },

    messages: async (folders) => {
      const plan: Plan = { toRead: [], toUpdate: [] };
      for (const { folderKey, present, absent } of folders) {
        const folderId = index.folderByKey.get(folderKey);
        if (mode !== 'folders' || folderId === undefined) throw new Error(`messages(): ${folderKey} is not a known folder of a 'folders' session`);
        if (reported.has(folderId)) continue; // listed in full already
        for (const key of absent) {
          for (const id of index.bySourceKey.get(key) ?? []) if (index.messages.get(id)?.folderId === folderId) absentIds.add(id);
        }
        planEntries(plan, folderId, present);
      }
      const done = await Promise.allSettled([runUpdates(plan), runReads(plan)]);
      for (const d of done) if (d.status === 'rejected') throw d.reason;
    },

    finish: async () => {
      const vanished = mode === 'account' ? unreportedFolders() : [];
      const emptyVanished = vanished.filter((id) => liveCountIn(id) === 0);
      const emptyNew = deferred.filter((d) => d.entries.length === 0);
      for (const d of deferred) {
        // One empty folder gone and one empty folder new: nothing to tell a rename from a
        // delete and a create, and a rename reads better in the history.
        const loneEmpty = d.entries.length === 0 && emptyNew.length === 1 && emptyVanished.length === 1 ? emptyVanished[0] : undefined;
        const from = renamedFrom(d.entries, vanished) ?? (loneEmpty !== undefined && vanished.includes(loneEmpty) ? loneEmpty : undefined);
        if (from !== undefined) {
          vanished.splice(vanished.indexOf(from), 1);
          counters.foldersRenamed++;
        }
        await processFolder(from ?? newFolderId(d.folderKey), d.folderKey, d.meta, d.entries);
      }
      for (const p of pendingMoves) {
        const from = contentCandidates(p.blob, p.entry.receivedAt).find((r) => mode === 'account' || reported.has(r.folderId) || absentIds.has(r.id));
        if (from === undefined) {
          await createMessage(p.folderId, p.entry, p.blob);
        } else {
          from.claimed = true;
          await updateMessage(from, p.folderId, p.entry, p.blob);
        }
      }
      const keep = unchangedFolderIds();
      // Only named messages to look at: no need to walk the whole account.
      const suspects = mode === 'folders' && reported.size === 0 ? [...absentIds].flatMap((id) => index.messages.get(id) ?? []) : [...index.messages.values()];
      for (const rec of suspects) {
        if (rec.claimed) continue;
        const inScope = mode === 'account' ? !keep.has(rec.folderId) : reported.has(rec.folderId) || absentIds.has(rec.id);
        if (!inScope) continue;
        index.messages.delete(rec.id);
        await deleteItem(rec.id, rec.start);
      }
      for (const id of vanished) {
        const f = index.folders.get(id);
        if (f === undefined) continue;
        index.folders.delete(id);
        if (f.sourceKey !== undefined && index.folderByKey.get(f.sourceKey) === id) index.folderByKey.delete(f.sourceKey);
        await deleteItem(id, f.start);
      }
    },

    liveItems: () => index.messages.size + index.folders.size + index.others.size + (index.accountState === undefined ? 0 : 1),
    deletions: () => deletions,
  };
};
