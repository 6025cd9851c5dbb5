import { closeSync, futimesSync, mkdirSync, openSync, writeFileSync, writevSync } from 'node:fs';
import { join } from 'node:path';
import { formatKeywords, KEYWORDS_FILE, lettersOfFlags, type KeywordTable } from './maildir';
import { folderDirName } from './mutf7';
import type { MessageKind } from './message';
import { Rng } from './rng';
import { DOMAINS, LOCAL_USERS, type Person } from './text';

/*
 * The shape of a generated server: domains, accounts, their folders and keyword tables, and
 * the rules that place a message in a folder with flags. Shared by generate and mutate, so
 * new mail from the mutator looks like the rest.
 */

export const DEFAULT_REF_DATE = '2026-03-01T00:00:00Z';
export const DAY = 86_400;

export type Role = 'inbox' | 'sent' | 'drafts' | 'trash' | 'archive' | 'received';

export interface FolderDef {
  readonly name: string;
  readonly role: Role;
  /** Weight among folders that receive filed mail (0 for sent/drafts). */
  readonly weight: number;
  /** Keyword table written to dovecot-keywords; empty for folders that carry no keywords. */
  readonly keywords: KeywordTable;
}

export interface AccountDef {
  readonly domain: string;
  readonly user: string;
  readonly email: string;
  readonly person: Person;
  readonly weight: number;
  readonly quota: string;
  readonly folders: ReadonlyArray<FolderDef>;
}

export const KEYWORD_NAMES = ['work', 'todo', 'personal', '$NotJunk', '$label1'] as const;

/** Domains get users in blocks, the first ones one more: 5 users over 2 domains = 3 + 2 (as shared/services seeds). */
export const planAccounts = (seed: string, domains: number, users: number): AccountDef[] => {
  const accounts: AccountDef[] = [];
  let u = 0;
  for (let d = 0; d < domains; d++) {
    const domain = DOMAINS[d] ?? `d${d + 1}.test`;
    const count = Math.floor(users / domains) + (d < users % domains ? 1 : 0);
    for (let k = 0; k < count; k++, u++) {
      const known = LOCAL_USERS[u];
      const user = known?.[0] ?? `user${u + 1}`;
      const email = `${user}@${domain}`;
      const rng = Rng.derive(seed, 'account', email);
      const person = { name: known?.[1] ?? `User ${u + 1}`, address: email };
      accounts.push({
        domain,
        user,
        email,
        person,
        weight: rng.lognormal(1, 0.6),
        quota: rng.pick(['512M', '1G', '1G', '2G', '5G']),
        folders: planFolders(rng),
      });
    }
  }
  return accounts;
};

const planFolders = (rng: Rng): FolderDef[] => {
  const kw = (): KeywordTable => rng.shuffle(KEYWORD_NAMES);
  const none: KeywordTable = [];
  const folders: FolderDef[] = [
    { name: 'INBOX', role: 'inbox', weight: 55, keywords: kw() },
    { name: 'Sent', role: 'sent', weight: 0, keywords: none },
    { name: 'Drafts', role: 'drafts', weight: 0, keywords: none },
    { name: 'Trash', role: 'trash', weight: 8, keywords: none },
    { name: 'Archive', role: 'archive', weight: 20, keywords: kw() },
    { name: 'Projects/2026', role: 'received', weight: 6, keywords: kw() },
    // A German client's drafts folder: the non-ASCII name every account has.
    { name: 'Entwürfe', role: 'drafts', weight: 0, keywords: none },
  ];
  if (rng.chance(0.5)) folders.push({ name: 'Projects', role: 'received', weight: 2, keywords: kw() });
  if (rng.chance(0.5)) folders.push({ name: 'Kunden/Zürich', role: 'received', weight: 3, keywords: kw() });
  if (rng.chance(0.4)) folders.push({ name: 'R&D', role: 'received', weight: 3, keywords: kw() });
  if (rng.chance(0.3)) folders.push({ name: 'お知らせ', role: 'received', weight: 2, keywords: none });
  return folders;
};

export const maildirOf = (root: string, a: { readonly domain: string; readonly user: string }): string => join(root, a.domain, a.user, 'Maildir');

/** cur/ new/ tmp/ (+ maildirfolder and dovecot-keywords for a subfolder), with the given mtime. */
export const createFolder = (maildir: string, folder: FolderDef | { readonly name: string; readonly keywords: KeywordTable }, mtimeSec: number): string => {
  const dir = join(maildir, folderDirName(folder.name));
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  if (folder.name !== 'INBOX') writeFileWithMtime(join(dir, 'maildirfolder'), [], mtimeSec);
  if (folder.keywords.length > 0) writeFileWithMtime(join(dir, KEYWORDS_FILE), [Buffer.from(formatKeywords(folder.keywords))], mtimeSec);
  return dir;
};

export const writeFileWithMtime = (path: string, chunks: ReadonlyArray<Buffer>, mtimeSec: number): void => {
  const fd = openSync(path, 'wx');
  try {
    let off = 0;
    const total = chunks.reduce((s, c) => s + c.length, 0);
    let pending = chunks.filter((c) => c.length > 0);
    while (off < total && pending.length > 0) {
      let n = writevSync(fd, pending);
      off += n;
      // writev may write less than asked: drop what was written and retry with the rest.
      const rest: Buffer[] = [];
      for (const c of pending) {
        if (n >= c.length) n -= c.length;
        else {
          rest.push(c.subarray(n));
          n = 0;
        }
      }
      pending = rest;
    }
    futimesSync(fd, mtimeSec, mtimeSec);
  } finally {
    closeSync(fd);
  }
};

export const writeText = (path: string, text: string): void => writeFileSync(path, text);

/** A received date: the last `spanDays` before `refSec`, more mail recently, business hours and weekdays preferred. */
export const receivedDate = (rng: Rng, refSec: number, spanDays: number): number => {
  const refDay = Math.floor(refSec / DAY) * DAY;
  let day = refDay;
  for (let attempt = 0; attempt < 3; attempt++) {
    day = refDay - Math.floor(spanDays * Math.pow(rng.float(), 1.25)) * DAY;
    const dow = new Date(day * 1000).getUTCDay();
    if ((dow !== 0 && dow !== 6) || rng.chance(0.4)) break;
  }
  const hour = rng.weighted(HOURS);
  let sec = day + hour * 3600 + rng.int(0, 3600);
  if (sec >= refSec) sec -= DAY;
  return sec;
};

const HOURS: ReadonlyArray<readonly [number, number]> = Array.from({ length: 24 }, (_, h) => [h, h >= 7 && h <= 18 ? 10 : h >= 19 && h <= 22 ? 3 : 1] as const);

export interface Placement {
  readonly folder: FolderDef;
  readonly inNew: boolean;
  readonly flags: string[];
}

/** Where a message of `kind` lands in `account` and with which flags, given its age at the reference date. */
export const place = (rng: Rng, account: AccountDef, kind: MessageKind, ageSec: number): Placement => {
  const byName = (n: string): FolderDef => account.folders.find((f) => f.name === n) as FolderDef;
  if (kind === 'sent') {
    return { folder: byName('Sent'), inNew: false, flags: rng.chance(0.02) ? ['\\Flagged', '\\Seen'] : ['\\Seen'] };
  }
  if (kind === 'draft') {
    const folder = rng.chance(0.6) ? byName('Drafts') : byName('Entwürfe');
    return { folder, inNew: false, flags: rng.chance(0.9) ? ['\\Draft', '\\Seen'] : ['\\Draft'] };
  }
  const folder = rng.weighted(account.folders.filter((f) => f.weight > 0).map((f) => [f, f.weight] as const));
  if (ageSec < 3 * DAY && rng.chance(0.6)) return { folder, inNew: true, flags: [] };
  const flags: string[] = [];
  const seenP = ageSec < 7 * DAY ? 0.55 : folder.role === 'inbox' ? 0.95 : 0.995;
  if (rng.chance(seenP)) {
    flags.push('\\Seen');
    if (rng.chance(0.12)) flags.push('\\Answered');
  }
  if (rng.chance(folder.role === 'inbox' ? 0.08 : 0.04)) flags.push('\\Flagged');
  if (rng.chance(0.025)) flags.push('$Forwarded');
  if (rng.chance(folder.role === 'trash' ? 0.05 : 0.01)) flags.push('\\Deleted');
  if (folder.keywords.length > 0) {
    const p: Record<string, number> = { work: 0.06, todo: 0.03, personal: 0.02, $NotJunk: 0.02, $label1: 0.015 };
    for (const k of KEYWORD_NAMES) if (rng.chance(p[k] ?? 0)) flags.push(k);
  }
  return { folder, inNew: false, flags: flags.sort() };
};

/** Dovecot's unique part: `<sec>.M<usec>P<pid>.<host>,S=<size>,W=<vsize>`. */
export const uniqueBase = (rng: Rng, sec: number, host: string, size: number, vsize: number): string =>
  `${sec}.M${rng.int(0, 1_000_000)}P${rng.int(1000, 100_000)}.${host},S=${size},W=${vsize}`;

/** The file name for a message: `<base>` in new/, `<base>:2,<letters>` in cur/. Grows `keywords` if needed. */
export const fileName = (base: string, inNew: boolean, flags: ReadonlyArray<string>, keywords: KeywordTable): string =>
  inNew ? base : `${base}:2,${lettersOfFlags(flags, keywords)}`;
