import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, readFileSync, renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { Digest, digestShard, type VolumeError } from '@zxbackup/volume-contract';
import { fsError } from './errors';
import { makeHasher } from './verify-stream';

/** A blob written to a temporary file, hashed, not yet visible under its digest. */
export interface Staged {
  readonly tmpPath: string;
  readonly digest: Digest;
  readonly size: number;
}

interface Entry {
  readonly size: number;
  /** Epoch ms of the write. */
  readonly modifiedAt: number;
  /**
   * Written and hashed by this process. Entries found on disk at start are not trusted: a
   * machine crash before `flush` may have left a short file under a digest name, so they are
   * re-hashed before upload and replaced by the next put of the same content.
   */
  readonly trusted: boolean;
}

/**
 * The local write cache: `<dir>/items/<xx>/<digest>`, temp files in `<dir>/tmp/`, unreadable
 * blobs moved to `<dir>/corrupt/`. Same crash rules as a local volume: temp file + rename, so
 * a put that fails leaves nothing under a digest; `flush` fsyncs what was written since the
 * last flush. One process per directory.
 */
export interface BlobCache {
  readonly dir: string;
  stage(content: Readable, expected?: Digest): TE.TaskEither<VolumeError, Staged>;
  /** Stages bytes already in memory and hashed (a small blob: written synchronously). */
  stageBytes(bytes: Buffer, digest: Digest): E.Either<VolumeError, Staged>;
  /** Makes a staged blob visible under its digest (replacing an untrusted copy). */
  commit(staged: Staged): TE.TaskEither<VolumeError, void>;
  discard(staged: Staged): TE.TaskEither<VolumeError, void>;
  entry(digest: Digest): Entry | undefined;
  entries(): IterableIterator<[Digest, Entry]>;
  /** A read stream of a cached blob, opened before it resolves (`undefined` if gone). */
  open(digest: Digest): TE.TaskEither<VolumeError, Readable | undefined>;
  /** The bytes of a cached blob of at most `SMALL_BLOB_BYTES`, read synchronously (`undefined` if gone). */
  read(digest: Digest): E.Either<VolumeError, Buffer | undefined>;
  /** Re-reads a cached blob and returns the digest of what is on disk. */
  hash(digest: Digest): TE.TaskEither<VolumeError, { digest: string; size: number }>;
  /** Drops a blob from the cache; false when it was not there. */
  remove(digest: Digest): TE.TaskEither<VolumeError, boolean>;
  /**
   * Moves a blob found unreadable aside, out of the cache, for a person to look at; false (and
   * nothing done) when a put replaced it by a trusted copy meanwhile.
   */
  quarantine(digest: Digest): TE.TaskEither<VolumeError, boolean>;
  flush(): TE.TaskEither<VolumeError, void>;
  readonly count: () => number;
  readonly bytes: () => number;
}

/**
 * Blobs up to this size are written and read with synchronous calls on the calling thread: a
 * mail is ~20 KB, and going through libuv's threadpool costs several round trips per file
 * (open, read or write, close), which measured as most of a SmartScan's main-thread time. The
 * cache is on local disk, where such a call takes microseconds.
 */
export const SMALL_BLOB_BYTES = 4 * 1024 * 1024;

/** fsyncs in flight during a flush (libuv runs 4 at a time; the rest queue without cost). */
const FLUSH_CONCURRENCY = 32;

const tryFs = <A>(op: string, key: string | undefined, f: () => Promise<A>): TE.TaskEither<VolumeError, A> =>
  TE.tryCatch(f, (e) => fsError(op, key, e));

const isCode = (e: unknown, code: string): boolean =>
  typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;

const fsyncPath = async (p: string): Promise<void> => {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
};

/** Opens (creating) a cache directory and indexes the blobs a previous run left to upload. */
export const makeBlobCache = (dir: string): TE.TaskEither<VolumeError, BlobCache> => {
  const itemsDir = path.join(dir, 'items');
  const tmpDir = path.join(dir, 'tmp');
  const corruptDir = path.join(dir, 'corrupt');
  const index = new Map<Digest, Entry>();
  let totalBytes = 0;
  // Written since the last flush: blob files (by digest) and directories whose entries changed.
  const dirtyBlobs = new Set<Digest>();
  const dirtyDirs = new Set<string>();

  // Renames and unlinks of one digest run one at a time, so the index matches the files.
  const locks = new Map<Digest, Promise<unknown>>();
  const locked = <A>(d: Digest, f: () => Promise<A>): Promise<A> => {
    const run = (locks.get(d) ?? Promise.resolve()).then(f, f);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    locks.set(d, tail);
    void tail.then(() => {
      if (locks.get(d) === tail) locks.delete(d);
    });
    return run;
  };

  const blobPath = (d: Digest): string => path.join(itemsDir, digestShard(d), d);
  const setEntry = (d: Digest, e: Entry | undefined): void => {
    totalBytes -= index.get(d)?.size ?? 0;
    if (e === undefined) index.delete(d);
    else {
      index.set(d, e);
      totalBytes += e.size;
    }
  };

  const scan = async (): Promise<void> => {
    await fsp.mkdir(itemsDir, { recursive: true });
    await fsp.mkdir(corruptDir, { recursive: true });
    // Leftovers of puts killed mid-way: never visible under a digest, safe to drop.
    await fsp.rm(tmpDir, { recursive: true, force: true });
    await fsp.mkdir(tmpDir, { recursive: true });
    for (const shard of await fsp.readdir(itemsDir)) {
      if (!/^[0-9a-f]{2}$/.test(shard)) continue;
      for (const name of await fsp.readdir(path.join(itemsDir, shard))) {
        const d = Digest.decode(name);
        if (E.isLeft(d) || digestShard(d.right) !== shard) continue; // not ours
        const st = await fsp.stat(path.join(itemsDir, shard, name));
        if (st.isFile()) setEntry(d.right, { size: st.size, modifiedAt: st.mtimeMs, trusted: false });
      }
    }
  };

  const stage = (content: Readable, expected?: Digest): TE.TaskEither<VolumeError, Staged> => {
    const tmpPath = path.join(tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    const hasher = makeHasher();
    const cleanup = (): Promise<void> => fsp.rm(tmpPath, { force: true });
    return pipe(
      tryFs('put', undefined, async () => {
        try {
          await pipeline(content, hasher.stream, createWriteStream(tmpPath, { flags: 'wx' }));
        } catch (e) {
          await cleanup();
          throw e;
        }
        return hasher.result();
      }),
      TE.flatMap(({ digest, size }) => {
        const d = Digest.decode(digest);
        if (E.isLeft(d)) throw new Error(`BUG: sha256 produced ${digest}`);
        if (expected !== undefined && d.right !== expected) {
          return pipe(
            tryFs('put', expected, cleanup),
            TE.flatMap(() =>
              TE.left<VolumeError>({
                _tag: 'BlobCorrupt',
                op: 'put',
                key: expected,
                cause: new Error(`content hashes to ${digest}`),
              }),
            ),
          );
        }
        return TE.right({ tmpPath, digest: d.right, size });
      }),
    );
  };

  let tmpCounter = 0;
  const stageBytes = (bytes: Buffer, digest: Digest): E.Either<VolumeError, Staged> => {
    const tmpPath = path.join(tmpDir, `${process.pid}-s${++tmpCounter}`);
    return E.tryCatch(
      () => {
        writeFileSync(tmpPath, bytes, { flag: 'wx' });
        return { tmpPath, digest, size: bytes.length };
      },
      (e) => fsError('put', digest, e),
    );
  };

  const readSmall = (d: Digest): E.Either<VolumeError, Buffer | undefined> =>
    E.tryCatch(
      () => {
        try {
          return readFileSync(blobPath(d));
        } catch (e) {
          if (isCode(e, 'ENOENT')) return undefined; // uploaded and dropped meanwhile
          throw e;
        }
      },
      (e) => fsError('get', d, e),
    );

  const knownShards = new Set<string>();
  const commit = (s: Staged): TE.TaskEither<VolumeError, void> =>
    tryFs('put', s.digest, () => locked(s.digest, async () => {
      const target = blobPath(s.digest);
      const shardDir = path.dirname(target);
      if (!knownShards.has(shardDir)) {
        mkdirSync(shardDir, { recursive: true });
        knownShards.add(shardDir);
      }
      renameSync(s.tmpPath, target);
      setEntry(s.digest, { size: s.size, modifiedAt: Date.now(), trusted: true });
      dirtyBlobs.add(s.digest);
      dirtyDirs.add(shardDir);
      dirtyDirs.add(itemsDir);
    }));

  const discard = (s: Staged): TE.TaskEither<VolumeError, void> =>
    tryFs('put', s.digest, () => fsp.rm(s.tmpPath, { force: true }));

  const open = (d: Digest): TE.TaskEither<VolumeError, Readable | undefined> =>
    tryFs('get', d, async () => {
      try {
        const fh = await fsp.open(blobPath(d), 'r');
        return fh.createReadStream();
      } catch (e) {
        if (isCode(e, 'ENOENT')) return undefined; // uploaded and dropped meanwhile
        throw e;
      }
    });

  const hash = (d: Digest): TE.TaskEither<VolumeError, { digest: string; size: number }> =>
    tryFs('verifyCache', d, async () => {
      const hasher = makeHasher();
      hasher.stream.resume();
      await pipeline(createReadStream(blobPath(d)), hasher.stream);
      return hasher.result();
    });

  const remove = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    tryFs('delete', d, () =>
      locked(d, async () => {
        setEntry(d, undefined);
        dirtyBlobs.delete(d);
        try {
          unlinkSync(blobPath(d));
          return true;
        } catch (e) {
          if (isCode(e, 'ENOENT')) return false;
          throw e;
        }
      }),
    );

  const quarantine = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    tryFs('quarantine', d, () =>
      locked(d, async () => {
        if (index.get(d)?.trusted !== false) return false;
        setEntry(d, undefined);
        dirtyBlobs.delete(d);
        await fsp.rename(blobPath(d), path.join(corruptDir, `${d}.${Date.now()}`));
        return true;
      }),
    );

  const flush = (): TE.TaskEither<VolumeError, void> =>
    tryFs('flush', undefined, async () => {
      const blobs = [...dirtyBlobs];
      const dirs = [...dirtyDirs];
      // Many fsyncs at once: the file system commits them in a few journal transactions,
      // where one after the other each waits for its own (a scan flushes hundreds of blobs).
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < blobs.length) {
          const d = blobs[next++] as Digest;
          try {
            await fsyncPath(blobPath(d));
          } catch (e) {
            // Gone from the cache only once the store confirmed it: durable there.
            if (!(isCode(e, 'ENOENT') && index.get(d) === undefined)) throw e;
          }
          dirtyBlobs.delete(d);
        }
      };
      await Promise.all(Array.from({ length: Math.min(FLUSH_CONCURRENCY, blobs.length) }, worker));
      await Promise.all(
        dirs.map(async (p) => {
          await fsyncPath(p);
          dirtyDirs.delete(p);
        }),
      );
    });

  return pipe(
    tryFs('openCache', dir, scan),
    TE.map(
      (): BlobCache => ({
        dir,
        stage,
        stageBytes,
        commit,
        discard,
        entry: (d) => index.get(d),
        entries: () => index.entries(),
        open,
        read: readSmall,
        hash,
        remove,
        quarantine,
        flush,
        count: () => index.size,
        bytes: () => totalBytes,
      }),
    ),
  );
};
