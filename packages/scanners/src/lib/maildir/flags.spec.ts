import { decodeFlags, encodeFlags, formatKeywordsFile, parseFileName, parseKeywordsFile } from './flags';
import { addSubscription, folderKeyToPath, parseSubscriptions, pathToFolderKey } from './folders';
import { expectLeft, expectRight } from './spec-support';

describe('Maildir file names and flags', () => {
  it('splits base and flag letters', () => {
    expect(parseFileName('1700.M1P2.host,S=18,W=21:2,Sabc')).toEqual({ base: '1700.M1P2.host,S=18,W=21', letters: 'Sabc' });
    expect(parseFileName('1700.M1P2.host')).toEqual({ base: '1700.M1P2.host', letters: '' });
    expect(parseFileName('1700.x:2,FS,XYZ')).toEqual({ base: '1700.x', letters: 'FS' });
    expect(parseFileName('1700.x:1,whatever')).toEqual({ base: '1700.x', letters: '' });
  });

  it('decodes system flags, P as $Forwarded and keyword letters through dovecot-keywords', () => {
    const table = parseKeywordsFile('0 $label1\n1 Urgent\nnonsense line\n3 $Junk\n');
    expect(decodeFlags('DFPRSTabcd', table)).toEqual(['$Forwarded', '$Junk', '$label1', 'Urgent', '\\Answered', '\\Deleted', '\\Draft', '\\Flagged', '\\Seen'].sort());
    expect(decodeFlags('Sd', table)).toEqual(['$Junk', '\\Seen']);
    expect(decodeFlags('', table)).toEqual([]);
  });

  it('encodes flags in ASCII order and extends the keyword table', () => {
    const r = expectRight(encodeFlags(['\\Seen', 'Urgent', '\\Answered', '$Forwarded', '\\Recent', '\\Draft'], parseKeywordsFile('0 Urgent\n'), 'k'));
    expect(r.letters).toBe('DRSab');
    expect(formatKeywordsFile(r.table)).toBe('0 Urgent\n1 $Forwarded\n');
    expect(decodeFlags(r.letters, r.table)).toEqual(['$Forwarded', 'Urgent', '\\Answered', '\\Draft', '\\Seen']);
  });

  it('refuses a 27th keyword and unknown system flags', () => {
    const full = Array.from({ length: 26 }, (_, i) => `kw${i}`);
    expect(expectRight(encodeFlags(['kw25'], full, 'k')).letters).toBe('z');
    expect(expectLeft(encodeFlags(['one-more'], full, 'k'))._tag).toBe('TargetConflict');
    expect(expectLeft(encodeFlags(['\\Bogus'], [], 'k'))._tag).toBe('SourceInvalid');
    expect(expectLeft(encodeFlags(['two words'], [], 'k'))._tag).toBe('SourceInvalid');
  });
});

describe('folder keys and subscriptions', () => {
  it('maps dot-directories to IMAP paths and back', () => {
    expect(folderKeyToPath('')).toBe('INBOX');
    expect(folderKeyToPath('.Projects.2026')).toBe('Projects/2026');
    expect(folderKeyToPath('.Entw&APw-rfe')).toBe('Entwürfe');
    expect(folderKeyToPath('.A&-B')).toBe('A&B');
    expect(folderKeyToPath('.bad&xyz')).toBe('bad&xyz');
    expect(expectRight(pathToFolderKey('inbox', 'op'))).toBe('');
    expect(expectRight(pathToFolderKey('Projects/2026', 'op'))).toBe('.Projects.2026');
    expect(expectRight(pathToFolderKey('Entwürfe/A&B', 'op'))).toBe('.Entw&APw-rfe.A&-B');
    expect(expectRight(pathToFolderKey('inbox/x', 'op'))).toBe('.INBOX.x');
    expect(expectLeft(pathToFolderKey('v1.2', 'op'))._tag).toBe('SourceInvalid');
    expect(expectLeft(pathToFolderKey('a//b', 'op'))._tag).toBe('SourceInvalid');
  });

  it('reads and extends Dovecot 2.3 subscriptions files', () => {
    // As Dovecot 2.3.19 wrote it for Entwürfe, Projects/2026 and A&B.
    const dovecot = 'V\t2\n\nEntw&APw-rfe\nProjects\t2026\nA&-B\n';
    expect([...parseSubscriptions(dovecot)].sort()).toEqual(['.A&-B', '.Entw&APw-rfe', '.Projects.2026']);
    expect([...parseSubscriptions('INBOX\nSent\nProjects.2026\n')].sort()).toEqual(['', '.Projects.2026', '.Sent']);
    expect(addSubscription(dovecot, '.Projects.2026')).toBeUndefined();
    const more = addSubscription(dovecot, '.Archive.2025') as string;
    expect(more).toBe(dovecot + 'Archive\t2025\n');
    expect(parseSubscriptions(addSubscription(undefined, '.X.Y') as string)).toEqual(new Set(['.X.Y']));
    // Dovecot escapes tabs (and its escape character \x01) inside a segment.
    const odd = '.tab\there.esc\x01ape';
    expect(addSubscription(undefined, odd)).toBe('V\t2\n\ntab\x01there\tesc\x011ape\n');
    expect(parseSubscriptions(addSubscription(undefined, odd) as string)).toEqual(new Set([odd]));
  });
});
