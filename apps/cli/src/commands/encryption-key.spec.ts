import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runInProcess } from '../run-in-process.spec-helper';

const NOW = () => Date.UTC(2026, 1, 10, 12, 0, 0);
let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-cli-key-'));
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('generateEncryptionKey', () => {
  it('writes a key file with mode 0600, prints its fingerprint and the reminder, never the key', async () => {
    const file = path.join(dir, 'zxbackup.key');
    const r = await runInProcess(['generateEncryptionKey', file], NOW);
    expect(r.code).toBe(0);
    const text = await fs.readFile(file, 'utf8');
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect(r.out).toMatch(/fingerprint [0-9a-f]{16}/);
    expect(r.out).toContain('keep a copy of this file off this server');
    expect(r.out + r.err).not.toContain(text.trim());
  });

  it('refuses to overwrite an existing file (exit 2) and leaves it as it was', async () => {
    const file = path.join(dir, 'zxbackup.key');
    await fs.writeFile(file, 'precious', { mode: 0o600 });
    const r = await runInProcess(['generateEncryptionKey', file], NOW);
    expect(r.code).toBe(2);
    expect(r.err).toContain('exists already');
    expect(await fs.readFile(file, 'utf8')).toBe('precious');
  });

  it('--json prints the path and fingerprint', async () => {
    const file = path.join(dir, 'k');
    const r = await runInProcess(['--json', 'generateEncryptionKey', file], NOW);
    expect(r.json()).toEqual({ keyFile: file, keyId: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  it('the volume commands document --encryption-key-file with examples', async () => {
    for (const cmd of ['setBackupVolume', 'migrateBackupVolume', 'retrieveMetadataFromArchive', 'generateEncryptionKey']) {
      const r = await runInProcess([cmd, '--help'], NOW);
      expect(r.out).toContain('--encryption-key-file');
    }
  });

  it('the Local volume refuses --encryption-key-file; S3 refuses a bad key file before touching anything', async () => {
    const local = await runInProcess(['--backup-path', path.join(dir, 'bp'), 'setBackupVolume', 'Local', dir, '--encryption-key-file', path.join(dir, 'k')], NOW);
    expect(local.code).toBe(2);
    expect(local.err).toContain('S3 only');
    const bad = path.join(dir, 'bad.key');
    await fs.writeFile(bad, 'not a key', { mode: 0o600 });
    const s3 = await runInProcess(
      ['--backup-path', path.join(dir, 'bp'), 'setBackupVolume', 'S3', '--bucket-configuration-id', 'x', '--encryption-key-file', bad],
      NOW,
    );
    expect(s3.code).toBe(2);
    expect(s3.err).toContain('not one line of base64');
    expect(await fs.readdir(dir)).toEqual(['bad.key']);
  });
});
