import * as E from 'fp-ts/Either';
import * as path from 'node:path';

/** A source or restore target as the administrator names it, e.g. `maildir:/var/vmail?passwd=/etc/dovecot/users`. */
export type SourceUri = { readonly scheme: 'maildir'; readonly root: string; readonly passwdFile?: string };

/**
 * Parses `maildir:<absolute path>[?passwd=<passwd-file>]`. Relative paths are refused so that a
 * URI stored in the configuration means the same thing from any working directory.
 */
export const parseSourceUri = (raw: string): E.Either<string, SourceUri> => {
  const match = /^([a-z]+):(.*)$/.exec(raw.trim());
  if (!match) return E.left(`"${raw}" is not a source URI: use maildir:/path/to/vmail[?passwd=/path/to/passwd-file]`);
  const [, scheme, rest = ''] = match;
  if (scheme !== 'maildir') {
    return E.left(`source scheme "${scheme}" is not supported yet: use maildir:/path/to/vmail`);
  }
  const [rootPart = '', query = ''] = rest.split('?', 2);
  if (!path.isAbsolute(rootPart)) return E.left(`the maildir root in "${raw}" must be an absolute path`);
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (key !== 'passwd') return E.left(`unknown option "${key}" in "${raw}": only passwd=<file> is accepted`);
  }
  const passwd = params.get('passwd');
  if (passwd !== null && !path.isAbsolute(passwd)) return E.left(`the passwd file in "${raw}" must be an absolute path`);
  return E.right({ scheme: 'maildir', root: path.normalize(rootPart), ...(passwd ? { passwdFile: path.normalize(passwd) } : {}) });
};
