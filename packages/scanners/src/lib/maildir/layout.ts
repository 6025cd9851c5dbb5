import { join } from 'node:path';
import { AccountId } from '@zxbackup/item-store';

/* Where an account lives in a Dovecot-style tree: `<root>/<domain>/<user>/Maildir`. */

export const MAILDIR = 'Maildir';

export interface AccountPaths {
  readonly domain: string;
  readonly user: string;
  readonly home: string;
  readonly maildir: string;
}

export const accountPaths = (root: string, account: AccountId): AccountPaths => {
  const at = account.lastIndexOf('@');
  const user = account.slice(0, at);
  const domain = account.slice(at + 1);
  const home = join(root, domain, user);
  return { domain, user, home, maildir: join(home, MAILDIR) };
};

/** The account of a `<domain>/<user>` pair of directory names, if they name one exactly. */
export const accountOfDirs = (domain: string, user: string): AccountId | undefined => {
  const id = `${user}@${domain}`;
  return AccountId.is(id) && id === id.toLowerCase() && !user.includes('@') ? id : undefined;
};
