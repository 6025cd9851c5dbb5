import * as E from 'fp-ts/Either';
import type { SourceError } from '../source';
import { decodeMailboxName, encodeMailboxName } from './mutf7';

/*
 * Maildir++ folder keys: the on-disk directory name under `Maildir/` ('' for INBOX,
 * `.Projects.2026` for "Projects/2026"), each segment in modified UTF-7.
 */

export const INBOX_KEY = '';
export const SUBSCRIPTIONS_FILE = 'subscriptions';

/**
 * The IMAP path of a folder key. A segment that is not valid modified UTF-7 (written by a
 * tool other than Dovecot) is shown as it is on disk rather than failing the whole scan.
 */
export const folderKeyToPath = (key: string): string => {
  if (key === INBOX_KEY) return 'INBOX';
  return key
    .slice(1)
    .split('.')
    .map((seg) => E.getOrElse(() => seg)(decodeMailboxName(seg)))
    .join('/');
};

/** The folder key of an IMAP path (`/` separated); `.` cannot be stored in a Maildir++ name. */
export const pathToFolderKey = (path: string, op: string): E.Either<SourceError, string> => {
  const segments = path.split('/');
  if (segments.length === 1 && path.toUpperCase() === 'INBOX') return E.right(INBOX_KEY);
  if (segments[0] !== undefined && segments[0].toUpperCase() === 'INBOX') segments[0] = 'INBOX';
  for (const seg of segments) {
    if (seg === '' || seg.includes('.')) {
      return E.left({
        _tag: 'SourceInvalid',
        op,
        key: path,
        message: `folder path "${path}" cannot be stored in Maildir++ (empty segment or "." in a name)`,
      });
    }
  }
  return E.right('.' + segments.map(encodeMailboxName).join('.'));
};

/** Is this directory entry of `Maildir/` a folder (Maildir++: every dot-directory is one)? */
export const isFolderDirName = (name: string): boolean => name.startsWith('.') && name !== '.' && name !== '..';

const V2_HEADER = 'V\t2\n\n';

// Dovecot's tab escaping (str_append_tabescaped): \001 is the escape character.
const ESC = String.fromCharCode(1);
const UNESCAPED: Record<string, string> = { '1': ESC, t: '\t', r: '\r', n: '\n' };
const ESCAPED: Record<string, string> = { [ESC]: `${ESC}1`, '\t': `${ESC}t`, '\r': `${ESC}r`, '\n': `${ESC}n` };
const untab = (s: string): string => s.split(ESC).map((part, i) => (i === 0 || part === '' ? part : (UNESCAPED[part[0] as string] ?? part[0]) + part.slice(1))).join('');
const tab = (s: string): string => [...s].map((c) => ESCAPED[c] ?? c).join('');

/**
 * The folder keys listed in Dovecot's `subscriptions` file. Version 2 (`V\t2` header) separates
 * the segments of a storage name with tabs; older files use the storage separator `.`.
 */
export const parseSubscriptions = (text: string): ReadonlySet<string> => {
  const v2 = text.startsWith(V2_HEADER);
  const body = v2 ? text.slice(V2_HEADER.length) : text;
  const keys = new Set<string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const segments = v2 ? line.split('\t').map(untab) : line.split('.');
    keys.add(segments.length === 1 && segments[0]?.toUpperCase() === 'INBOX' ? INBOX_KEY : '.' + segments.join('.'));
  }
  return keys;
};

/** The `subscriptions` file with `key` added (kept in version 2 form, as Dovecot 2.3 writes it). */
export const addSubscription = (text: string | undefined, key: string): string | undefined => {
  const current = text === undefined ? new Set<string>() : parseSubscriptions(text);
  if (current.has(key)) return undefined;
  const line = key === INBOX_KEY ? 'INBOX' : key.slice(1).split('.').map(tab).join('\t');
  if (text === undefined || text === '') return `${V2_HEADER}${line}\n`;
  if (!text.startsWith(V2_HEADER)) return `${text}${text.endsWith('\n') ? '' : '\n'}${key === INBOX_KEY ? 'INBOX' : key.slice(1)}\n`;
  return `${text}${text.endsWith('\n') ? '' : '\n'}${line}\n`;
};
