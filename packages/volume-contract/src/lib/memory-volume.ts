import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipe } from 'fp-ts/function';
import * as TE from 'fp-ts/TaskEither';
import type { BlobStat, BlobVolume, PutOptions, PutResult } from './blob-volume';
import type { Digest } from './digest';
import { VolumeStreamError, type VolumeError } from './errors';
import { putFileThroughStream } from './put-file';

export interface MemoryVolumeOptions {
  /** Label returned as `name`; defaults to `memory`. */
  readonly name?: string;
}

/** The in-memory volume, with one test hook to damage a stored blob. */
export interface MemoryVolume extends BlobVolume {
  /**
   * Replaces the stored bytes of a blob with `mutate(bytes)`, bypassing the digest check, so a
   * spec can simulate on-disk corruption. Returns false when the blob is absent.
   */
  readonly tamper: (digest: Digest, mutate: (stored: Buffer) => Buffer) => boolean;
}

interface Entry {
  readonly bytes: Buffer;
  readonly modifiedAt: number;
}

const CHUNK = 64 * 1024;

/** Accepts what a byte stream may yield: Buffers, other Uint8Arrays, or strings (utf-8). */
export const toBuffer = (chunk: unknown): Buffer => {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError(`a blob stream must yield bytes or strings, got ${typeof chunk}`);
};

/** Streams `bytes` in chunks, hashing as it goes; fails with `BlobCorrupt` when they do not hash to `digest`. */
const verifiedStream = (digest: Digest, bytes: Buffer): Readable =>
  Readable.from(
    (async function* () {
      const hash = createHash('sha256');
      for (let at = 0; at < bytes.length; at += CHUNK) {
        const chunk = bytes.subarray(at, at + CHUNK);
        hash.update(chunk);
        yield chunk;
      }
      const actual = hash.digest('hex');
      if (actual !== digest) {
        throw new VolumeStreamError({ _tag: 'BlobCorrupt', op: 'get', key: digest, cause: `content hashes to ${actual}` });
      }
    })(),
    { objectMode: false },
  );

/**
 * An honest in-memory `BlobVolume` for unit specs of other packages: it hashes while reading
 * the stream, deduplicates, honours `expectedDigest`, and re-verifies every `get`. Nothing is
 * durable (`supports.durable` is false) and the blobs live in this process's heap, so keep them
 * small. A dedup put refreshes `modifiedAt`, as the local volume does.
 */
export const makeMemoryVolume = (options: MemoryVolumeOptions = {}): MemoryVolume => {
  const blobs = new Map<Digest, Entry>();
  const notFound = (op: string, key: Digest): VolumeError => ({ _tag: 'BlobNotFound', op, key });

  const readAll = (content: Readable): TE.TaskEither<VolumeError, { digest: Digest; bytes: Buffer }> =>
    TE.tryCatch(
      async () => {
        const hash = createHash('sha256');
        const chunks: Buffer[] = [];
        for await (const chunk of content) {
          const bytes = toBuffer(chunk);
          hash.update(bytes);
          chunks.push(bytes);
        }
        return { digest: hash.digest('hex') as Digest, bytes: Buffer.concat(chunks) };
      },
      (cause): VolumeError => ({ _tag: 'VolumeIOError', op: 'put', cause }),
    );

  const lookup = (op: string, digest: Digest): TE.TaskEither<VolumeError, Entry> => {
    const entry = blobs.get(digest);
    return entry === undefined ? TE.left(notFound(op, digest)) : TE.right(entry);
  };

  const put = (content: Readable, putOptions: PutOptions = {}): TE.TaskEither<VolumeError, PutResult> =>
    pipe(
      readAll(content),
      TE.flatMap(({ digest, bytes }): TE.TaskEither<VolumeError, PutResult> => {
        const expected = putOptions.expectedDigest;
        if (expected !== undefined && expected !== digest) {
          return TE.left({ _tag: 'BlobCorrupt', op: 'put', key: expected, cause: `content hashes to ${digest}` });
        }
        const existing = blobs.get(digest);
        blobs.set(digest, { bytes: existing?.bytes ?? bytes, modifiedAt: Date.now() });
        return TE.right({ digest, size: bytes.length, stored: existing === undefined });
      }),
    );

  return {
    name: options.name ?? 'memory',
    supports: { durable: false, remote: false },

    put,
    putFile: putFileThroughStream(put),

    has: (digest) => TE.right(blobs.has(digest)),

    get: (digest) =>
      pipe(
        lookup('get', digest),
        TE.map((entry) => verifiedStream(digest, entry.bytes)),
      ),

    stat: (digest) =>
      pipe(
        lookup('stat', digest),
        TE.map(
          (entry): BlobStat => ({
            digest,
            size: entry.bytes.length,
            storedSize: entry.bytes.length,
            modifiedAt: entry.modifiedAt,
          }),
        ),
      ),

    delete: (digest) => (blobs.delete(digest) ? TE.right(undefined) : TE.left(notFound('delete', digest))),

    list: (visit) =>
      TE.tryCatch(
        async () => {
          let visited = 0;
          // A snapshot, so a visitor that deletes or puts does not disturb the walk.
          for (const digest of [...blobs.keys()]) {
            await visit(digest);
            visited += 1;
          }
          return visited;
        },
        (cause): VolumeError => ({ _tag: 'VolumeIOError', op: 'list', cause }),
      ),

    flush: () => TE.right(undefined),
    close: () => TE.right(undefined),

    tamper: (digest, mutate) => {
      const entry = blobs.get(digest);
      if (entry === undefined) return false;
      blobs.set(digest, { ...entry, bytes: mutate(Buffer.from(entry.bytes)) });
      return true;
    },
  };
};
