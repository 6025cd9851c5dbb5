import { createHmac } from 'node:crypto';
import { promises as fsp, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { inspect } from 'node:util';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { mailLikeText, pseudoRandomBytes, readAll } from '@zxbackup/volume-contract/testing';
import {
  CHUNK_SIZE,
  EncryptionFailure,
  HEADER_SIZE,
  decryptStream,
  describeEncryptionError,
  encryptStream,
  encryptedSize,
  encryptionErrorOf,
  generateKeyFile,
  keyFromBytes,
  loadKeyFile,
  parseKeyFile,
  plaintextSize,
  type EncryptionError,
  type EncryptionKey,
} from './encryption';

const SEGMENT = CHUNK_SIZE + 16;

const keyOf = (fill: number): EncryptionKey => {
  const k = keyFromBytes(Buffer.alloc(32, fill));
  if (E.isLeft(k)) throw new Error('bad test key');
  return k.right;
};
const KEY = keyOf(1);
const OTHER = keyOf(2);

/** Writes `bytes` into `t` in pieces of `piece` bytes, reads everything out. */
const run = async (t: Transform, bytes: Buffer, piece = 7919): Promise<Buffer> => {
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += piece) pieces.push(bytes.subarray(i, i + piece));
  return readAll(Readable.from(pieces).pipe(t));
};

/** What decryption yields before it fails, and the failure. */
const decryptFailure = async (sealed: Buffer, key = KEY): Promise<{ readonly out: number; readonly error: EncryptionError }> => {
  const d = decryptStream(key, { name: 'items/x' });
  let out = 0;
  d.on('data', (c: Buffer) => void (out += c.length));
  const error = await new Promise<unknown>((resolve) => {
    d.once('error', resolve);
    d.once('end', () => resolve(undefined));
    d.end(sealed);
  });
  const enc = encryptionErrorOf(error);
  if (enc === undefined) throw new Error(`expected an encryption failure, got ${String(error)}`);
  return { out, error: enc };
};

const right = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};
const left = async <L, A>(te: TE.TaskEither<L, A>): Promise<L> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected Left, got Right');
  return r.left;
};

describe('stream encryption (AES-256-GCM, STREAM construction)', () => {
  it.each([0, 1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 12345])(
    'round trip of %i bytes; the stored size is encryptedSize, and plaintextSize inverts it',
    async (n) => {
      const plain = pseudoRandomBytes(n, n + 1);
      const sealed = await run(encryptStream(KEY), plain);
      expect(sealed.length).toBe(encryptedSize(n));
      expect(sealed.length).toBe(n + HEADER_SIZE + 16 * Math.max(1, Math.ceil(n / CHUNK_SIZE)));
      expect(plaintextSize(sealed.length)).toBe(n);
      expect(sealed.subarray(0, 4).toString('latin1')).toBe('ZXBE');
      expect((await run(decryptStream(KEY), sealed, 1000)).equals(plain)).toBe(true);
      // Fed in one piece, and byte by byte around the header, it reads the same.
      expect((await run(decryptStream(KEY), sealed, sealed.length)).equals(plain)).toBe(true);
    },
  );

  it('plaintextSize inverts encryptedSize everywhere and rejects impossible sizes', () => {
    for (let n = 0; n < 3 * CHUNK_SIZE + 50; n += n < 200 ? 1 : 997) expect(plaintextSize(encryptedSize(n))).toBe(n);
    for (const n of [CHUNK_SIZE * 5, CHUNK_SIZE * 5 + 1, 10 ** 12]) expect(plaintextSize(encryptedSize(n))).toBe(n);
    // Shorter than header + tag, and a last segment too short to hold a tag.
    for (const bad of [0, 1, HEADER_SIZE, HEADER_SIZE + 15, HEADER_SIZE + SEGMENT + 1, HEADER_SIZE + SEGMENT + 15, -5, 1.5])
      expect(plaintextSize(bad)).toBeUndefined();
  });

  it('the same plaintext is sealed differently each time, and no plaintext shows', async () => {
    const marker = 'MARKER-OF-A-SECRET-MAIL';
    const plain = Buffer.from(`${marker} `.repeat(20_000));
    const a = await run(encryptStream(KEY), plain);
    const b = await run(encryptStream(KEY), plain);
    expect(a.equals(b)).toBe(false);
    expect(a.subarray(8, 16).equals(b.subarray(8, 16))).toBe(true); // same key id
    for (const sealed of [a, b]) {
      expect(sealed.includes(marker)).toBe(false);
      expect(sealed.includes(Buffer.from(marker).toString('base64').slice(0, 16))).toBe(false);
    }
  });

  it('the key id is the first 8 bytes of HMAC-SHA256(key, "zxbackup key id"), and sits in the header', async () => {
    const expected = createHmac('sha256', Buffer.alloc(32, 1)).update('zxbackup key id').digest().subarray(0, 8).toString('hex');
    expect(KEY.id).toBe(expected);
    expect(OTHER.id).not.toBe(KEY.id);
    const sealed = await run(encryptStream(KEY), Buffer.from('x'));
    expect(sealed.subarray(8, 16).toString('hex')).toBe(expected);
  });

  it('a wrong key is told apart, with both fingerprints, before any byte is passed on', async () => {
    const sealed = await run(encryptStream(KEY), mailLikeText(200_000, 3));
    const { out, error } = await decryptFailure(sealed, OTHER);
    expect(out).toBe(0);
    expect(error).toMatchObject({ _tag: 'WrongKey', expected: OTHER.id, found: KEY.id, key: 'items/x' });
    expect(describeEncryptionError(error)).toContain(`wrong key (fingerprint ${OTHER.id}, the object was sealed with ${KEY.id})`);
  });

  it('an unencrypted object is NotEncrypted, even a short one', async () => {
    expect((await decryptFailure(mailLikeText(100_000, 4))).error._tag).toBe('NotEncrypted');
    expect((await decryptFailure(Buffer.from('hello'))).error._tag).toBe('NotEncrypted');
    expect((await decryptFailure(Buffer.alloc(0))).error._tag).toBe('CiphertextCorrupt');
  });

  describe('tampering is detected and nothing unauthenticated is passed on', () => {
    const plain = pseudoRandomBytes(3 * CHUNK_SIZE + 1000, 5); // 4 chunks
    let sealed: Buffer;
    beforeAll(async () => {
      sealed = await run(encryptStream(KEY), plain);
    });
    const seg = (i: number): Buffer => sealed.subarray(HEADER_SIZE + i * SEGMENT, HEADER_SIZE + (i + 1) * SEGMENT);
    const header = (): Buffer => sealed.subarray(0, HEADER_SIZE);
    const corrupt = async (bytes: Buffer): Promise<{ out: number; error: EncryptionError }> => {
      const r = await decryptFailure(bytes);
      expect(r.error._tag).toBe('CiphertextCorrupt');
      return r;
    };

    it('a flipped bit in chunk 2: chunks 0 and 1 were passed on, not chunk 2', async () => {
      const b = Buffer.from(sealed);
      const at = HEADER_SIZE + 2 * SEGMENT + 100;
      b[at] = (b[at] ?? 0) ^ 1;
      const { out, error } = await corrupt(b);
      expect(out).toBe(2 * CHUNK_SIZE);
      expect(describeEncryptionError(error)).toContain('corrupt or was tampered with: chunk 2 failed authentication');
    });
    it('a flipped bit in a tag', async () => {
      const b = Buffer.from(sealed);
      b[b.length - 1] = (b[b.length - 1] ?? 0) ^ 0x80;
      await corrupt(b);
    });
    it('a changed header byte (salt, nonce prefix, reserved)', async () => {
      for (const at of [5, 20, HEADER_SIZE - 1]) {
        const b = Buffer.from(sealed);
        b[at] = (b[at] ?? 0) ^ 1;
        expect((await corrupt(b)).out).toBe(0);
      }
    });
    it('truncated at a chunk boundary (the last chunk dropped)', async () => {
      await corrupt(Buffer.concat([header(), seg(0), seg(1), seg(2)]));
    });
    it('truncated inside a chunk, and inside the header', async () => {
      await corrupt(sealed.subarray(0, sealed.length - 5));
      await corrupt(sealed.subarray(0, HEADER_SIZE - 3));
      await corrupt(sealed.subarray(0, HEADER_SIZE + 10));
    });
    it('a chunk dropped from the middle', async () => {
      await corrupt(Buffer.concat([header(), seg(0), seg(2), seg(3)]));
    });
    it('two chunks swapped', async () => {
      await corrupt(Buffer.concat([header(), seg(1), seg(0), seg(2), seg(3)]));
    });
    it('bytes appended after the final chunk, or a whole chunk of another object', async () => {
      await corrupt(Buffer.concat([sealed, Buffer.from('more')]));
      const other = await run(encryptStream(KEY), plain);
      await corrupt(Buffer.concat([header(), seg(0), other.subarray(HEADER_SIZE + SEGMENT, HEADER_SIZE + 2 * SEGMENT), seg(2), seg(3)]));
    });
    it('the intact object still decrypts', async () => {
      expect((await run(decryptStream(KEY), sealed)).equals(plain)).toBe(true);
    });
  });

  it('an error of the plaintext source reaches the reader of the encrypted stream', async () => {
    const source = new Readable({ read: () => undefined });
    const e = encryptStream(KEY);
    source.pipe(e);
    source.push(Buffer.alloc(100_000));
    const failed = readAll(e).then(
      () => undefined,
      (err: unknown) => err,
    );
    e.destroy(new Error('disk gone'));
    expect(String(await failed)).toContain('disk gone');
  });
});

describe('key files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'zxb-keys-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('generateKeyFile writes one base64 line, mode 0600; loadKeyFile reads the same key', async () => {
    const file = path.join(dir, 'backup.key');
    const made = await right(generateKeyFile(file));
    const st = await fsp.stat(file);
    expect(st.mode & 0o777).toBe(0o600);
    const text = await fsp.readFile(file, 'utf8');
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    const loaded = await right(loadKeyFile(file));
    expect(loaded.id).toBe(made.id);
    // The loaded key opens what the generated one sealed.
    const sealed = await run(encryptStream(made), Buffer.from('secret mail'));
    expect((await run(decryptStream(loaded), sealed)).toString()).toBe('secret mail');
  });

  it('never overwrites a key file', async () => {
    const file = path.join(dir, 'backup.key');
    await right(generateKeyFile(file));
    const before = await fsp.readFile(file, 'utf8');
    const e = await left(generateKeyFile(file));
    expect(e).toMatchObject({ _tag: 'KeyFileError', op: 'generateKey', key: file });
    expect(describeEncryptionError(e)).toContain('exists already');
    expect(await fsp.readFile(file, 'utf8')).toBe(before);
  });

  it('the key bytes never show in JSON, inspect or an error', async () => {
    const file = path.join(dir, 'k');
    const key = await right(generateKeyFile(file));
    const b64 = (await fsp.readFile(file, 'utf8')).trim();
    const hex = Buffer.from(b64, 'base64').toString('hex');
    for (const shown of [JSON.stringify(key), inspect(key, { showHidden: true, depth: 5 }), String(key)]) {
      expect(shown).not.toContain(b64);
      expect(shown).not.toContain(hex);
    }
    expect(JSON.parse(JSON.stringify(key))).toEqual({ id: key.id });
    // A key file with one byte too many: the error names the file and the size, not the content.
    const long = path.join(dir, 'long');
    const content = Buffer.concat([Buffer.from(b64, 'base64'), Buffer.from([1, 2, 3])]).toString('base64');
    await fsp.writeFile(long, content, { mode: 0o600 });
    const e = await left(loadKeyFile(long));
    const text = `${describeEncryptionError(e)} ${JSON.stringify(e)}`;
    expect(text).toContain('35 bytes');
    expect(text).not.toContain(content);
  });

  it.each([
    ['empty', '', 'is empty'],
    ['not base64', 'this is not a key!!', 'not one line of base64'],
    ['two lines', `${Buffer.alloc(32).toString('base64')}\n${Buffer.alloc(32).toString('base64')}`, 'not one line of base64'],
    ['too short', Buffer.alloc(16, 1).toString('base64'), 'holds 16 bytes'],
  ])('a key file that is %s is refused and says why', async (_label, content, why) => {
    const file = path.join(dir, 'bad.key');
    await fsp.writeFile(file, content, { mode: 0o600 });
    const e = await left(loadKeyFile(file));
    expect(e._tag).toBe('KeyFileError');
    expect(describeEncryptionError(e)).toContain(why);
    expect(parseKeyFile(content, file)._tag).toBe('Left');
  });

  it('a key file others may read is refused; a missing one says it cannot be read', async () => {
    const file = path.join(dir, 'open.key');
    await right(generateKeyFile(file));
    await fsp.chmod(file, 0o644);
    expect(describeEncryptionError(await left(loadKeyFile(file)))).toContain('chmod 600');
    expect(describeEncryptionError(await left(loadKeyFile(path.join(dir, 'missing.key'))))).toContain('cannot be read (ENOENT)');
  });

  it('an EncryptionFailure carries its tagged error through causes', () => {
    const err: EncryptionError = { _tag: 'NotEncrypted', op: 'decrypt', key: 'k' };
    const wrapped = { _tag: 'VolumeIOError', cause: { volumeError: { cause: new EncryptionFailure(err) } } };
    expect(encryptionErrorOf(wrapped)).toEqual(err);
    expect(encryptionErrorOf(new Error('other'))).toBeUndefined();
  });
});
