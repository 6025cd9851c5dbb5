import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { BlobVolume } from './blob-volume';
import type { Digest } from './digest';
import { VolumeStreamError, describeVolumeError, type VolumeError, type VolumeErrorTag } from './errors';
import { toBuffer } from './memory-volume';

/** How the contract suite gets a fresh, empty volume of the implementation under test. */
export interface VolumeContractFixture<V extends BlobVolume = BlobVolume> {
  /** A fresh, empty volume; called before every test. */
  readonly make: () => Promise<V>;
  /** Removes what `make` created; called after every test, after `close`. */
  readonly cleanup?: (volume: V) => Promise<void>;
  /**
   * Damages the stored copy of a blob behind the volume's back (flip a byte, truncate). Without
   * it the corruption test is reported as a todo, never silently dropped.
   */
  readonly corrupt?: (volume: V, digest: Digest) => Promise<void>;
  /** Per-test timeout for slow (remote) volumes; 20 s by default. */
  readonly timeoutMs?: number;
}

// ---------------------------------------------------------------- helpers (also exported)

/** Runs a TaskEither and returns its Right, failing the test with the error's description otherwise. */
export const expectRight = async <A>(te: TE.TaskEither<VolumeError, A>): Promise<A> => {
  const result = await te();
  if (E.isLeft(result)) throw new Error(`expected Right, got ${describeVolumeError(result.left)}`);
  return result.right;
};

/** Runs a TaskEither and returns its Left, failing the test when it succeeded. */
export const expectLeft = async <A>(te: TE.TaskEither<VolumeError, A>): Promise<VolumeError> => {
  const result = await te();
  if (E.isRight(result)) throw new Error('expected Left, got Right');
  return result.left;
};

/** Reads a whole stream into one Buffer (for specs: blobs under test are small). */
export const readAll = async (stream: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(toBuffer(chunk));
  return Buffer.concat(chunks);
};

export const sha256Hex = (bytes: Buffer): Digest => createHash('sha256').update(bytes).digest('hex') as Digest;

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export const pseudoRandomBytes = (size: number, seed = 0x9e3779b9): Buffer => {
  const out = Buffer.allocUnsafe(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 1) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = s & 0xff;
  }
  return out;
};

/** Mail-like text: compressible, CRLF lines of words. */
export const mailLikeText = (size: number, seed = 7): Buffer => {
  const words = ['backup', 'mailbox', 'the', 'of', 'meeting', 'invoice', 'Subject:', 'regards', 'zimbra', 'and', 'to', 'please'];
  const noise = pseudoRandomBytes(Math.ceil(size / 4) + 16, seed);
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i += 1) {
    const word = words[(noise[i % noise.length] ?? 0) % words.length] ?? 'x';
    const piece = i % 13 === 12 ? `${word}\r\n` : `${word} `;
    parts.push(piece);
    length += piece.length;
  }
  return Buffer.from(parts.join(''), 'utf8').subarray(0, size);
};

/** A stream yielding `bytes` in pieces of `chunkSize` (a fresh stream per call). */
export const streamOf = (bytes: Buffer, chunkSize = 64 * 1024): Readable =>
  Readable.from(
    (function* () {
      for (let at = 0; at < bytes.length; at += chunkSize) yield bytes.subarray(at, at + chunkSize);
    })(),
    { objectMode: false },
  );

const streamThatFails = (prefix: Buffer, chunkSize: number): Readable =>
  Readable.from(
    (async function* () {
      for (let at = 0; at < prefix.length; at += chunkSize) yield prefix.subarray(at, at + chunkSize);
      throw new Error('source stream broke mid-way');
    })(),
    { objectMode: false },
  );

const listAll = async (volume: BlobVolume): Promise<Digest[]> => {
  const seen: Digest[] = [];
  const count = await expectRight(
    volume.list(async (digest) => {
      await Promise.resolve();
      seen.push(digest);
    }),
  );
  expect(count).toBe(seen.length);
  return seen;
};

const expectTag = (error: VolumeError, tag: VolumeErrorTag): void => {
  expect(error._tag).toBe(tag);
};

/** Consumes a get stream and returns the error it failed with (or fails the test if it did not). */
const streamFailure = async (stream: Readable): Promise<unknown> => {
  try {
    await readAll(stream);
  } catch (error) {
    return error;
  }
  throw new Error('expected the stream to fail');
};

// ---------------------------------------------------------------- the suite

/**
 * The behaviour every `BlobVolume` implementation must show (see the contract on `BlobVolume`).
 * Each test gets a fresh volume from `fixture.make()` and asserts error tags, never messages.
 * Tests are small (at most a few MB) and do not depend on timing, so remote volumes run it too.
 */
export const describeVolumeContract = <V extends BlobVolume>(name: string, fixture: VolumeContractFixture<V>): void => {
  const timeout = fixture.timeoutMs ?? 20_000;

  describe(`BlobVolume contract: ${name}`, () => {
    let volume: V;

    beforeEach(async () => {
      volume = await fixture.make();
    }, timeout);

    afterEach(async () => {
      await expectRight(volume.close());
      await fixture.cleanup?.(volume);
    }, timeout);

    const roundTrip = async (bytes: Buffer, chunkSize?: number): Promise<void> => {
      const result = await expectRight(volume.put(streamOf(bytes, chunkSize), { size: bytes.length }));
      expect(result.digest).toBe(sha256Hex(bytes));
      expect(result.size).toBe(bytes.length);
      expect(result.stored).toBe(true);
      const back = await readAll(await expectRight(volume.get(result.digest)));
      expect(back.length).toBe(bytes.length);
      expect(back.equals(bytes)).toBe(true);
    };

    describe('put then get returns the same bytes, keyed by their sha256', () => {
      it('an empty blob', () => roundTrip(Buffer.alloc(0)), timeout);
      it('a 1-byte blob', () => roundTrip(Buffer.from([0x1f])), timeout);
      it('100 KB of mail-like text', () => roundTrip(mailLikeText(100 * 1024)), timeout);
      it('3 MB of random bytes', () => roundTrip(pseudoRandomBytes(3 * 1024 * 1024, 3)), timeout);
      it('a blob streamed in many small chunks', () => roundTrip(mailLikeText(150 * 1024 + 7, 11), 97), timeout);
      it('content that starts with gzip/zstd/brotli-looking magic bytes', async () => {
        const gzipLike = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), mailLikeText(5000, 5)]);
        const zstdLike = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), pseudoRandomBytes(5000, 6)]);
        await roundTrip(gzipLike);
        await roundTrip(zstdLike);
      }, timeout);
      it('a string stream is stored as its utf-8 bytes', async () => {
        const text = 'Grüße aus Köln\r\n';
        const result = await expectRight(volume.put(Readable.from([text, text], { objectMode: true })));
        const bytes = Buffer.from(text + text, 'utf8');
        expect(result.digest).toBe(sha256Hex(bytes));
        expect((await readAll(await expectRight(volume.get(result.digest)))).equals(bytes)).toBe(true);
      }, timeout);
    });

    it('deduplicates: the same content twice is stored once', async () => {
      const bytes = mailLikeText(20_000, 21);
      const first = await expectRight(volume.put(streamOf(bytes)));
      const second = await expectRight(volume.put(streamOf(bytes, 1000)));
      expect(first.stored).toBe(true);
      expect(second.stored).toBe(false);
      expect(second.digest).toBe(first.digest);
      expect(second.size).toBe(bytes.length);
      expect(await listAll(volume)).toEqual([first.digest]);
    }, timeout);

    describe('putFile', () => {
      let dir: string;
      beforeEach(async () => {
        dir = await mkdtemp(join(tmpdir(), 'zxb-contract-putfile-'));
      });
      afterEach(async () => {
        await rm(dir, { recursive: true, force: true });
      });

      it.each([
        ['a mail message', mailLikeText(30_000, 41)],
        ['an empty file', Buffer.alloc(0)],
        ['5 MB of random bytes', pseudoRandomBytes(5 * 1024 * 1024, 42)],
      ])('stores %s as put does, and returns its first bytes', async (_label, bytes) => {
        const file = join(dir, 'message');
        await writeFile(file, bytes);
        const result = await expectRight(volume.putFile(file, { headBytes: 1000 }));
        expect(result.digest).toBe(sha256Hex(bytes));
        expect(result.size).toBe(bytes.length);
        expect(result.stored).toBe(true);
        expect(result.head.equals(bytes.subarray(0, 1000))).toBe(true);
        expect((await readAll(await expectRight(volume.get(result.digest)))).equals(bytes)).toBe(true);
        expect((await expectRight(volume.putFile(file))).stored).toBe(false);
        expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(false);
      }, timeout);

      it.each([
        ['LF', '\n'],
        ['CRLF', '\r\n'],
      ])('with headEnd blankLine, the head is the header block (%s), then only as put again', async (_label, eol) => {
        const header = [`Subject: ${'long '.repeat(300)}`, 'From: a@example.com', 'To: b@example.com'].join(eol) + eol + eol;
        const bytes = Buffer.concat([Buffer.from(header), mailLikeText(40_000, 44)]);
        const file = join(dir, 'message');
        await writeFile(file, bytes);
        const first = await expectRight(volume.putFile(file, { headBytes: 64 * 1024, headEnd: 'blankLine' }));
        expect(first.head.toString()).toBe(header);
        expect(first.stored).toBe(true);
        expect((await readAll(await expectRight(volume.get(first.digest)))).equals(bytes)).toBe(true);
        const again = await expectRight(volume.putFile(file, { headBytes: 64 * 1024, headEnd: 'blankLine' }));
        expect(again.stored).toBe(false);
        expect(again.head.toString()).toBe(header);
        // No blank line within headBytes: headBytes of it.
        expect((await expectRight(volume.putFile(file, { headBytes: 100, headEnd: 'blankLine' }))).head.equals(bytes.subarray(0, 100))).toBe(true);
      }, timeout);

      it("leaves the file's access time as it was (a backup is not a reader of the mail)", async () => {
        const file = join(dir, 'message');
        await writeFile(file, mailLikeText(12_000, 45));
        // Older than the mtime: under relatime a plain read would set it to now.
        const atime = new Date(Date.UTC(2020, 0, 1));
        await utimes(file, atime, (await stat(file)).mtime);
        await expectRight(volume.putFile(file, { headBytes: 100 }));
        expect((await stat(file)).atimeMs).toBe(atime.getTime());
      }, timeout);

      it('a file that cannot be read is SourceUnreadable with its errno, and stores nothing', async () => {
        const missing = join(dir, 'vanished');
        const error = await expectLeft(volume.putFile(missing));
        expect(error).toMatchObject({ _tag: 'SourceUnreadable', key: missing, code: 'ENOENT' });
        expect(await listAll(volume)).toEqual([]);
      }, timeout);

      it('an expected digest that does not match is BlobCorrupt', async () => {
        const file = join(dir, 'message');
        await writeFile(file, mailLikeText(5_000, 43));
        const wrong = sha256Hex(Buffer.from('something else'));
        expect(await expectLeft(volume.putFile(file, { expectedDigest: wrong }))).toMatchObject({ _tag: 'BlobCorrupt' });
        expect(await listAll(volume)).toEqual([]);
      }, timeout);
    });

    it('has, stat and delete', async () => {
      const bytes = pseudoRandomBytes(70_000, 31);
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      expect(await expectRight(volume.has(digest))).toBe(true);
      const stat = await expectRight(volume.stat(digest));
      expect(stat.digest).toBe(digest);
      expect(stat.size).toBe(bytes.length);
      if (stat.storedSize !== undefined) expect(stat.storedSize).toBeGreaterThanOrEqual(0);
      if (stat.modifiedAt !== undefined) expect(Number.isFinite(stat.modifiedAt) && stat.modifiedAt > 0).toBe(true);
      await expectRight(volume.delete(digest));
      expect(await expectRight(volume.has(digest))).toBe(false);
      expectTag(await expectLeft(volume.get(digest)), 'BlobNotFound');
      expectTag(await expectLeft(volume.delete(digest)), 'BlobNotFound');
      expect(await listAll(volume)).toEqual([]);
    }, timeout);

    it('a deleted blob can be put again', async () => {
      const bytes = mailLikeText(3000, 41);
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      await expectRight(volume.delete(digest));
      const again = await expectRight(volume.put(streamOf(bytes)));
      expect(again.stored).toBe(true);
      expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
    }, timeout);

    it('a missing blob: has is false, get/stat/delete are BlobNotFound', async () => {
      const missing = sha256Hex(Buffer.from('never stored'));
      expect(await expectRight(volume.has(missing))).toBe(false);
      const onGet = await expectLeft(volume.get(missing));
      expectTag(onGet, 'BlobNotFound');
      expect(onGet.key).toBe(missing);
      expectTag(await expectLeft(volume.stat(missing)), 'BlobNotFound');
      expectTag(await expectLeft(volume.delete(missing)), 'BlobNotFound');
    }, timeout);

    it('list visits every stored digest exactly once', async () => {
      const contents = [0, 1, 2, 3, 4, 5].map((i) => (i % 2 === 0 ? mailLikeText(1000 + i * 5000, i) : pseudoRandomBytes(100 + i * 9000, i)));
      const digests = new Set<Digest>();
      for (const bytes of contents) digests.add((await expectRight(volume.put(streamOf(bytes)))).digest);
      await expectRight(volume.put(streamOf(contents[2] ?? Buffer.alloc(0))));
      const seen = await listAll(volume);
      expect(seen.length).toBe(digests.size);
      expect(new Set(seen)).toEqual(digests);
    }, timeout);

    it('readOrder, warmUp and prefetch, where a volume has them, change no read: a permutation of the list, every blob read back as put', async () => {
      const contents = [0, 1, 2, 3, 4, 5, 6].map((i) => mailLikeText(2000 + i * 3000, 40 + i));
      const digests: Digest[] = [];
      for (const bytes of contents) digests.push((await expectRight(volume.put(streamOf(bytes)))).digest);
      await expectRight(volume.flush());
      const missing = sha256Hex(Buffer.from('never stored'));
      const list = [digests[3], missing, ...digests, digests[0]] as Digest[]; // unknown and repeated entries too
      const order = volume.readOrder === undefined ? list.map((_, i) => i) : await volume.readOrder(list);
      expect([...order].sort((a, b) => a - b)).toEqual(list.map((_, i) => i));
      const ordered = order.map((i) => list[i] as Digest);
      volume.warmUp?.(list.slice(0, 3));
      volume.prefetch?.(ordered);
      for (const d of ordered) {
        if (d === missing) expect((await expectLeft(volume.get(d)))._tag).toBe('BlobNotFound');
        else expect(sha256Hex(await readAll(await expectRight(volume.get(d))))).toBe(d);
      }
    }, timeout);

    it('readWhole, where a volume has it, gives the bytes get gives, and a missing blob is BlobNotFound', async () => {
      const readWhole = volume.readWhole?.bind(volume);
      if (readWhole === undefined) return;
      const contents = [Buffer.alloc(0), Buffer.from('x'), mailLikeText(70 * 1024, 47), pseudoRandomBytes(300 * 1024, 48)];
      const digests: Digest[] = [];
      for (const bytes of contents) digests.push((await expectRight(volume.put(streamOf(bytes, 8 * 1024)))).digest);
      // Before and after the flush: a volume may read pending blobs another way.
      for (const pass of ['before', 'after']) {
        if (pass === 'after') await expectRight(volume.flush());
        for (const [i, d] of digests.entries()) {
          const parts = await expectRight(readWhole(d));
          expect(Buffer.concat(parts.map(toBuffer)).equals(contents[i] as Buffer)).toBe(true);
        }
      }
      expectTag(await expectLeft(readWhole(sha256Hex(Buffer.from('never stored')))), 'BlobNotFound');
    }, timeout);

    it('writeToFile, where a volume has it, writes the bytes get gives into new files, as announced by a prefetch into files or not', async () => {
      const writeToFile = volume.writeToFile?.bind(volume);
      if (writeToFile === undefined) return;
      const dir = await mkdtemp(join(tmpdir(), 'zxb-contract-files-'));
      try {
        const contents = [Buffer.alloc(0), Buffer.from('x'), mailLikeText(70 * 1024, 57), pseudoRandomBytes(300 * 1024, 58), mailLikeText(3000, 59)];
        const digests: Digest[] = [];
        for (const bytes of contents) digests.push((await expectRight(volume.put(streamOf(bytes, 8 * 1024)))).digest);
        const mtimeMs = Date.UTC(2024, 1, 29, 12, 30, 15);
        const check = async (path: string, i: number): Promise<void> => {
          expect((await readFile(path)).equals(contents[i] as Buffer)).toBe(true);
          const st = await stat(path);
          expect(st.mode & 0o777).toBe(0o640);
          expect(Math.round(st.mtimeMs)).toBe(mtimeMs);
        };
        // Before the flush (a volume may still hold them pending), then after it.
        for (const [i, d] of digests.entries()) {
          await expectRight(writeToFile(d, { path: join(dir, `before-${i}`), mode: 0o640, mtimeMs }));
          await check(join(dir, `before-${i}`), i);
        }
        await expectRight(volume.flush());
        // A list announced for files, with a blob twice (two messages of the same content).
        const list = [...digests, digests[2] as Digest];
        const order = volume.readOrder === undefined ? list.map((_, k) => k) : await volume.readOrder(list);
        const ordered = order.map((k) => list[k] as Digest);
        volume.warmUp?.(ordered.slice(0, 2), { into: 'files' });
        volume.prefetch?.(ordered, { into: 'files' });
        await Promise.all(ordered.map(async (d, k) => expectRight(writeToFile(d, { path: join(dir, `after-${k}`), mode: 0o640, mtimeMs }))));
        for (const [k, d] of ordered.entries()) await check(join(dir, `after-${k}`), digests.indexOf(d));
        // Never over an existing file, and nothing left for a missing blob.
        await writeFile(join(dir, 'taken'), 'keep me');
        const taken = await expectLeft(writeToFile(digests[2] as Digest, { path: join(dir, 'taken'), mode: 0o640, mtimeMs }));
        expectTag(taken, 'VolumeIOError');
        expect(taken.op).toBe('writeFile');
        expect(await readFile(join(dir, 'taken'), 'utf8')).toBe('keep me');
        expectTag(await expectLeft(writeToFile(sha256Hex(Buffer.from('never stored')), { path: join(dir, 'missing'), mode: 0o640, mtimeMs })), 'BlobNotFound');
        await expect(stat(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }, timeout);

    it('list of an empty volume visits nothing', async () => {
      expect(await listAll(volume)).toEqual([]);
    }, timeout);

    describe('a put that fails stores nothing', () => {
      it.each([
        ['1 KB', 1024],
        ['1 MB', 1024 * 1024],
      ])('a wrong expectedDigest on %s is BlobCorrupt', async (_label, size) => {
        const bytes = mailLikeText(size, 51);
        const wrong = sha256Hex(Buffer.from('something else'));
        const error = await expectLeft(volume.put(streamOf(bytes), { expectedDigest: wrong }));
        expectTag(error, 'BlobCorrupt');
        expect(await expectRight(volume.has(sha256Hex(bytes)))).toBe(false);
        expect(await expectRight(volume.has(wrong))).toBe(false);
        expect(await listAll(volume)).toEqual([]);
        const right = await expectRight(volume.put(streamOf(bytes), { expectedDigest: sha256Hex(bytes) }));
        expect(right.digest).toBe(sha256Hex(bytes));
      }, timeout);

      it.each([
        ['after 1 KB', 1024],
        ['after 1 MB', 1024 * 1024],
      ])('a source stream that errors %s is a Left, and nothing is visible', async (_label, size) => {
        const prefix = mailLikeText(size, 61);
        await expectLeft(volume.put(streamThatFails(prefix, 16 * 1024)));
        expect(await expectRight(volume.has(sha256Hex(prefix)))).toBe(false);
        await expectRight(volume.flush());
        expect(await listAll(volume)).toEqual([]);
      }, timeout);
    });

    if (fixture.corrupt === undefined) {
      it.todo('corrupted content fails the get stream with BlobCorrupt (fixture.corrupt not given)');
    } else {
      const corrupt = fixture.corrupt;
      it.each([
        ['mail-like text', mailLikeText(200 * 1024, 71)],
        ['random bytes', pseudoRandomBytes(200 * 1024, 72)],
      ])('corrupted %s fails the get stream with VolumeStreamError BlobCorrupt', async (_label, bytes) => {
        const { digest } = await expectRight(volume.put(streamOf(bytes)));
        await expectRight(volume.flush());
        await corrupt(volume, digest);
        const error = await streamFailure(await expectRight(volume.get(digest)));
        expect(error).toBeInstanceOf(VolumeStreamError);
        const volumeError = (error as VolumeStreamError).volumeError;
        expectTag(volumeError, 'BlobCorrupt');
        expect(volumeError.key).toBe(digest);
        if (volume.readWhole !== undefined) {
          const whole = await expectLeft(volume.readWhole(digest));
          expectTag(whole, 'BlobCorrupt');
          expect(whole.key).toBe(digest);
        }
        if (volume.writeToFile !== undefined) {
          // Announced for files too (a restore), and not: no file is left either way.
          const dir = await mkdtemp(join(tmpdir(), 'zxb-contract-corrupt-'));
          try {
            for (const announced of [true, false]) {
              if (announced) volume.prefetch?.([digest], { into: 'files' });
              const path = join(dir, `m-${String(announced)}`);
              const failed = await expectLeft(volume.writeToFile(digest, { path, mode: 0o600, mtimeMs: Date.now() }));
              expectTag(failed, 'BlobCorrupt');
              expect(failed.key).toBe(digest);
              await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
            }
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        }
      }, timeout);
    }

    it('a get stream abandoned half-way leaves the volume usable', async () => {
      const bytes = pseudoRandomBytes(1024 * 1024, 81);
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      const stream = await expectRight(volume.get(digest));
      for await (const _chunk of stream) break;
      expect(stream.destroyed).toBe(true);
      expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
      await expectRight(volume.delete(digest));
    }, timeout);

    it('flush resolves, with and without pending writes', async () => {
      await expectRight(volume.flush());
      const { digest } = await expectRight(volume.put(streamOf(mailLikeText(10_000, 91))));
      await expectRight(volume.flush());
      await expectRight(volume.flush());
      expect(await expectRight(volume.has(digest))).toBe(true);
    }, timeout);

    it('many concurrent puts of the same content are safe', async () => {
      const bytes = mailLikeText(300 * 1024, 101);
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => expectRight(volume.put(streamOf(bytes, 4096 * (i + 1))))));
      expect(new Set(results.map((r) => r.digest))).toEqual(new Set([sha256Hex(bytes)]));
      expect(results.some((r) => r.stored)).toBe(true);
      await expectRight(volume.flush());
      expect(await listAll(volume)).toEqual([sha256Hex(bytes)]);
      expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
    }, timeout);

    it('concurrent puts of distinct and repeated contents', async () => {
      const contents = Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? mailLikeText(5000 + i * 30_000, 200 + i) : pseudoRandomBytes(5000 + i * 30_000, 200 + i)));
      const results = await Promise.all([...contents, ...contents].map((bytes) => expectRight(volume.put(streamOf(bytes)))));
      expect(new Set(results.map((r) => r.digest))).toEqual(new Set(contents.map(sha256Hex)));
      await expectRight(volume.flush());
      expect((await listAll(volume)).length).toBe(contents.length);
      for (const bytes of contents) {
        expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
      }
    }, timeout);
  });
};
