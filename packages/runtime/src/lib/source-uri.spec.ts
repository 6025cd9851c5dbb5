import * as E from 'fp-ts/Either';
import { parseSourceUri } from './source-uri';

describe('parseSourceUri', () => {
  it('reads a maildir root and an optional passwd-file', () => {
    expect(parseSourceUri('maildir:/var/vmail')).toEqual(E.right({ scheme: 'maildir', root: '/var/vmail' }));
    expect(parseSourceUri('maildir:/var/vmail/?passwd=/etc/dovecot/users')).toEqual(
      E.right({ scheme: 'maildir', root: '/var/vmail/', passwdFile: '/etc/dovecot/users' }),
    );
  });
  it('refuses relative paths, unknown schemes and options with a message naming them', () => {
    const relative = parseSourceUri('maildir:vmail');
    expect(E.isLeft(relative) && relative.left).toContain('absolute');
    const imap = parseSourceUri('imap://host');
    expect(E.isLeft(imap) && imap.left).toContain('imap');
    const option = parseSourceUri('maildir:/v?depth=2');
    expect(E.isLeft(option) && option.left).toContain('depth');
    expect(E.isLeft(parseSourceUri('/var/vmail'))).toBe(true);
  });
});
