import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';

/*
 * Client-side encryption of objects (blobs, metadata archives), so a bucket holds nothing
 * readable. A streaming AEAD in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár
 * 2015; the layout of Tink's AES-GCM-HKDF streaming AEAD):
 *
 *   header   "ZXBE" | version 1 | 3 zero bytes | key id (8) | salt (16) | nonce prefix (8)   = 40 bytes
 *   chunks   AES-256-GCM(plaintext chunk of 64 KiB, the last one 0..64 KiB) | tag (16)
 *
 * Each object has its own AES key, HKDF-SHA256(master key, salt): random 8-byte nonce prefixes
 * alone would repeat under one key after ~2^32 objects, and a repeated GCM nonce is fatal.
 * Chunk i's nonce is prefix | i (uint32, big-endian); its AAD is the header | final flag (1 for
 * the last chunk), so a reordered, dropped, truncated or appended chunk, or a changed header,
 * fails authentication. An empty plaintext still has one (final, empty) chunk. Memory stays
 * at about one chunk per stream. The key id (first 8 bytes of HMAC-SHA256(key, "zxbackup key
 * id")) names the key without revealing it, so a wrong key is told apart from a damaged object.
 *
 * Size: ciphertext = plaintext + 40 + 16 × max(1, ⌈plaintext / 65536⌉), a function of the
 * plaintext size only, so `stat`/`list` report plaintext sizes and size checks keep working.
 */

export const CHUNK_SIZE = 64 * 1024;
const MAGIC = Buffer.from('ZXBE', 'latin1');
const VERSION = 1;
const KEY_SIZE = 32;
const KEY_ID_SIZE = 8;
const SALT_SIZE = 16;
const PREFIX_SIZE = 8;
export const HEADER_SIZE = MAGIC.length + 1 + 3 + KEY_ID_SIZE + SALT_SIZE + PREFIX_SIZE;
const TAG_SIZE = 16;
const SEGMENT_SIZE = CHUNK_SIZE + TAG_SIZE;
const MAX_CHUNKS = 2 ** 32;
const KEY_ID_LABEL = 'zxbackup key id';
const OBJECT_KEY_INFO = 'zxbackup object key v1';
/** A key file is one line of base64; anything much larger is the wrong file. */
const MAX_KEY_FILE_SIZE = 1024;

/**
 * Why an object could not be decrypted, or a key file used. `key` is the object key (or the key
 * file's path for `KeyFileError`); no variant ever holds key material.
 */
export type EncryptionError =
  | { readonly _tag: 'KeyFileError'; readonly op: string; readonly key: string; readonly reason: string; readonly cause?: unknown }
  | { readonly _tag: 'WrongKey'; readonly op: string; readonly key?: string; readonly expected: string; readonly found: string }
  | { readonly _tag: 'NotEncrypted'; readonly op: string; readonly key?: string }
  | { readonly _tag: 'CiphertextCorrupt'; readonly op: string; readonly key?: string; readonly reason: string };

export const describeEncryptionError = (e: EncryptionError): string => {
  const what = e.key === undefined ? 'the object' : e._tag === 'KeyFileError' ? `the key file ${e.key}` : `object ${e.key}`;
  switch (e._tag) {
    case 'KeyFileError':
      return `${what}: ${e.reason}`;
    case 'WrongKey':
      return `wrong key (fingerprint ${e.expected}, the object was sealed with ${e.found}): ${what} needs the key file it was encrypted with`;
    case 'NotEncrypted':
      return `${what} is not encrypted (no ZXBE header): the store holds data written without encryption`;
    case 'CiphertextCorrupt':
      return `${what} is corrupt or was tampered with: ${e.reason}`;
  }
};

/** How an `EncryptionError` travels where only an `Error` fits: a stream, an SDK-error cause. */
export class EncryptionFailure extends Error {
  constructor(readonly error: EncryptionError) {
    super(describeEncryptionError(error));
    this.name = 'EncryptionFailure';
  }
}

/** The encryption error inside `e` (itself, or a `cause` / `volumeError` a few levels down). */
export const encryptionErrorOf = (e: unknown, depth = 0): EncryptionError | undefined => {
  if (e instanceof EncryptionFailure) return e.error;
  if (typeof e !== 'object' || e === null || depth > 4) return undefined;
  const o = e as { cause?: unknown; volumeError?: unknown };
  return encryptionErrorOf(o.cause, depth + 1) ?? encryptionErrorOf(o.volumeError, depth + 1);
};

/**
 * A loaded key: only its id is visible. The bytes live in a module-private map, so logging,
 * `JSON.stringify` or `util.inspect` of a key shows the id and nothing else.
 */
export interface EncryptionKey {
  /** 16 hex digits: the key's fingerprint. */
  readonly id: string;
}
const secrets = new WeakMap<EncryptionKey, Buffer>();

const secretOf = (key: EncryptionKey): Buffer => {
  const s = secrets.get(key);
  if (s === undefined) throw new Error('not an EncryptionKey made by keyFromBytes/loadKeyFile/generateKeyFile');
  return s;
};

const keyIdOf = (bytes: Buffer): string => createHmac('sha256', bytes).update(KEY_ID_LABEL).digest().subarray(0, KEY_ID_SIZE).toString('hex');

/** A key from its 32 raw bytes (tests, and the key file reader). */
export const keyFromBytes = (bytes: Uint8Array, op = 'key'): E.Either<EncryptionError, EncryptionKey> => {
  if (bytes.length !== KEY_SIZE)
    return E.left({ _tag: 'KeyFileError', op, key: '(bytes)', reason: `a key is ${KEY_SIZE} bytes, got ${bytes.length}` });
  const secret = Buffer.from(bytes);
  const key: EncryptionKey = Object.freeze({ id: keyIdOf(secret) });
  secrets.set(key, secret);
  return E.right(key);
};

/** The content of a key file: one line of base64 holding 32 bytes. Never echoes the content. */
export const parseKeyFile = (text: string, file: string): E.Either<EncryptionError, EncryptionKey> => {
  const bad = (reason: string): E.Either<EncryptionError, EncryptionKey> => E.left({ _tag: 'KeyFileError', op: 'loadKey', key: file, reason });
  const line = text.trim();
  if (line === '') return bad('is empty; create a key with `zxbackup generateEncryptionKey <file>`');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(line) || line.length % 4 !== 0)
    return bad(`is not one line of base64 text (a key file holds ${KEY_SIZE} bytes as 44 base64 characters, as generateEncryptionKey writes it)`);
  const bytes = Buffer.from(line, 'base64');
  if (bytes.length !== KEY_SIZE) return bad(`holds ${bytes.length} bytes; a key is ${KEY_SIZE} bytes (44 base64 characters)`);
  return pipe(
    keyFromBytes(bytes, 'loadKey'),
    E.mapLeft((e): EncryptionError => ({ ...e, key: file })),
  );
};

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Reads a key file. Refused when group or others may access it (like ssh does with its keys),
 * when it is not a regular file, or when it does not hold exactly one 32-byte key.
 */
export const loadKeyFile = (file: string): TE.TaskEither<EncryptionError, EncryptionKey> => {
  const bad = (reason: string, cause?: unknown): EncryptionError => ({
    _tag: 'KeyFileError',
    op: 'loadKey',
    key: file,
    reason,
    ...(cause === undefined ? {} : { cause }),
  });
  return pipe(
    TE.tryCatch(
      async (): Promise<E.Either<EncryptionError, string>> => {
        const fh = await fs.open(file, 'r');
        try {
          const st = await fh.stat();
          if (!st.isFile()) return E.left(bad('is not a regular file'));
          if ((st.mode & 0o077) !== 0)
            return E.left(bad(`may be read by group or others (mode ${(st.mode & 0o777).toString(8)}); run \`chmod 600 ${file}\``));
          if (st.size > MAX_KEY_FILE_SIZE) return E.left(bad(`is ${st.size} bytes: too large to be a key file`));
          return E.right(await fh.readFile('utf8'));
        } finally {
          await fh.close();
        }
      },
      (e) => bad(`cannot be read (${(e as NodeJS.ErrnoException).code ?? describe(e)})`, e),
    ),
    TE.flatMap(TE.fromEither),
    TE.flatMap((text) => TE.fromEither(parseKeyFile(text, file))),
  );
};

/** Writes a new random key to `file` (mode 0600, fsynced); never overwrites an existing file. */
export const generateKeyFile = (file: string): TE.TaskEither<EncryptionError, EncryptionKey> => {
  const bad = (reason: string, cause?: unknown): EncryptionError => ({
    _tag: 'KeyFileError',
    op: 'generateKey',
    key: file,
    reason,
    ...(cause === undefined ? {} : { cause }),
  });
  const bytes = randomBytes(KEY_SIZE);
  return pipe(
    TE.fromEither(keyFromBytes(bytes, 'generateKey')),
    TE.tap(() =>
      TE.tryCatch(
        async () => {
          const fh = await fs.open(file, 'wx', 0o600);
          try {
            await fh.chmod(0o600); // whatever the umask
            await fh.writeFile(`${bytes.toString('base64')}\n`, 'utf8');
            await fh.sync();
          } finally {
            await fh.close();
          }
          const dir = await fs.open(path.dirname(path.resolve(file)), 'r');
          await dir.sync().finally(() => dir.close());
        },
        (e) =>
          (e as NodeJS.ErrnoException).code === 'EEXIST'
            ? bad('exists already; a key is never overwritten (the backups sealed with it would be lost): choose another file name')
            : bad(`cannot be written (${(e as NodeJS.ErrnoException).code ?? describe(e)})`, e),
      ),
    ),
  );
};

/** The stored size of an object of `plain` bytes. */
export const encryptedSize = (plain: number): number => HEADER_SIZE + plain + TAG_SIZE * Math.max(1, Math.ceil(plain / CHUNK_SIZE));

/** The plaintext size of an object of `stored` bytes; `undefined` when no plaintext has that size. */
export const plaintextSize = (stored: number): number | undefined => {
  const body = stored - HEADER_SIZE;
  if (!Number.isSafeInteger(stored) || body < TAG_SIZE) return undefined;
  const plain = body - TAG_SIZE * Math.ceil(body / SEGMENT_SIZE);
  return encryptedSize(plain) === stored ? plain : undefined;
};

/** Bytes waiting to form a chunk; `take` copies out exactly `n` of them. */
class ByteQueue {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    if (b.length === 0) return;
    this.parts.push(b);
    this.length += b.length;
  }
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.parts[0] as Buffer;
      const used = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, used);
      filled += used;
      if (used === head.length) this.parts.shift();
      else this.parts[0] = head.subarray(used);
    }
    this.length -= n;
    return out;
  }
}

const objectKey = (master: Buffer, salt: Buffer): Buffer => Buffer.from(hkdfSync('sha256', master, salt, OBJECT_KEY_INFO, KEY_SIZE));

const nonceOf = (prefix: Buffer, counter: number): Buffer => {
  const n = Buffer.alloc(PREFIX_SIZE + 4);
  prefix.copy(n, 0);
  n.writeUInt32BE(counter, PREFIX_SIZE);
  return n;
};

const aadOf = (header: Buffer, final: boolean): Buffer => Buffer.concat([header, Buffer.from([final ? 1 : 0])]);

const toBuffer = (chunk: unknown): Buffer => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));

/** A Transform that encrypts what is written to it. */
export const encryptStream = (key: EncryptionKey): Transform => {
  const master = secretOf(key);
  const salt = randomBytes(SALT_SIZE);
  const prefix = randomBytes(PREFIX_SIZE);
  const header = Buffer.concat([MAGIC, Buffer.from([VERSION, 0, 0, 0]), Buffer.from(key.id, 'hex'), salt, prefix]);
  const aes = objectKey(master, salt);
  const pending = new ByteQueue();
  let counter = 0;
  let started = false;
  const seal = (plain: Buffer, final: boolean): Buffer => {
    if (counter >= MAX_CHUNKS) throw new Error(`an object may hold at most ${MAX_CHUNKS} chunks`);
    const c = createCipheriv('aes-256-gcm', aes, nonceOf(prefix, counter++));
    c.setAAD(aadOf(header, final));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([body, c.getAuthTag()]);
  };
  return new Transform({
    transform(chunk: unknown, _enc, cb) {
      try {
        if (!started) {
          started = true;
          this.push(header);
        }
        pending.push(toBuffer(chunk));
        // The last chunk must be sealed as final: keep up to a full chunk until the end.
        while (pending.length > CHUNK_SIZE) this.push(seal(pending.take(CHUNK_SIZE), false));
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        if (!started) this.push(header);
        this.push(seal(pending.take(pending.length), true));
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
};

export interface DecryptOptions {
  /** The object's key, for error messages. */
  readonly name?: string;
  /** Called once the header was read and names this key: the object is ours to decrypt. */
  readonly onHeader?: () => void;
}

/**
 * A Transform that decrypts what is written to it; it fails with an `EncryptionFailure`:
 * `NotEncrypted`, `WrongKey`, or `CiphertextCorrupt` (a chunk failed authentication, the object
 * is truncated or extended). No byte of a chunk is passed on before its tag was verified.
 */
export const decryptStream = (key: EncryptionKey, options: DecryptOptions = {}): Transform => {
  const master = secretOf(key);
  const at = options.name === undefined ? {} : { key: options.name };
  const fail = (e: EncryptionError): EncryptionFailure => new EncryptionFailure(e);
  const corrupt = (reason: string): EncryptionFailure => fail({ _tag: 'CiphertextCorrupt', op: 'decrypt', ...at, reason });
  const pending = new ByteQueue();
  let header: Buffer | undefined;
  let prefix: Buffer = Buffer.alloc(0);
  let aes: Buffer = Buffer.alloc(0);
  let counter = 0;

  const readHeader = (): EncryptionFailure | undefined => {
    const h = pending.take(HEADER_SIZE);
    if (!h.subarray(0, MAGIC.length).equals(MAGIC)) return fail({ _tag: 'NotEncrypted', op: 'decrypt', ...at });
    const version = h[MAGIC.length];
    if (version !== VERSION) return corrupt(`format version ${String(version)} is not one this zxbackup reads (${VERSION})`);
    const found = h.subarray(8, 8 + KEY_ID_SIZE).toString('hex');
    if (found !== key.id) return fail({ _tag: 'WrongKey', op: 'decrypt', ...at, expected: key.id, found });
    const salt = h.subarray(8 + KEY_ID_SIZE, 8 + KEY_ID_SIZE + SALT_SIZE);
    prefix = Buffer.from(h.subarray(8 + KEY_ID_SIZE + SALT_SIZE, HEADER_SIZE));
    aes = objectKey(master, salt);
    header = h;
    options.onHeader?.();
    return undefined;
  };

  const open = (segment: Buffer, final: boolean): Buffer | EncryptionFailure => {
    if (segment.length < TAG_SIZE) return corrupt('it is truncated');
    if (counter >= MAX_CHUNKS) return corrupt('it has too many chunks');
    const d = createDecipheriv('aes-256-gcm', aes, nonceOf(prefix, counter));
    d.setAAD(aadOf(header as Buffer, final));
    d.setAuthTag(segment.subarray(segment.length - TAG_SIZE));
    try {
      const plain = Buffer.concat([d.update(segment.subarray(0, segment.length - TAG_SIZE)), d.final()]);
      counter++;
      return plain;
    } catch {
      return corrupt(`chunk ${counter}${final ? ' (the last)' : ''} failed authentication`);
    }
  };

  return new Transform({
    transform(chunk: unknown, _enc, cb) {
      pending.push(toBuffer(chunk));
      if (header === undefined) {
        // Say "not encrypted" as soon as the magic is wrong, not only after 40 bytes.
        if (pending.length >= MAGIC.length && pending.length < HEADER_SIZE) {
          const head = pending.take(pending.length);
          pending.push(head);
          if (!head.subarray(0, MAGIC.length).equals(MAGIC)) return cb(fail({ _tag: 'NotEncrypted', op: 'decrypt', ...at }));
        }
        if (pending.length < HEADER_SIZE) return cb();
        const bad = readHeader();
        if (bad !== undefined) return cb(bad);
      }
      // The chunk that ends the stream is the final one: keep a full segment until more follows.
      while (pending.length > SEGMENT_SIZE) {
        const plain = open(pending.take(SEGMENT_SIZE), false);
        if (plain instanceof EncryptionFailure) return cb(plain);
        this.push(plain);
      }
      cb();
    },
    flush(cb) {
      if (header === undefined) {
        const head = pending.take(pending.length);
        return cb(
          head.length >= MAGIC.length && !head.subarray(0, MAGIC.length).equals(MAGIC)
            ? fail({ _tag: 'NotEncrypted', op: 'decrypt', ...at })
            : corrupt(`it ends after ${head.length} bytes, inside the ${HEADER_SIZE}-byte header`),
        );
      }
      const plain = open(pending.take(pending.length), true);
      if (plain instanceof EncryptionFailure) return cb(plain);
      this.push(plain);
      cb();
    },
  });
};
