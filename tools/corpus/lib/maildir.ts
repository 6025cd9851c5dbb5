import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { folderOfDirName } from './mutf7';

/*
 * Dovecot Maildir++ as the corpus tools read and write it:
 *   <root>/<domain>/<user>/Maildir/{cur,new,tmp}          INBOX
 *   <root>/<domain>/<user>/Maildir/.<a>.<b>/{cur,new,tmp}  folder "a/b" (names in modified UTF-7),
 *                                                         with an empty `maildirfolder` file
 * Message files are `<base>:2,<letters>` in cur/ and `<base>` in new/. Letters are in ASCII
 * order: D F P R S T for \Draft \Flagged $Forwarded \Answered \Seen \Deleted, a-z for the
 * keywords named in that folder's `dovecot-keywords` (`<index> <name>` lines, a = 0).
 * P is not an IMAP flag for Dovecot; we name it `$Forwarded` (as the maildir connector does),
 * so a tree restored with a `$Forwarded` keyword letter compares equal to one with P.
 */

export const KEYWORDS_FILE = 'dovecot-keywords';
const SYSTEM: ReadonlyArray<readonly [string, string]> = [
  ['D', '\\Draft'],
  ['F', '\\Flagged'],
  ['P', '$Forwarded'],
  ['R', '\\Answered'],
  ['S', '\\Seen'],
  ['T', '\\Deleted'],
];
const FLAG_OF_LETTER = new Map(SYSTEM);
const LETTER_OF_FLAG = new Map(SYSTEM.map(([l, f]) => [f, l]));

export interface ParsedName {
  /** Everything before the `:2,` info (the whole name when there is none): stable across flag changes. */
  readonly base: string;
  readonly letters: string;
}

export const parseMessageName = (name: string): ParsedName => {
  const colon = name.lastIndexOf(':');
  if (colon < 0) return { base: name, letters: '' };
  const info = name.slice(colon + 1);
  if (!info.startsWith('2,')) return { base: name.slice(0, colon), letters: '' };
  const rest = info.slice(2);
  const comma = rest.indexOf(',');
  return { base: name.slice(0, colon), letters: comma < 0 ? rest : rest.slice(0, comma) };
};

export const sortLetters = (letters: string): string => [...new Set(letters)].sort().join('');

export const curName = (base: string, letters: string): string => `${base}:2,${sortLetters(letters)}`;

/** Keyword names by index (0 = `a`); undefined where the file names nothing. */
export type KeywordTable = Array<string | undefined>;

export const parseKeywords = (text: string): KeywordTable => {
  const table: KeywordTable = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\S+)$/.exec(line.trimEnd());
    if (m === null) continue;
    const idx = Number(m[1]);
    if (idx < 26) table[idx] = m[2];
  }
  return table;
};

export const formatKeywords = (table: KeywordTable): string =>
  table.map((name, i) => (name === undefined ? '' : `${i} ${name}\n`)).join('');

export const readKeywords = (folderDir: string): KeywordTable => {
  const p = join(folderDir, KEYWORDS_FILE);
  return existsSync(p) ? parseKeywords(readFileSync(p, 'utf8')) : [];
};

/** IMAP flag names of a letter string, sorted. Letters the table does not name are dropped, as Dovecot does. */
export const flagsOfLetters = (letters: string, keywords: KeywordTable): string[] => {
  const out = new Set<string>();
  for (const c of letters) {
    const system = FLAG_OF_LETTER.get(c);
    if (system !== undefined) out.add(system);
    else if (c >= 'a' && c <= 'z') {
      const kw = keywords[c.charCodeAt(0) - 97];
      if (kw !== undefined) out.add(kw);
    }
  }
  return [...out].sort();
};

/**
 * Letters for IMAP flag names; keywords missing from `keywords` are appended to it (the caller
 * writes the table back when it grew). Returns the sorted letters.
 */
export const lettersOfFlags = (flags: ReadonlyArray<string>, keywords: KeywordTable): string => {
  let letters = '';
  for (const f of flags) {
    const system = LETTER_OF_FLAG.get(f);
    if (system !== undefined) {
      letters += system;
      continue;
    }
    let idx = keywords.indexOf(f);
    if (idx < 0) {
      idx = keywords.length;
      if (idx >= 26) throw new Error(`more than 26 keywords in one folder: ${f}`);
      keywords.push(f);
    }
    letters += String.fromCharCode(97 + idx);
  }
  return sortLetters(letters);
};

export interface MaildirMessage {
  /** `user@domain`. */
  readonly account: string;
  /** Decoded folder path: `INBOX`, `Sent`, `Projects/2026`, `Entwürfe`. */
  readonly folder: string;
  readonly dir: 'cur' | 'new';
  readonly base: string;
  /** Path relative to the account's Maildir: `.Sent/cur/<name>`, `new/<name>`. */
  readonly file: string;
  readonly size: number;
  /** Received date (INTERNALDATE): the file's mtime in whole milliseconds. */
  readonly mtimeMs: number;
  /** IMAP flags and keyword names, sorted. */
  readonly flags: ReadonlyArray<string>;
  /** Hex SHA-256 of the content; present when listed with `hash: true`. */
  readonly sha256?: string;
}

export interface MaildirFolderListing {
  /** Directory relative to the Maildir: '' for INBOX, `.Projects.2026`. */
  readonly dirName: string;
  readonly messages: MaildirMessage[];
}

export interface MaildirAccountListing {
  readonly maildir: string;
  readonly folders: Record<string, MaildirFolderListing>;
}

/** Accounts by `user@domain`; keys, folders and messages in a stable order. */
export type MaildirListing = Record<string, MaildirAccountListing>;

const dirs = (p: string): string[] =>
  readdirSync(p, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

const hashBuf = Buffer.alloc(1 << 20);

export const sha256File = (path: string): string => {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, hashBuf, 0, hashBuf.length, null);
      if (n === 0) break;
      h.update(hashBuf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
};

export const listFolder = (account: string, maildir: string, dirName: string, folder: string, hash: boolean): MaildirMessage[] => {
  const folderDir = join(maildir, dirName);
  const keywords = readKeywords(folderDir);
  const out: MaildirMessage[] = [];
  for (const dir of ['cur', 'new'] as const) {
    const d = join(folderDir, dir);
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d).sort()) {
      if (name.startsWith('.')) continue;
      const path = join(d, name);
      const st = statSync(path);
      if (!st.isFile()) continue;
      const { base, letters } = parseMessageName(name);
      const entry: MaildirMessage = {
        account,
        folder,
        dir,
        base,
        file: join(dirName, dir, name),
        size: st.size,
        mtimeMs: Math.trunc(st.mtimeMs),
        flags: flagsOfLetters(letters, keywords),
        ...(hash ? { sha256: sha256File(path) } : {}),
      };
      out.push(entry);
    }
  }
  return out;
};

/** Every account under `<root>/<domain>/<user>/Maildir` with its folders and messages. tmp/ is ignored. */
export const listMaildirTree = (root: string, options: { readonly hash: boolean } = { hash: false }): MaildirListing => {
  const listing: MaildirListing = {};
  for (const domain of dirs(root)) {
    for (const user of dirs(join(root, domain))) {
      const maildir = join(root, domain, user, 'Maildir');
      if (!existsSync(join(maildir, 'cur'))) continue;
      const account = `${user}@${domain}`;
      const folders: Record<string, MaildirFolderListing> = {};
      const dirNames = ['', ...dirs(maildir).filter((n) => n.startsWith('.') && existsSync(join(maildir, n, 'cur')))];
      for (const dirName of dirNames) {
        const folder = folderOfDirName(dirName);
        if (folders[folder] !== undefined) throw new Error(`two directories for folder ${folder} in ${maildir}`);
        folders[folder] = { dirName, messages: listFolder(account, maildir, dirName, folder, options.hash) };
      }
      listing[account] = { maildir, folders };
    }
  }
  return listing;
};
