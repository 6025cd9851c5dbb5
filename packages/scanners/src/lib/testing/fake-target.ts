import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import type { MessageEntry, RestoreTarget, SourceError } from '../source';

/** An in-memory restore target for the restore specs; it reads what it is given to the end. */
export interface FakeTarget extends RestoreTarget {
  readonly accounts: Map<string, { meta?: AccountMeta; folders: Map<string, { meta: FolderMeta; messages: FakeStored[] }> }>;
  /** Reads a written message back (what a duplicate check compares with). */
  openMessage(account: AccountId, locator: string): TE.TaskEither<SourceError, Readable>;
  /** Folder path → sorted [{content, flags, receivedAt}] (same shape as the fake source's snapshot). */
  snapshot(account: string): Record<string, Array<{ content: string; flags: string[]; receivedAt: number }>>;
  writes: number;
}

export interface FakeStored {
  readonly sourceKey: string;
  readonly content: Buffer;
  readonly flags: string[];
  readonly receivedAt: number;
}

export const makeFakeTarget = (): FakeTarget => {
  const accounts: FakeTarget['accounts'] = new Map();
  let n = 0;
  const account = (a: string) => {
    let x = accounts.get(a);
    if (x === undefined) accounts.set(a, (x = { folders: new Map() }));
    return x;
  };
  const target: FakeTarget = {
    uri: 'fake-target:',
    accounts,
    writes: 0,
    accountHasContent: (a) => TE.right([...(accounts.get(a)?.folders.values() ?? [])].some((f) => f.messages.length > 0) || (accounts.get(a)?.folders.size ?? 0) > 1),
    ensureAccount: (a, meta) => {
      const x = account(a);
      x.meta = meta;
      if (!x.folders.has('INBOX')) x.folders.set('INBOX', { meta: { kind: 'folder', path: 'INBOX', view: 'message' }, messages: [] });
      return TE.right(undefined);
    },
    ensureFolder: (a, path, meta) => {
      const x = account(a);
      if (!x.folders.has(path)) x.folders.set(path, { meta: { ...meta, path }, messages: [] });
      return TE.right(undefined);
    },
    writeMessage: (a, folderPath, message) => async () => {
      const chunks: Buffer[] = [];
      try {
        for await (const c of message.content) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c as string));
      } catch (cause) {
        return E.left({ _tag: 'SourceIOError', op: 'writeMessage', message: String(cause), cause } as SourceError);
      }
      const x = account(a);
      let f = x.folders.get(folderPath);
      if (f === undefined) x.folders.set(folderPath, (f = { meta: { kind: 'folder', path: folderPath, view: 'message' }, messages: [] }));
      const sourceKey = `restored-${++n}`;
      f.messages.push({ sourceKey, content: Buffer.concat(chunks), flags: [...message.flags].sort(), receivedAt: message.receivedAt });
      target.writes++;
      return E.right({ sourceKey });
    },
    listMessages: (a, folderPath) =>
      TE.right(
        (accounts.get(a)?.folders.get(folderPath)?.messages ?? []).map(
          (m): MessageEntry => ({ sourceKey: m.sourceKey, flags: m.flags, receivedAt: m.receivedAt, size: m.content.length, locator: JSON.stringify([folderPath, m.sourceKey]) }),
        ),
      ),
    openMessage: (a, locator) => {
      const [path, key] = JSON.parse(locator) as [string, string];
      const m = accounts.get(a)?.folders.get(path)?.messages.find((x) => x.sourceKey === key);
      return m === undefined ? TE.left({ _tag: 'SourceNotFound', op: 'openMessage', message: locator } as SourceError) : TE.right(Readable.from([m.content]));
    },
    snapshot: (a) => {
      const out: Record<string, Array<{ content: string; flags: string[]; receivedAt: number }>> = {};
      for (const [path, f] of accounts.get(a)?.folders ?? []) {
        out[path] = f.messages
          .map((m) => ({ content: m.content.toString('latin1'), flags: [...m.flags].sort(), receivedAt: m.receivedAt }))
          .sort((x, y) => x.content.localeCompare(y.content));
      }
      return out;
    },
  };
  return target;
};
