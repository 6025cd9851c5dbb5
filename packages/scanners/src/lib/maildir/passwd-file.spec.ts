import { formatPasswdLine, parsePasswdFile, quotaBytesOfRule, upsertPasswdLine } from './passwd-file';
import { expectLeft, expectRight } from './spec-support';

const FILE = [
  '# users',
  'alice@alpha.test:{SHA512-CRYPT}$6$abc$def::::::',
  'Bob@Alpha.test:{PLAIN}x:1001:1001:Bob Example:/home/bob::userdb_quota_rule=*:storage=2G userdb_mail=maildir:~/M nologin',
  'carol@beta.test:{PLAIN}y',
  '',
].join('\n');

describe('Dovecot passwd-file', () => {
  it('decodes users, hashes, quota and extra fields', () => {
    const entries = expectRight(parsePasswdFile('/etc/users', FILE));
    expect(entries.map((e) => e.account)).toEqual(['alice@alpha.test', 'bob@alpha.test', 'carol@beta.test']);
    const [alice, bob, carol] = entries;
    expect(alice?.meta).toEqual({ kind: 'account', address: 'alice@alpha.test', status: 'active', settings: {}, sourceKey: 'alice@alpha.test', passwordHash: '{SHA512-CRYPT}$6$abc$def' });
    expect(bob?.meta.quotaBytes).toBe(2 * 1024 ** 3);
    expect(bob?.meta.status).toBe('locked');
    expect(bob?.meta.displayName).toBe('Bob Example');
    expect(bob?.meta.settings).toEqual({
      'passwd.uid': '1001',
      'passwd.gid': '1001',
      'passwd.gecos': 'Bob Example',
      'passwd.home': '/home/bob',
      'passwd.extra.userdb_quota_rule': '*:storage=2G',
      'passwd.extra.userdb_mail': 'maildir:~/M',
      'passwd.extra.nologin': '',
    });
    expect(carol?.line).toBe(4);
  });

  it('names the bad line', () => {
    const noDomain = expectLeft(parsePasswdFile('/etc/users', 'alice@alpha.test:{PLAIN}x\nbob:{PLAIN}y\n'));
    expect(noDomain).toMatchObject({ _tag: 'SourceInvalid', key: '/etc/users:2' });
    expect(noDomain.message).toContain('line 2');
    expect(expectLeft(parsePasswdFile('f', 'a@b.test:x\nA@b.test:y\n'))).toMatchObject({ _tag: 'SourceInvalid', key: 'f:2' });
    expect(expectLeft(parsePasswdFile('f', '\n\na@b.test:x:1:1::::userdb_quota_rule=*:storage=lots\n'))).toMatchObject({ key: 'f:3' });
    expect(expectLeft(parsePasswdFile('f', 'a@b.test:x:one two:1\n'))).toMatchObject({ key: 'f:1' });
  });

  it('reads quota rules like Dovecot (storage in KiB by default, bytes in bytes)', () => {
    expect(quotaBytesOfRule('*:storage=1024')).toBe(1024 * 1024);
    expect(quotaBytesOfRule('*:storage=10M')).toBe(10 * 1024 ** 2);
    expect(quotaBytesOfRule('*:bytes=5000')).toBe(5000);
    expect(quotaBytesOfRule('*:storage=+10%')).toBeUndefined();
  });

  it('writes back the same line and updates a password hash in place', () => {
    const entries = expectRight(parsePasswdFile('f', FILE));
    for (const e of entries) {
      const line = formatPasswdLine(e.account, e.meta);
      expect(expectRight(parsePasswdFile('f', line))[0]?.meta).toEqual(e.meta);
    }
    const bob = entries[1]?.meta;
    if (bob === undefined) throw new Error('no bob');
    expect(upsertPasswdLine(FILE, 'bob@alpha.test' as never, bob)).toBeUndefined();
    const changed = upsertPasswdLine(FILE, 'bob@alpha.test' as never, { ...bob, passwordHash: '{PLAIN}new' }) as string;
    expect(changed.split('\n')[2]).toBe(FILE.split('\n')[2]?.replace('{PLAIN}x', '{PLAIN}new'));
    const added = upsertPasswdLine(FILE, 'dave@beta.test' as never, { kind: 'account', address: 'dave@beta.test', status: 'active', settings: {}, passwordHash: '{PLAIN}d', quotaBytes: 1000 }) as string;
    const dave = expectRight(parsePasswdFile('f', added)).find((e) => e.account === 'dave@beta.test');
    expect(dave?.meta).toMatchObject({ passwordHash: '{PLAIN}d', quotaBytes: 1000 });
  });
});
