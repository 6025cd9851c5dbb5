import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import type { LiveChange, MessageEntry, ScanEvent, Source, SourceError, WatchHandlers } from '../source';

/*
 * An in-memory mail server for the engine's unit specs: accounts, folders (keyed like a
 * Maildir++ folder), messages keyed by a source key, a per-folder version as the scan cursor,
 * and a record of every blob read so a spec can assert what a scan did not read.
 */

export interface FakeMessage {
  readonly sourceKey: string;
  readonly content: Buffer;
  flags: string[];
  receivedAt: number;
}

interface FakeFolder {
  meta: FolderMeta;
  readonly messages: Map<string, FakeMessage>;
  version: number;
}

interface FakeAccount {
  meta: AccountMeta;
  readonly folders: Map<string, FakeFolder>;
}

export interface FakeSource extends Source {
  addAccount(account: string, meta?: Partial<AccountMeta>): void;
  setAccountMeta(account: string, meta: Partial<AccountMeta>): void;
  removeAccount(account: string): void;
  addFolder(account: string, folderKey: string, path?: string): void;
  renameFolder(account: string, folderKey: string, newKey: string, newPath: string): void;
  removeFolder(account: string, folderKey: string): void;
  putMessage(account: string, folderKey: string, sourceKey: string, content: string | Buffer, opts?: { flags?: string[]; receivedAt?: number }): void;
  setFlags(account: string, folderKey: string, sourceKey: string, flags: string[]): void;
  moveMessage(account: string, from: string, sourceKey: string, to: string, newSourceKey?: string): void;
  removeMessage(account: string, folderKey: string, sourceKey: string): void;
  /** Empties a folder (the "Empty Folder" button). */
  emptyFolder(account: string, folderKey: string): void;
  /** Locators read by `openBlob`, in order. */
  readonly reads: string[];
  /** Folder keys listed by `listFolder`, in order. */
  readonly listed: string[];
  /** `statEntries` calls, in order: folder key and the keys asked for. */
  readonly statted: Array<{ readonly folderKey: string; readonly keys: ReadonlyArray<string> }>;
  /** Every live change goes to the watchers (as a file system watcher would). */
  notify(change: LiveChange): void;
  uncertain(account: AccountId | undefined, reason: string): void;
  /** Make `openBlob` fail with `SourceIOError` for this locator (or every one with `*`). */
  failBlob(locator: string | undefined): void;
  /** Delay of each blob read in ms (for stop/kill specs). */
  blobDelayMs: number;
  /** Snapshot of one account: folder path → [{content, flags, receivedAt}] sorted. */
  snapshot(account: string): Record<string, Array<{ content: string; flags: string[]; receivedAt: number }>>;
}

export const locatorOf = (folderKey: string, sourceKey: string): string => JSON.stringify([folderKey, sourceKey]);

const err = (tag: SourceError['_tag'], op: string, message: string, key?: string): SourceError =>
  ({ _tag: tag, op, message, ...(key === undefined ? {} : { key }) }) as SourceError;

export const makeFakeSource = (): FakeSource => {
  const accounts = new Map<string, FakeAccount>();
  const watchers = new Set<WatchHandlers>();
  const reads: string[] = [];
  const listed: string[] = [];
  const statted: Array<{ folderKey: string; keys: ReadonlyArray<string> }> = [];
  let clock = 0;
  let failing: string | undefined;

  const acc = (account: string): FakeAccount => {
    const a = accounts.get(account);
    if (a === undefined) throw new Error(`fake source: no account ${account}`);
    return a;
  };
  const fol = (account: string, key: string): FakeFolder => {
    const f = acc(account).folders.get(key);
    if (f === undefined) throw new Error(`fake source: no folder ${key} in ${account}`);
    return f;
  };
  const touch = (f: FakeFolder): void => {
    f.version = ++clock;
  };
  const entryOf = (key: string, m: FakeMessage): MessageEntry => ({
    sourceKey: m.sourceKey,
    flags: [...m.flags].sort(),
    receivedAt: m.receivedAt,
    size: m.content.length,
    locator: locatorOf(key, m.sourceKey),
  });
  const entriesOf = (key: string, f: FakeFolder): MessageEntry[] =>
    [...f.messages.values()].sort((a, b) => a.sourceKey.localeCompare(b.sourceKey)).map((m) => entryOf(key, m));

  const fake: FakeSource = {
    uri: 'fake:',
    reads,
    listed,
    statted,
    blobDelayMs: 0,

    addAccount: (account, meta = {}) => {
      accounts.set(account, {
        meta: { kind: 'account', address: account, status: 'active', settings: {}, ...meta },
        folders: new Map([['INBOX', { meta: { kind: 'folder', path: 'INBOX', view: 'message' }, messages: new Map(), version: ++clock }]]),
      });
    },
    setAccountMeta: (account, meta) => {
      const a = acc(account);
      a.meta = { ...a.meta, ...meta };
    },
    removeAccount: (account) => {
      accounts.delete(account);
    },
    addFolder: (account, folderKey, path) => {
      acc(account).folders.set(folderKey, { meta: { kind: 'folder', path: path ?? folderKey.replace(/^\./, '').replace(/\./g, '/'), view: 'message' }, messages: new Map(), version: ++clock });
    },
    renameFolder: (account, folderKey, newKey, newPath) => {
      const a = acc(account);
      const f = fol(account, folderKey);
      a.folders.delete(folderKey);
      f.meta = { ...f.meta, path: newPath };
      touch(f);
      a.folders.set(newKey, f);
    },
    removeFolder: (account, folderKey) => {
      acc(account).folders.delete(folderKey);
    },
    putMessage: (account, folderKey, sourceKey, content, opts = {}) => {
      const f = fol(account, folderKey);
      f.messages.set(sourceKey, {
        sourceKey,
        content: Buffer.isBuffer(content) ? content : Buffer.from(content),
        flags: opts.flags ?? [],
        receivedAt: opts.receivedAt ?? 1_700_000_000_000,
      });
      touch(f);
    },
    setFlags: (account, folderKey, sourceKey, flags) => {
      const f = fol(account, folderKey);
      const m = f.messages.get(sourceKey);
      if (m === undefined) throw new Error(`fake source: no message ${sourceKey}`);
      m.flags = flags;
      touch(f);
    },
    moveMessage: (account, from, sourceKey, to, newSourceKey) => {
      const a = fol(account, from);
      const b = fol(account, to);
      const m = a.messages.get(sourceKey);
      if (m === undefined) throw new Error(`fake source: no message ${sourceKey}`);
      a.messages.delete(sourceKey);
      b.messages.set(newSourceKey ?? sourceKey, { ...m, sourceKey: newSourceKey ?? sourceKey });
      touch(a);
      touch(b);
    },
    removeMessage: (account, folderKey, sourceKey) => {
      const f = fol(account, folderKey);
      f.messages.delete(sourceKey);
      touch(f);
    },
    emptyFolder: (account, folderKey) => {
      const f = fol(account, folderKey);
      f.messages.clear();
      touch(f);
    },
    notify: (change) => {
      for (const w of watchers) w.onChange(change);
    },
    uncertain: (account, reason) => {
      for (const w of watchers) w.onUncertain(account, reason);
    },
    failBlob: (locator) => {
      failing = locator;
    },
    snapshot: (account) => {
      const out: Record<string, Array<{ content: string; flags: string[]; receivedAt: number }>> = {};
      for (const f of acc(account).folders.values()) {
        out[f.meta.path] = [...f.messages.values()]
          .map((m) => ({ content: m.content.toString('latin1'), flags: [...m.flags].sort(), receivedAt: m.receivedAt }))
          .sort((x, y) => x.content.localeCompare(y.content));
      }
      return out;
    },

    listAccounts: () => TE.right([...accounts.keys()].sort() as AccountId[]),

    scanAccount: (account, cursor, options, onEvent) => async () => {
      const a = accounts.get(account);
      if (a === undefined) return E.left(err('SourceNotFound', 'scanAccount', `no account ${account}`, account));
      const seen = (cursor ?? {}) as Record<string, number>;
      const next: Record<string, number> = {};
      const events: ScanEvent[] = [{ type: 'account', meta: a.meta }];
      for (const [key, f] of [...a.folders.entries()].sort(([x], [y]) => x.localeCompare(y))) {
        next[key] = f.version;
        events.push(!options.full && seen[key] === f.version ? { type: 'folderUnchanged', folderKey: key } : { type: 'folder', folderKey: key, meta: f.meta, entries: entriesOf(key, f) });
      }
      for (const ev of events) {
        try {
          await onEvent(ev);
        } catch (cause) {
          return E.left(err('SourceIOError', 'scanAccount', `the consumer failed: ${String(cause)}`, account));
        }
      }
      return E.right({ cursor: next });
    },

    listFolder: (account, folderKey) => async () => {
      listed.push(folderKey);
      const f = accounts.get(account)?.folders.get(folderKey);
      if (f === undefined) return E.left(err('SourceNotFound', 'listFolder', `no folder ${folderKey}`, folderKey));
      return E.right({ meta: f.meta, entries: entriesOf(folderKey, f) });
    },

    statEntries: (account, folderKey, keys) => async () => {
      statted.push({ folderKey, keys: [...keys] });
      const f = accounts.get(account)?.folders.get(folderKey);
      if (f === undefined) return E.left(err('SourceNotFound', 'statEntries', `no folder ${folderKey}`, folderKey));
      const present: MessageEntry[] = [];
      const absent: string[] = [];
      for (const k of new Set(keys)) {
        const m = f.messages.get(k);
        if (m === undefined) absent.push(k);
        else present.push(entryOf(folderKey, m));
      }
      return E.right({ present, absent });
    },

    openBlob: (account, locator) => async () => {
      reads.push(locator);
      if (fake.blobDelayMs > 0) await new Promise((r) => setTimeout(r, fake.blobDelayMs));
      if (failing === '*' || failing === locator) return E.left(err('SourceIOError', 'openBlob', 'injected failure', locator));
      const [folderKey, sourceKey] = JSON.parse(locator) as [string, string];
      const m = accounts.get(account)?.folders.get(folderKey)?.messages.get(sourceKey);
      if (m === undefined) return E.left(err('SourceNotFound', 'openBlob', `no message ${locator}`, locator));
      // Several small chunks: the header parser must cope with a header block split anywhere.
      const chunks: Buffer[] = [];
      for (let i = 0; i < m.content.length; i += 7) chunks.push(m.content.subarray(i, i + 7));
      return E.right(Readable.from(chunks));
    },

    watch: (handlers) => {
      watchers.add(handlers);
      return TE.right({
        close: async () => {
          watchers.delete(handlers);
        },
      });
    },
  };
  return fake;
};
