import * as E from 'fp-ts/Either';
import type { SourceError } from '../source';

/*
 * Maildir file names and flags as Dovecot writes them: `<base>:2,<letters>`; D F R S T are
 * the IMAP system flags, P (passed) is shown as the `$Forwarded` keyword, a-z are keywords
 * named in the folder's `dovecot-keywords` file (`<index> <name>`, a = 0). Dovecot itself
 * ignores P and unknown letters, so on writing `$Forwarded` goes to a keyword letter.
 */

const SYSTEM_LETTERS: ReadonlyArray<readonly [string, string]> = [
  ['D', '\\Draft'],
  ['F', '\\Flagged'],
  ['R', '\\Answered'],
  ['S', '\\Seen'],
  ['T', '\\Deleted'],
];
const LETTER_OF = new Map(SYSTEM_LETTERS.map(([l, f]) => [f, l]));
const FLAG_OF = new Map<string, string>([...SYSTEM_LETTERS, ['P', '$Forwarded']]);
export const MAX_KEYWORDS = 26;
export const KEYWORDS_FILE = 'dovecot-keywords';

/** Keyword names by index (0 = `a`); a hole is an index the file does not name. */
export type KeywordTable = ReadonlyArray<string | undefined>;

export interface ParsedName {
  /** The stable part: everything before the last `:` (the whole name in new/). */
  readonly base: string;
  /** The letters after `:2,` up to an optional second flag set (`,`), or '' when none. */
  readonly letters: string;
}

export const parseFileName = (name: string): ParsedName => {
  const colon = name.lastIndexOf(':');
  if (colon < 0) return { base: name, letters: '' };
  const info = name.slice(colon + 1);
  if (!info.startsWith('2,')) return { base: name.slice(0, colon), letters: '' };
  const rest = info.slice(2);
  const comma = rest.indexOf(',');
  return { base: name.slice(0, colon), letters: comma < 0 ? rest : rest.slice(0, comma) };
};

/**
 * The IMAP flags of a file name, sorted. A keyword letter missing from the table carries no
 * name (Dovecot shows nothing for it either), so it is left out.
 */
export const decodeFlags = (letters: string, keywords: KeywordTable): string[] => {
  const out = new Set<string>();
  for (const c of letters) {
    const system = FLAG_OF.get(c);
    if (system !== undefined) out.add(system);
    else if (c >= 'a' && c <= 'z') {
      const kw = keywords[c.charCodeAt(0) - 97];
      if (kw !== undefined) out.add(kw);
    }
  }
  return [...out].sort();
};

/** `dovecot-keywords`: lines `<index> <name>`; Dovecot skips lines it cannot read, so do we. */
export const parseKeywordsFile = (text: string): KeywordTable => {
  const table: Array<string | undefined> = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\S+)$/.exec(line.trimEnd());
    if (m === null) continue;
    const idx = Number(m[1]);
    if (idx < MAX_KEYWORDS) table[idx] = m[2];
  }
  return table;
};

export const formatKeywordsFile = (table: KeywordTable): string =>
  table.map((name, i) => (name === undefined ? '' : `${i} ${name}\n`)).join('');

/** An IMAP atom (RFC 3501): no space, control character or atom-special. */
const isKeyword = (flag: string): boolean =>
  flag !== '' && [...flag].every((c) => c.charCodeAt(0) > 0x20 && c.charCodeAt(0) !== 0x7f && !'\\()[]{}%*"'.includes(c));

/**
 * The letters for a set of IMAP flags, in ASCII order (the Maildir rule), and the keyword
 * table extended with the keywords it did not know yet.
 */
export const encodeFlags = (
  flags: ReadonlyArray<string>,
  table: KeywordTable,
  key: string,
): E.Either<SourceError, { readonly letters: string; readonly table: KeywordTable }> => {
  const letters: string[] = [];
  const next = [...table];
  for (const flag of new Set(flags)) {
    if (flag === '\\Recent') continue; // session state, never stored
    const system = LETTER_OF.get(flag);
    if (system !== undefined) {
      letters.push(system);
      continue;
    }
    if (flag.startsWith('\\') || !isKeyword(flag)) {
      return E.left({ _tag: 'SourceInvalid', op: 'writeMessage', key, message: `flag "${flag}" cannot be stored in a Maildir` });
    }
    let idx = next.indexOf(flag);
    if (idx < 0) {
      idx = next.findIndex((n) => n === undefined);
      if (idx < 0) idx = next.length;
      if (idx >= MAX_KEYWORDS) {
        return E.left({
          _tag: 'TargetConflict',
          op: 'writeMessage',
          key,
          message: `folder already has ${MAX_KEYWORDS} keywords, no letter left for "${flag}"`,
        });
      }
      next[idx] = flag;
    }
    letters.push(String.fromCharCode(97 + idx));
  }
  return E.right({ letters: letters.sort().join(''), table: next });
};
