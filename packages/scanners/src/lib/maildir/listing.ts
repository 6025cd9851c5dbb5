import { statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import * as t from 'io-ts';
import type { FolderMeta } from '@zxbackup/item-store';
import type { MessageEntry } from '../source';
import { decodeFlags, KEYWORDS_FILE, parseFileName, parseKeywordsFile } from './flags';
import { folderKeyToPath, INBOX_KEY } from './folders';
import { readdirOrMissing, readTextOrMissing, statOrMissing } from './fs-util';

/*
 * Listing one Maildir++ folder: readdir of new/ and cur/, one stat per file (or none when the
 * file name was seen before: a Maildir file never changes except by rename, which changes
 * its name), and the signature the cursor keeps to skip an unchanged folder next time.
 */

/** `[mtimeMs, ctimeMs, ino]` of a directory, null when missing. */
export const DirSig = t.union([t.null, t.tuple([t.number, t.number, t.number])]);
export type DirSig = t.TypeOf<typeof DirSig>;
export const FolderSig = t.type({ cur: DirSig, new: DirSig, kw: DirSig, sub: t.boolean });
export type FolderSig = t.TypeOf<typeof FolderSig>;

const dirSig = (st: Stats | undefined): DirSig => (st === undefined ? null : [st.mtimeMs, st.ctimeMs, st.ino]);

export const sameSig = (a: FolderSig, b: FolderSig): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The folder's directory under the Maildir. */
export const folderDir = (maildir: string, key: string): string => (key === INBOX_KEY ? maildir : join(maildir, key));

export const folderSig = async (maildir: string, key: string, subscribed: boolean): Promise<FolderSig> => {
  const dir = folderDir(maildir, key);
  const [cur, nw, kw] = await Promise.all([statOrMissing(join(dir, 'cur')), statOrMissing(join(dir, 'new')), statOrMissing(join(dir, KEYWORDS_FILE))]);
  return { cur: dirSig(cur), new: dirSig(nw), kw: dirSig(kw), sub: subscribed };
};

interface Cached {
  readonly size: number;
  readonly mtimeMs: number;
}

/** File name → (size, mtime) of the last listing of each directory, bounded in entries. */
export class StatCache {
  private readonly dirs = new Map<string, Map<string, Cached>>();
  private total = 0;
  constructor(private readonly limit: number) {}
  get(dir: string): Map<string, Cached> | undefined {
    return this.dirs.get(dir);
  }
  set(dir: string, entries: Map<string, Cached>): void {
    this.drop(dir);
    if (entries.size > this.limit) return;
    this.dirs.set(dir, entries);
    this.total += entries.size;
    for (const [oldest, m] of this.dirs) {
      if (this.total <= this.limit) break;
      this.dirs.delete(oldest);
      this.total -= m.size;
    }
  }
  private drop(dir: string): void {
    const m = this.dirs.get(dir);
    if (m === undefined) return;
    this.dirs.delete(dir);
    this.total -= m.size;
  }
}

const STAT_BATCH = 64;

interface Found {
  readonly sub: 'new' | 'cur';
  readonly name: string;
  readonly st: Cached;
}

const statFiles = async (dir: string, names: ReadonlyArray<string>, cache: StatCache | undefined): Promise<Map<string, Cached | undefined>> => {
  const known = cache?.get(dir);
  const out = new Map<string, Cached | undefined>();
  const todo: string[] = [];
  for (const n of names) {
    const c = known?.get(n);
    if (c !== undefined) out.set(n, c);
    else todo.push(n);
  }
  // Synchronous stats in small batches, yielding in between: 4-5x faster than one libuv
  // threadpool round trip per file (measured: 20 000 files 0.4 s vs 1.6-2 s), while the event
  // loop is never held for more than a batch.
  for (let i = 0; i < todo.length; i += STAT_BATCH) {
    if (i > 0) await new Promise<void>((r) => setImmediate(r));
    for (const n of todo.slice(i, i + STAT_BATCH)) {
      const st = statSync(join(dir, n), { throwIfNoEntry: false });
      out.set(n, st === undefined || !st.isFile() ? undefined : { size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  return out;
};

const listSub = async (dir: string, sub: 'new' | 'cur', cache: StatCache | undefined): Promise<{ found: Found[]; vanished: string[] }> => {
  const path = join(dir, sub);
  const names = (await readdirOrMissing(path)) ?? [];
  const visible = names.filter((n) => !n.startsWith('.'));
  const stats = await statFiles(path, visible, cache);
  const found: Found[] = [];
  const vanished: string[] = [];
  const fresh = new Map<string, Cached>();
  for (const n of visible) {
    const st = stats.get(n);
    if (st === undefined) vanished.push(n);
    else {
      found.push({ sub, name: n, st });
      fresh.set(n, st);
    }
  }
  cache?.set(path, fresh);
  return { found, vanished };
};

export const readKeywords = async (dir: string) => parseKeywordsFile((await readTextOrMissing(join(dir, KEYWORDS_FILE))) ?? '');

/**
 * The complete listing of one folder. new/ is read before cur/, so a message moving from
 * new/ to cur/ meanwhile is seen at least once; a file renamed between readdir and stat
 * (flags changed) is looked up again by its base name; one really gone is left out.
 */
export const listFolderEntries = async (maildir: string, key: string, cache: StatCache | undefined): Promise<MessageEntry[]> => {
  const dir = folderDir(maildir, key);
  const fromNew = await listSub(dir, 'new', cache);
  const fromCur = await listSub(dir, 'cur', cache);
  const keywords = await readKeywords(dir);
  const found = [...fromNew.found, ...fromCur.found];
  const vanished = [...fromNew.vanished, ...fromCur.vanished];
  if (vanished.length > 0) {
    const bases = new Set(vanished.map((n) => parseFileName(n).base));
    for (const sub of ['new', 'cur'] as const) {
      const names = (await readdirOrMissing(join(dir, sub))) ?? [];
      for (const n of names) {
        if (!bases.has(parseFileName(n).base)) continue;
        const st = await statOrMissing(join(dir, sub, n));
        if (st !== undefined && st.isFile()) found.push({ sub, name: n, st: { size: st.size, mtimeMs: st.mtimeMs } });
      }
    }
  }
  const byKey = new Map<string, MessageEntry>();
  const flagsOf = new Map<string, string[]>(); // a folder has few distinct letter sets
  for (const f of found) {
    const { base, letters } = parseFileName(f.name);
    let flags = flagsOf.get(letters);
    if (flags === undefined) flagsOf.set(letters, (flags = decodeFlags(letters, keywords)));
    byKey.set(base, messageEntry(key, f.sub, f.name, f.st, flags));
  }
  return [...byKey.values()].sort((a, b) => (a.sourceKey < b.sourceKey ? -1 : a.sourceKey > b.sourceKey ? 1 : 0));
};

/** The entry of one message file of folder `key` (`flags` decoded from its name). */
export const messageEntry = (key: string, sub: 'new' | 'cur', name: string, st: { readonly size: number; readonly mtimeMs: number }, flags: ReadonlyArray<string>): MessageEntry => ({
  sourceKey: parseFileName(name).base,
  flags: [...flags],
  receivedAt: Math.floor(st.mtimeMs),
  size: st.size,
  locator: key === INBOX_KEY ? `${sub}/${name}` : `${key}/${sub}/${name}`,
});

export const folderMeta = (key: string, subscribed: boolean): FolderMeta => ({
  kind: 'folder',
  path: folderKeyToPath(key),
  view: 'message',
  sourceKey: key,
  subscribed,
});
