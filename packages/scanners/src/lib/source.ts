import type { Readable } from 'node:stream';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import type { BlobFile } from '@zxbackup/volume-contract';

/*
 * The seam between the scanners/restore engine and a mail server. A connector (maildir now;
 * IMAP, LDAP and DAV later) implements `Source` to be backed up and `RestoreTarget` to be
 * restored into. The engine never knows which connector it talks to.
 */

export type SourceError =
  | { readonly _tag: 'SourceUnavailable'; readonly op: string; readonly key?: string; readonly message: string; readonly cause?: unknown }
  | { readonly _tag: 'SourceNotFound'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'SourceInvalid'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'TargetConflict'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'SourceIOError'; readonly op: string; readonly key?: string; readonly message: string; readonly cause?: unknown };

/** One message as the source lists it. */
export interface MessageEntry {
  /** Stable identity at the source across flag changes (Maildir: the base name before `:2,`). */
  readonly sourceKey: string;
  /** IMAP flags (`\\Seen`, `\\Answered`, `\\Flagged`, `\\Deleted`, `\\Draft`) and keywords, sorted. */
  readonly flags: ReadonlyArray<string>;
  /** INTERNALDATE in epoch ms (Maildir: the file's mtime). */
  readonly receivedAt: number;
  readonly size: number;
  /** Opaque to the engine; passed back to `openBlob` (Maildir: path relative to the account root). */
  readonly locator: string;
}

/** What a scan of one account reports, folder by folder. */
export type ScanEvent =
  | { readonly type: 'account'; readonly meta: AccountMeta }
  /** The folder did not change since the cursor: the engine keeps its items as they are, unread. */
  | { readonly type: 'folderUnchanged'; readonly folderKey: string }
  /** The folder's complete current listing. */
  | { readonly type: 'folder'; readonly folderKey: string; readonly meta: FolderMeta; readonly entries: ReadonlyArray<MessageEntry> };
// A folder reported by neither event is gone from the source.

export interface ScanOptions {
  /** Ignore the cursor: list every folder (Account Scan, `--deep`). */
  readonly full: boolean;
}

/** A live change noticed by `watch`: something in this folder of this account changed at `at`. */
export interface LiveChange {
  readonly account: AccountId;
  /** The folder's key, or undefined when the change is account-wide (a folder created/removed/renamed). */
  readonly folderKey?: string;
  readonly at: number;
  /**
   * A hint: the source keys of the messages of `folderKey` that changed (Maildir: the base names
   * of the files that appeared or vanished). Absent when the connector cannot tell: the engine
   * then lists the whole folder. A connector that gives names MUST name every message it
   * reports a change of, or leave `names` out.
   */
  readonly names?: ReadonlyArray<string>;
}

export interface Watcher {
  close(): Promise<void>;
}

export interface WatchHandlers {
  readonly onChange: (change: LiveChange) => void;
  /** The watch cannot tell what happened (overflow, lost events, error): the engine runs an Account Scan. */
  readonly onUncertain: (account: AccountId | undefined, reason: string) => void;
}

export interface Source {
  readonly uri: string;
  listAccounts(): TE.TaskEither<SourceError, ReadonlyArray<AccountId>>;
  /**
   * Scan one account, reporting each folder to `onEvent` (awaited: back-pressure), and return the
   * new cursor. The cursor is JSON, opaque to the engine, stored in `account_stat` only after
   * everything the scan reported has been committed.
   */
  scanAccount(
    account: AccountId,
    cursor: unknown,
    options: ScanOptions,
    onEvent: (event: ScanEvent) => Promise<void>,
  ): TE.TaskEither<SourceError, { readonly cursor: unknown }>;
  /** List one folder now (the Real Time Scanner rescans just the folders that changed). */
  listFolder(account: AccountId, folderKey: string): TE.TaskEither<SourceError, { readonly meta: FolderMeta; readonly entries: ReadonlyArray<MessageEntry> }>;
  /**
   * Look up just these messages of one folder now (the Real Time Scanner's cheap path for a
   * change that names its messages). Every key is answered exactly once: `present` with its
   * entry as `listFolder` would give it, or `absent` (not in this folder now). A connector
   * that cannot answer cheaply for a key MUST still answer exactly (e.g. by listing the folder);
   * `SourceNotFound` when the folder is gone.
   */
  statEntries?(
    account: AccountId,
    folderKey: string,
    sourceKeys: ReadonlyArray<string>,
  ): TE.TaskEither<SourceError, { readonly present: ReadonlyArray<MessageEntry>; readonly absent: ReadonlyArray<string> }>;
  /** Stream a message's raw bytes. */
  openBlob(account: AccountId, locator: string): TE.TaskEither<SourceError, Readable>;
  /**
   * The local file that held the message when it was listed, for connectors whose messages are
   * files (Maildir): the engine then lets the volume read it directly (`putFile`), and falls back
   * to `openBlob` when it is no longer there (renamed by a flag change, moved). Undefined when
   * the locator names no such file.
   */
  localFile?(account: AccountId, locator: string): string | undefined;
  watch?(handlers: WatchHandlers): TE.TaskEither<SourceError, Watcher>;
}

/**
 * A message's bytes for a target: a stream, or the parts of a message held whole in memory
 * already (a restore's read-ahead), in order, which spares a stream per message.
 */
export type MessageContent = Readable | ReadonlyArray<Buffer>;

/** Whether the content is held in memory (its parts), not streamed. */
export const isHeldContent = (content: MessageContent): content is ReadonlyArray<Buffer> => Array.isArray(content);

/** A message for `writeMessageFile`: what the target needs to name it, and what writes its file. */
export interface MessageFile {
  /** The message's size in bytes (what `fill` writes). */
  readonly size: number;
  readonly flags: ReadonlyArray<string>;
  readonly receivedAt: number;
  /**
   * Creates the file (exclusively, with the mode, owner and mtime asked for) and writes the whole
   * message into it; resolves once it is complete (not durable: the target syncs). On failure it
   * leaves no file, and rejects with the file system's error (errno `code`) when the file failed.
   */
  readonly fill: (file: BlobFile) => Promise<void>;
}

/** Where a restore writes. The restore engine never overwrites what already exists. */
export interface RestoreTarget {
  readonly uri: string;
  /** True when the account exists at the target and holds any folder or message. */
  accountHasContent(account: AccountId): TE.TaskEither<SourceError, boolean>;
  /** Create the account (folders root and, where the target keeps them, its settings and password hash). */
  ensureAccount(account: AccountId, meta: AccountMeta): TE.TaskEither<SourceError, void>;
  /** Create the folder (and its parents) if missing; `path` uses `/` (e.g. `Projects/2026`, `INBOX`). */
  ensureFolder(account: AccountId, path: string, meta: FolderMeta): TE.TaskEither<SourceError, void>;
  /**
   * Write one message with its flags and received date; returns its new source key. A target may
   * hold written messages back and make them durable and visible in groups: then the message is
   * there once `flush` resolved (the restore engine flushes at the end of every restore).
   */
  writeMessage(
    account: AccountId,
    folderPath: string,
    message: { readonly content: MessageContent; readonly flags: ReadonlyArray<string>; readonly receivedAt: number },
  ): TE.TaskEither<SourceError, { readonly sourceKey: string }>;
  /**
   * Like `writeMessage`, but the target never gets the bytes: it names a new file and `fill`
   * writes the message into it (a volume writing straight from its downloads). `fill` is called
   * once, before the returned task resolves, and may still be running then: the message becomes
   * visible (committed) only once `fill` resolved; a `fill` that fails fails the commit (`flush`,
   * or a later write that commits a group) and leaves nothing visible.
   */
  writeMessageFile?(account: AccountId, folderPath: string, message: MessageFile): TE.TaskEither<SourceError, { readonly sourceKey: string }>;
  /** What the folder holds now (to skip messages already there). Empty when the folder is missing. */
  listMessages(account: AccountId, folderPath: string): TE.TaskEither<SourceError, ReadonlyArray<MessageEntry>>;
  /** Make every message written so far durable and visible (targets that group their writes). */
  flush?(): TE.TaskEither<SourceError, void>;
}
