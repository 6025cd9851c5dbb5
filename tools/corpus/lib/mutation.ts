import { createHash } from 'node:crypto';
import { existsSync, renameSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_REF_DATE, uniqueBase, writeFileWithMtime } from './corpus';
import { curName, formatKeywords, KEYWORDS_FILE, lettersOfFlags, listMaildirTree, readKeywords, type KeywordTable, type MaildirListing, type MaildirMessage } from './maildir';
import { buildMessage, externalPerson, type MessageKind } from './message';
import { folderDirName } from './mutf7';
import { Rng } from './rng';
import { LOCAL_USERS, type Person } from './text';

/*
 * Realistic changes to a generated tree, as a mail client and Dovecot would make them, and
 * a summary of exactly what changed, from which tests compute the expected tree
 * (`applyMutationSummary`). Order: folder renames, then emptying a folder, then message
 * operations (each existing message is touched at most once), so the message operations
 * name folders as they are after the rename.
 */

export interface MutateOptions {
  readonly root: string;
  readonly fraction: number;
  readonly seed: string;
  /** Received date of the first new message (default: one hour after the newest message). */
  readonly now?: string;
  readonly renameFolder?: boolean;
  readonly renameFrom?: string;
  readonly renameTo?: string;
  readonly emptyFolder?: boolean;
  readonly emptyName?: string;
  /** The account whose folder is renamed / emptied (default: one picked by the seed). */
  readonly account?: string;
}

export interface ChangedEntry {
  readonly base: string;
  readonly folder: string;
  readonly fromFile: string;
  readonly toFile: string;
  readonly flagsBefore: ReadonlyArray<string>;
  readonly flagsAfter: ReadonlyArray<string>;
}
export interface MovedEntry {
  readonly base: string;
  readonly from: string;
  readonly to: string;
  readonly fromFile: string;
  readonly toFile: string;
  readonly flags: ReadonlyArray<string>;
}
export interface DeletedEntry {
  readonly base: string;
  readonly folder: string;
  readonly file: string;
  readonly reason: 'expunge' | 'empty-folder';
}
export interface NewEntry {
  readonly base: string;
  readonly folder: string;
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
  readonly mtimeMs: number;
  readonly flags: ReadonlyArray<string>;
}
export interface AccountChanges {
  readonly changed: ChangedEntry[];
  readonly moved: MovedEntry[];
  readonly deleted: DeletedEntry[];
  readonly new: NewEntry[];
}
export interface RenamedFolder {
  readonly account: string;
  readonly from: string;
  readonly to: string;
  readonly fromDir: string;
  readonly toDir: string;
}
export interface MutationSummary {
  readonly root: string;
  readonly seed: string;
  readonly fraction: number;
  readonly now: string;
  readonly renamedFolders: RenamedFolder[];
  readonly emptiedFolders: Array<{ readonly account: string; readonly folder: string; readonly count: number }>;
  /** Only accounts with at least one change. Files are relative to the account's Maildir. */
  readonly accounts: Record<string, AccountChanges>;
  readonly totals: { changed: number; moved: number; deleted: number; new: number };
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

type FlagEdit = 'seen' | 'unseen' | 'flag' | 'answer' | 'forward' | 'delete' | 'keyword';
const KEYWORDS = ['work', 'todo', 'personal', 'invoice', '$NotJunk'];

const editFlags = (rng: Rng, before: ReadonlyArray<string>): string[] => {
  const f = new Set(before);
  const toggle = (x: string): void => void (f.has(x) ? f.delete(x) : f.add(x));
  const edit = rng.weighted<FlagEdit>([
    ['seen', f.has('\\Seen') ? 0 : 4],
    ['unseen', f.has('\\Seen') ? 0.5 : 0],
    ['flag', 2],
    ['answer', 1],
    ['forward', 0.5],
    ['delete', 0.5],
    ['keyword', 1.5],
  ]);
  if (edit === 'seen' || edit === 'unseen') toggle('\\Seen');
  else if (edit === 'flag') toggle('\\Flagged');
  else if (edit === 'answer') f.add('\\Answered').add('\\Seen');
  else if (edit === 'forward') f.add('$Forwarded').add('\\Seen');
  else if (edit === 'delete') toggle('\\Deleted');
  else toggle(rng.pick(KEYWORDS));
  const same = (): boolean => [...f].sort(cmp).join(' ') === [...before].sort(cmp).join(' ');
  // Answering an answered message changes nothing: then flag it instead, so every edit is a change.
  if (same()) toggle('\\Flagged');
  const after = [...f].sort(cmp);
  return after;
};

/** Writes the folder's dovecot-keywords back if the table grew; its mtime is the run's `now`, so reruns match. */
const saveKeywords = (folderDir: string, before: number, table: KeywordTable, nowSec: number): void => {
  if (table.length <= before) return;
  const path = join(folderDir, KEYWORDS_FILE);
  writeFileSync(path, formatKeywords(table));
  utimesSync(path, nowSec, nowSec);
};

const personOf = (email: string): Person => {
  const user = email.slice(0, email.indexOf('@'));
  return { name: LOCAL_USERS.find(([u]) => u === user)?.[1] ?? user, address: email };
};

export const mutateTree = (o: MutateOptions): MutationSummary => {
  const rng = Rng.derive(o.seed, 'mutate');
  let listing = listMaildirTree(o.root);
  const accounts = Object.keys(listing).sort(cmp);
  if (accounts.length === 0) throw new Error(`no Maildir accounts under ${o.root}`);
  const all = (l: MaildirListing): MaildirMessage[] => Object.values(l).flatMap((a) => Object.values(a.folders).flatMap((f) => f.messages));
  const newest = all(listing).reduce((m, x) => Math.max(m, x.mtimeMs), 0);
  let nowSec = o.now !== undefined ? Math.floor(Date.parse(o.now) / 1000) : newest > 0 ? Math.floor(newest / 1000) + 3600 : Math.floor(Date.parse(DEFAULT_REF_DATE) / 1000);
  const startSec = nowSec;
  const changes: Record<string, AccountChanges> = {};
  const of = (a: string): AccountChanges => (changes[a] ??= { changed: [], moved: [], deleted: [], new: [] });
  const renamedFolders: RenamedFolder[] = [];
  const emptiedFolders: Array<{ account: string; folder: string; count: number }> = [];

  const folderAccount = o.account ?? rng.pick(accounts);
  const fa = listing[folderAccount];
  if ((o.renameFolder === true || o.emptyFolder === true) && fa === undefined) throw new Error(`no such account: ${folderAccount}`);
  if (o.renameFolder === true && fa !== undefined) {
    const names = Object.keys(fa.folders).sort(cmp);
    const from = o.renameFrom ?? (names.includes('Archive') ? 'Archive' : rng.pick(names.filter((n) => n !== 'INBOX')));
    const to = o.renameTo ?? (from === 'Archive' ? 'Archive2025' : `${from}-old`);
    if (from === 'INBOX' || fa.folders[from] === undefined) throw new Error(`cannot rename folder ${from} of ${folderAccount}`);
    if (fa.folders[to] !== undefined || existsSync(join(fa.maildir, folderDirName(to)))) throw new Error(`folder ${to} exists in ${folderAccount}`);
    for (const name of names.filter((n) => n === from || n.startsWith(from + '/'))) {
      const target = to + name.slice(from.length);
      const fromDir = folderDirName(name);
      const toDir = folderDirName(target);
      renameSync(join(fa.maildir, fromDir), join(fa.maildir, toDir));
      renamedFolders.push({ account: folderAccount, from: name, to: target, fromDir, toDir });
    }
    listing = listMaildirTree(o.root);
  }
  const fa2 = listing[folderAccount];
  if (o.emptyFolder === true && fa2 !== undefined) {
    const name = o.emptyName ?? 'Trash';
    const folder = fa2.folders[name];
    if (folder === undefined) throw new Error(`no folder ${name} in ${folderAccount}`);
    for (const m of folder.messages) {
      unlinkSync(join(fa2.maildir, m.file));
      of(folderAccount).deleted.push({ base: m.base, folder: name, file: m.file, reason: 'empty-folder' });
    }
    emptiedFolders.push({ account: folderAccount, folder: name, count: folder.messages.length });
    listing = listMaildirTree(o.root);
  }

  const candidates = rng.shuffle(all(listing));
  const bases = new Map(accounts.map((a) => [a, new Set(Object.values(listing[a]?.folders ?? {}).flatMap((f) => f.messages.map((m) => m.base)))]));
  const host = `mail.${[...new Set(accounts.map((a) => a.slice(a.indexOf('@') + 1)))].sort(cmp)[0] ?? 'example.test'}`;
  const ops = Math.max(1, Math.round(o.fraction * candidates.length));
  let next = 0;
  for (let k = 0; k < ops; k++) {
    let op = rng.weighted([['flags', 0.4], ['move', 0.2], ['delete', 0.2], ['new', 0.2]] as const);
    const m = op === 'new' ? undefined : candidates[next++];
    if (m === undefined) op = 'new';
    if (op !== 'new' && m !== undefined) {
      const acc = listing[m.account];
      if (acc === undefined) throw new Error(`lost account ${m.account}`);
      const from = join(acc.maildir, m.file);
      if (op === 'delete') {
        unlinkSync(from);
        of(m.account).deleted.push({ base: m.base, folder: m.folder, file: m.file, reason: 'expunge' });
        continue;
      }
      const targetFolder = op === 'move' ? rng.pick(Object.keys(acc.folders).filter((f) => f !== m.folder).sort(cmp)) : m.folder;
      const targetDir = acc.folders[targetFolder]?.dirName ?? folderDirName(targetFolder);
      const table = readKeywords(join(acc.maildir, targetDir));
      const known = table.length;
      const flags = op === 'flags' ? editFlags(rng, m.flags) : [...m.flags];
      const toFile = join(targetDir, 'cur', curName(m.base, lettersOfFlags(flags, table)));
      saveKeywords(join(acc.maildir, targetDir), known, table, startSec);
      renameSync(from, join(acc.maildir, toFile));
      if (op === 'flags') of(m.account).changed.push({ base: m.base, folder: m.folder, fromFile: m.file, toFile, flagsBefore: m.flags, flagsAfter: flags });
      else of(m.account).moved.push({ base: m.base, from: m.folder, to: targetFolder, fromFile: m.file, toFile, flags });
      continue;
    }
    // New mail: delivered to INBOX (mostly still in new/), filed by a Sieve rule, or sent by the user.
    const account = rng.pick(accounts);
    const acc = listing[account];
    if (acc === undefined) throw new Error(`lost account ${account}`);
    const mrng = Rng.derive(o.seed, 'mutate-new', k);
    nowSec += mrng.int(30, 900);
    const kind: MessageKind = mrng.chance(0.8) ? 'received' : 'sent';
    const others = accounts.filter((a) => a !== account);
    const me = personOf(account);
    const someone = (): Person => (others.length > 0 && mrng.chance(0.25) ? personOf(mrng.pick(others)) : externalPerson(mrng));
    const built = buildMessage(mrng, {
      kind,
      from: kind === 'received' ? someone() : me,
      to: kind === 'received' ? [me] : [someone()],
      cc: [],
      ...(kind === 'received' ? { singleRecipient: account } : {}),
      serverHost: host,
      receivedSec: nowSec,
      targetSize: Math.round(Math.min(2_000_000, Math.max(1024, mrng.lognormal(20_000, 1.2)))),
    });
    const folderNames = Object.keys(acc.folders).sort(cmp);
    let folder: string;
    let inNew = false;
    let flags: string[];
    if (kind === 'sent') {
      folder = folderNames.includes('Sent') ? 'Sent' : 'INBOX';
      flags = ['\\Seen'];
    } else if (mrng.chance(0.8)) {
      folder = 'INBOX';
      inNew = mrng.chance(0.7);
      flags = inNew ? [] : mrng.chance(0.5) ? ['\\Seen'] : [];
    } else {
      folder = mrng.pick(folderNames.filter((f) => !['Sent', 'Drafts', 'Entwürfe', 'Trash'].includes(f)));
      flags = mrng.chance(0.2) ? ['work'] : [];
    }
    const dirName = acc.folders[folder]?.dirName ?? '';
    const used = bases.get(account) as Set<string>;
    let base = uniqueBase(mrng, nowSec, host, built.size, built.size + built.lines);
    while (used.has(base)) base = uniqueBase(mrng, nowSec, host, built.size, built.size + built.lines);
    used.add(base);
    const table = readKeywords(join(acc.maildir, dirName));
    const known = table.length;
    const file = join(dirName, inNew ? 'new' : 'cur', inNew ? base : curName(base, lettersOfFlags(flags, table)));
    saveKeywords(join(acc.maildir, dirName), known, table, startSec);
    writeFileWithMtime(join(acc.maildir, file), built.chunks, nowSec);
    const h = createHash('sha256');
    for (const c of built.chunks) h.update(c);
    of(account).new.push({ base, folder, file, size: built.size, sha256: h.digest('hex'), mtimeMs: nowSec * 1000, flags: flags.sort(cmp) });
  }

  const sorted: Record<string, AccountChanges> = {};
  for (const a of Object.keys(changes).sort(cmp)) sorted[a] = changes[a] as AccountChanges;
  const sum = (key: keyof AccountChanges): number => Object.values(sorted).reduce((n, c) => n + c[key].length, 0);
  return {
    root: o.root,
    seed: o.seed,
    fraction: o.fraction,
    now: new Date(startSec * 1000).toISOString(),
    renamedFolders,
    emptiedFolders,
    accounts: sorted,
    totals: { changed: sum('changed'), moved: sum('moved'), deleted: sum('deleted'), new: sum('new') },
  };
};

/**
 * The listing a tree should have after the mutation `summary` was applied to the tree that
 * `before` describes (listed with `hash: true`). Throws when the summary names a message that
 * is not where it says: that is an inconsistency the tests want to see.
 */
export const applyMutationSummary = (before: MaildirListing, summary: MutationSummary): MaildirListing => {
  const state = new Map<string, Map<string, Map<string, MaildirMessage>>>();
  for (const [account, acc] of Object.entries(before)) {
    state.set(account, new Map(Object.entries(acc.folders).map(([f, l]) => [f, new Map(l.messages.map((m) => [m.base, m]))])));
  }
  const folder = (account: string, name: string, create = false): Map<string, MaildirMessage> => {
    const acc = state.get(account);
    if (acc === undefined) throw new Error(`summary names unknown account ${account}`);
    let f = acc.get(name);
    if (f === undefined && create) {
      f = new Map();
      acc.set(name, f);
    }
    if (f === undefined) throw new Error(`summary names unknown folder ${name} of ${account}`);
    return f;
  };
  const take = (account: string, name: string, base: string): MaildirMessage => {
    const f = folder(account, name);
    const m = f.get(base);
    if (m === undefined) throw new Error(`summary names ${base}, not in ${name} of ${account}`);
    f.delete(base);
    return m;
  };
  for (const r of summary.renamedFolders) {
    const acc = state.get(r.account);
    const f = acc?.get(r.from);
    if (acc === undefined || f === undefined) throw new Error(`summary renames unknown folder ${r.from} of ${r.account}`);
    acc.delete(r.from);
    acc.set(r.to, new Map([...f].map(([b, m]) => [b, { ...m, folder: r.to }])));
  }
  for (const [account, c] of Object.entries(summary.accounts)) {
    for (const d of c.deleted) take(account, d.folder, d.base);
  }
  for (const [account, c] of Object.entries(summary.accounts)) {
    for (const ch of c.changed) {
      const m = take(account, ch.folder, ch.base);
      folder(account, ch.folder).set(ch.base, { ...m, flags: ch.flagsAfter, file: ch.toFile, dir: 'cur' });
    }
    for (const mv of c.moved) {
      const m = take(account, mv.from, mv.base);
      folder(account, mv.to).set(mv.base, { ...m, folder: mv.to, flags: mv.flags, file: mv.toFile, dir: 'cur' });
    }
    for (const n of c.new) {
      folder(account, n.folder).set(n.base, {
        account,
        folder: n.folder,
        dir: n.file.split('/').slice(-2)[0] === 'new' ? 'new' : 'cur',
        base: n.base,
        file: n.file,
        size: n.size,
        mtimeMs: n.mtimeMs,
        flags: n.flags,
        sha256: n.sha256,
      });
    }
  }
  const out: MaildirListing = {};
  for (const [account, folders] of state) {
    const acc = before[account];
    if (acc === undefined) continue;
    out[account] = {
      maildir: acc.maildir,
      folders: Object.fromEntries([...folders].map(([name, msgs]) => [name, { dirName: folderDirName(name), messages: [...msgs.values()] }])),
    };
  }
  return out;
};
