import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  openSync,
  promises as fsp,
  readSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
import { fsError } from './errors';

/**
 * Blobs up to this size are appended and read with synchronous calls on the calling thread: a
 * mail is ~20 KB, and one libuv threadpool round trip per call measured as most of a
 * SmartScan's main-thread time. The cache is on local disk, where such a call takes microseconds.
 */
export const SMALL_BLOB_BYTES = 4 * 1024 * 1024;

/** A spool file is closed for appends past this size (about one pack). */
const DEFAULT_ROTATE_BYTES = 8 * 1024 * 1024;
/** Spool files kept open for reads. */
const OPEN_FILES = 64;
/**
 * Bytes of recently appended blobs kept in memory, by default: an uploader that reads the blobs
 * (a sealed volume's, which it encrypts) usually takes a blob within a second of its put, and
 * reading it back from the spool file cost as much as the first read.
 */
export const RECENT_BYTES = 64 * 1024 * 1024;

// A record: magic, reserved, size (u64), SHA-256 of the bytes, then the bytes.
const MAGIC = 0x5a584253; // 'ZXBS'
export const RECORD_HEADER_BYTES = 48;

/** The header of one spool record (exported for tests that fake a crash). */
export const recordHeader = (digest: Digest, size: number): Buffer => {
  const h = Buffer.alloc(RECORD_HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeBigUInt64BE(BigInt(size), 8);
  Buffer.from(digest, 'hex').copy(h, 16);
  return h;
};

interface Record {
  readonly file: number;
  /** Where the bytes start in the spool file. */
  readonly offset: number;
  readonly size: number;
  readonly modifiedAt: number;
}

export interface CacheEntry {
  readonly size: number;
  /** Epoch ms of the write. */
  readonly modifiedAt: number;
}

/**
 * The local write cache of the S3 volume: blobs appended to spool files
 * (`<dir>/spool/<n>.spool`, a 48-byte header then the bytes of each), about one pack per file,
 * so that caching 20,000 mails creates, syncs and removes a few hundred files, not 20,000
 * (creating and unlinking a file cost ~0.4 ms each on the test VM). A blob of more than
 * `SMALL_BLOB_BYTES`, or one streamed, gets a spool file of its own. `flush` fsyncs the files
 * written since the last flush: the durability point. A spool file is removed once none of its
 * blobs is pending any more.
 *
 * At open, every spool file left by an earlier run is read back and each record's bytes are
 * checked against its digest: a record cut short by a crash (never flushed, so never promised)
 * ends that file; a record whose bytes do not match is reported by `damaged()` and its file is
 * moved to `<dir>/corrupt/` once its good blobs are uploaded. One process per directory.
 */
export interface BlobCache {
  readonly dir: string;
  entry(digest: Digest): CacheEntry | undefined;
  entries(): IterableIterator<Digest>;
  /**
   * Appends a blob already in memory and hashed; a blob already cached is left as it is. With
   * `recentBytes` above 0, `bytes` is kept, not copied: do not change it after. With 0 it is not
   * kept, and the caller may reuse it.
   */
  append(bytes: Buffer, digest: Digest): E.Either<VolumeError, void>;
  /**
   * Streams a blob into a spool file of its own, hashing it; with `expected`, other content is
   * `BlobCorrupt` and nothing is kept. Resolves with what was cached.
   */
  appendStream(
    content: Readable,
    expected?: Digest,
  ): TE.TaskEither<VolumeError, { readonly digest: Digest; readonly size: number; readonly added: boolean }>;
  /** The bytes of a cached blob of at most `SMALL_BLOB_BYTES` (`undefined` if not cached). Callers must not change them. */
  read(digest: Digest): E.Either<VolumeError, Buffer | undefined>;
  /** Where a cached blob's bytes are on disk (`undefined` if not cached). */
  where(digest: Digest): { readonly file: string; readonly offset: number; readonly length: number } | undefined;
  /** A read stream of a cached blob, opened before it resolves (`undefined` if not cached). */
  open(digest: Digest): TE.TaskEither<VolumeError, Readable | undefined>;
  /** Drops a blob from the cache (uploaded, or deleted); false when it was not there. */
  remove(digest: Digest): boolean;
  /**
   * Drops a blob found damaged on disk after its put (its bytes no longer hash to its digest):
   * its spool file goes to `corrupt/` once its other blobs are uploaded, as a file found damaged
   * at open does.
   */
  quarantine(digest: Digest): void;
  /** Blobs found damaged at open (their spool files go to `corrupt/`). */
  damaged(): readonly Digest[];
  flush(): TE.TaskEither<VolumeError, void>;
  close(): TE.TaskEither<VolumeError, void>;
  readonly count: () => number;
  readonly bytes: () => number;
}

/** Fills `into` from `fd` at `position`; a file that ends before is an Error saying `shortBy`. */
export const readExactlySync = (fd: number, into: Buffer, position: number, shortBy: string): void => {
  for (let done = 0; done < into.length; ) {
    const got = readSync(fd, into, done, into.length - done, position + done);
    if (got <= 0) throw new Error(shortBy);
    done += got;
  }
};

const spoolName = (n: number): string => `${String(n).padStart(10, '0')}.spool`;

/** Opens (creating) a cache directory and reads back the blobs a previous run left to upload. */
export const makeBlobCache = (
  dir: string,
  options: { readonly rotateBytes?: number; readonly recentBytes?: number } = {},
): TE.TaskEither<VolumeError, BlobCache> =>
  TE.tryCatch(
    async () => openCache(dir, options.rotateBytes ?? DEFAULT_ROTATE_BYTES, options.recentBytes ?? RECENT_BYTES),
    (e) => fsError('openCache', dir, e),
  );

const openCache = async (dir: string, rotateBytes: number, recentLimit: number): Promise<BlobCache> => {
  const spoolDir = path.join(dir, 'spool');
  const corruptDir = path.join(dir, 'corrupt');
  await fsp.mkdir(spoolDir, { recursive: true });
  await fsp.mkdir(corruptDir, { recursive: true });
  // The layout of earlier versions (one file per blob) has nothing this version reads.

  const records = new Map<Digest, Record>();
  const recent = new Map<Digest, Buffer>(); // insertion order = oldest first
  let recentBytes = 0;
  const forgetRecent = (d: Digest): void => {
    const b = recent.get(d);
    if (b === undefined) return;
    recent.delete(d);
    recentBytes -= b.length;
  };
  const liveIn = new Map<number, number>(); // spool file → records pending in it
  const damagedFiles = new Set<number>();
  const damaged: Digest[] = [];
  let totalBytes = 0;
  let nextFile = 0;
  let current: { n: number; fd: number; size: number } | undefined;
  const unsynced = new Set<number>(); // files written since the last flush
  let dirDirty = false;
  const fds = new Map<number, number>(); // open for reads; insertion order = least recent first
  const fileOf = (n: number): string => path.join(spoolDir, spoolName(n));

  const fdFor = (n: number): number => {
    if (current?.n === n) return current.fd;
    const open = fds.get(n);
    if (open !== undefined) {
      fds.delete(n);
      fds.set(n, open);
      return open;
    }
    if (fds.size >= OPEN_FILES) {
      const [oldest, fd] = fds.entries().next().value as [number, number];
      fds.delete(oldest);
      closeSync(fd);
    }
    const fd = openSync(fileOf(n), 'r');
    fds.set(n, fd);
    return fd;
  };

  const setRecord = (d: Digest, r: Record): void => {
    records.set(d, r);
    liveIn.set(r.file, (liveIn.get(r.file) ?? 0) + 1);
    totalBytes += r.size;
  };

  // A file none of whose blobs is pending: removed (or kept for a person, when damaged).
  const release = (n: number): void => {
    if ((liveIn.get(n) ?? 0) > 0) return;
    if (current?.n === n) {
      if (current.size === 0) return;
      closeSync(current.fd); // emptied by uploads: the next append starts a new file
      current = undefined;
    }
    liveIn.delete(n);
    const fd = fds.get(n);
    if (fd !== undefined) closeSync(fd);
    fds.delete(n);
    unsynced.delete(n);
    if (damagedFiles.has(n)) renameSync(fileOf(n), path.join(corruptDir, `${spoolName(n)}.${Date.now()}`));
    else unlinkSync(fileOf(n));
    dirDirty = true;
  };

  // ---- recovery: read back what an earlier run left
  const readBack = (n: number): void => {
    const fd = openSync(fileOf(n), 'r');
    try {
      const size = fstatSync(fd).size;
      const header = Buffer.alloc(RECORD_HEADER_BYTES);
      let at = 0;
      liveIn.set(n, 0);
      while (at + RECORD_HEADER_BYTES <= size) {
        if (readSync(fd, header, 0, RECORD_HEADER_BYTES, at) < RECORD_HEADER_BYTES || header.readUInt32BE(0) !== MAGIC) break;
        const length = Number(header.readBigUInt64BE(8));
        const digest = header.subarray(16, 48).toString('hex') as Digest;
        if (at + RECORD_HEADER_BYTES + length > size) break; // cut short by a crash
        const hash = createHash('sha256');
        const chunk = Buffer.allocUnsafe(Math.min(length, 1024 * 1024));
        for (let done = 0; done < length; ) {
          const got = readSync(fd, chunk, 0, Math.min(chunk.length, length - done), at + RECORD_HEADER_BYTES + done);
          if (got <= 0) break;
          hash.update(chunk.subarray(0, got));
          done += got;
        }
        if (hash.digest('hex') !== digest) {
          damaged.push(digest);
          damagedFiles.add(n);
        } else if (!records.has(digest)) {
          setRecord(digest, { file: n, offset: at + RECORD_HEADER_BYTES, size: length, modifiedAt: Date.now() });
        }
        at += RECORD_HEADER_BYTES + length;
      }
    } finally {
      closeSync(fd);
    }
  };
  const names = readdirSync(spoolDir).filter((f) => /^\d{10}\.spool$/.test(f)).sort();
  for (const name of names) {
    const n = Number(name.slice(0, 10));
    nextFile = Math.max(nextFile, n + 1);
    readBack(n);
    unsynced.add(n); // maybe never synced before that run ended: the next flush makes sure
  }
  for (const name of names) release(Number(name.slice(0, 10)));
  // Leftovers of streamed puts killed mid-way.
  for (const name of readdirSync(spoolDir)) if (name.endsWith('.part')) unlinkSync(path.join(spoolDir, name));

  const appendTo = (bytes: Buffer, digest: Digest): void => {
    if (current === undefined || current.size >= rotateBytes) {
      const previous = current;
      const n = nextFile++;
      current = { n, fd: openSync(fileOf(n), 'wx+'), size: 0 }; // read too: pending blobs are read back from it
      dirDirty = true;
      if (previous !== undefined) {
        fds.set(previous.n, previous.fd); // stays open for reads until released
        release(previous.n);
      }
    }
    const header = recordHeader(digest, bytes.length);
    const total = header.length + bytes.length;
    let written = writevSync(current.fd, [header, bytes], current.size);
    // A short write (rare, e.g. a signal): finish it, or fail without recording the blob.
    while (written < total) {
      const rest = Buffer.concat([header, bytes]).subarray(written);
      const more = writeSync(current.fd, rest, 0, rest.length, current.size + written);
      if (more <= 0) throw new Error('short write to the spool file');
      written += more;
    }
    setRecord(digest, { file: current.n, offset: current.size + header.length, size: bytes.length, modifiedAt: Date.now() });
    current.size += total;
    unsynced.add(current.n);
    if (recentLimit === 0) return;
    recent.set(digest, bytes);
    recentBytes += bytes.length;
    for (const [old] of recent) {
      if (recentBytes <= recentLimit) break;
      forgetRecent(old);
    }
  };

  const append = (bytes: Buffer, digest: Digest): E.Either<VolumeError, void> =>
    records.has(digest)
      ? E.right(undefined)
      : E.tryCatch(
          () => appendTo(bytes, digest),
          (e) => fsError('put', digest, e),
        );

  const appendStream = (content: Readable, expected?: Digest): TE.TaskEither<VolumeError, { digest: Digest; size: number; added: boolean }> => async () => {
    const n = nextFile++;
    const part = `${fileOf(n)}.part`;
    const hash = createHash('sha256');
    let size = 0;
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(part, 'wx');
      let at = RECORD_HEADER_BYTES; // the header is written once the digest is known
      for await (const chunk of content) {
        const b = chunk as Buffer;
        hash.update(b);
        size += b.length;
        for (let done = 0; done < b.length; ) {
          const { bytesWritten } = await fh.write(b, done, b.length - done, at + done);
          done += bytesWritten;
        }
        at += b.length;
      }
      const digest = hash.digest('hex') as Digest;
      if (expected !== undefined && digest !== expected) {
        await fh.close();
        fh = undefined;
        await fsp.rm(part, { force: true });
        return E.left<VolumeError, { digest: Digest; size: number; added: boolean }>({
          _tag: 'BlobCorrupt',
          op: 'put',
          key: expected,
          cause: new Error(`content hashes to ${digest}`),
        });
      }
      await fh.write(recordHeader(digest, size), 0, RECORD_HEADER_BYTES, 0);
      await fh.close();
      fh = undefined;
      if (records.has(digest)) {
        await fsp.rm(part, { force: true });
        return E.right({ digest, size, added: false });
      }
      await fsp.rename(part, fileOf(n));
      setRecord(digest, { file: n, offset: RECORD_HEADER_BYTES, size, modifiedAt: Date.now() });
      unsynced.add(n);
      dirDirty = true;
      return E.right({ digest, size, added: true });
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await fsp.rm(part, { force: true });
      return E.left(fsError('put', expected, e));
    }
  };

  const read = (d: Digest): E.Either<VolumeError, Buffer | undefined> => {
    const r = records.get(d);
    if (r === undefined) return E.right(undefined);
    const kept = recent.get(d);
    if (kept !== undefined) return E.right(kept);
    return E.tryCatch(
      () => {
        const out = Buffer.allocUnsafe(r.size);
        readExactlySync(fdFor(r.file), out, r.offset, `the spool file ${spoolName(r.file)} is shorter than its record of ${d}`);
        return out;
      },
      (e) => fsError('get', d, e),
    );
  };

  const open = (d: Digest): TE.TaskEither<VolumeError, Readable | undefined> => {
    const r = records.get(d);
    if (r === undefined) return TE.right(undefined);
    if (r.size === 0) return TE.right(Readable.from([], { objectMode: false }));
    return TE.tryCatch(
      async () => {
        const fh = await fsp.open(fileOf(r.file), 'r');
        return fh.createReadStream({ start: r.offset, end: r.offset + r.size - 1 }) as Readable;
      },
      (e) => fsError('get', d, e),
    );
  };

  const remove = (d: Digest): boolean => {
    const r = records.get(d);
    if (r === undefined) return false;
    records.delete(d);
    forgetRecent(d);
    totalBytes -= r.size;
    liveIn.set(r.file, (liveIn.get(r.file) ?? 1) - 1);
    release(r.file);
    return true;
  };

  const quarantine = (d: Digest): void => {
    const r = records.get(d);
    if (r === undefined) return;
    damagedFiles.add(r.file);
    remove(d);
  };

  // Few files per flush (one per ~8 MiB): their fsyncs run on a worker of libuv's pool.
  const flush = (): TE.TaskEither<VolumeError, void> =>
    TE.tryCatch(
      async () => {
        const files = [...unsynced];
        const syncDir = dirDirty;
        unsynced.clear();
        dirDirty = false;
        try {
          await Promise.all(
            files.map(async (n) => {
              if (current?.n !== n && !liveIn.has(n)) return; // released: its blobs are in the store
              try {
                const fh = await fsp.open(fileOf(n), 'r+');
                try {
                  await fh.sync();
                } finally {
                  await fh.close();
                }
              } catch (e) {
                // Released while we waited for the open: its blobs are in the store.
                if (!((e as NodeJS.ErrnoException).code === 'ENOENT' && current?.n !== n && !liveIn.has(n))) throw e;
              }
            }),
          );
          if (syncDir) {
            const fh = await fsp.open(spoolDir, 'r');
            try {
              await fh.sync();
            } finally {
              await fh.close();
            }
          }
        } catch (e) {
          for (const n of files) unsynced.add(n);
          if (syncDir) dirDirty = true;
          throw e;
        }
      },
      (e) => fsError('flush', undefined, e),
    );

  // After the last flush: nothing is written any more; an emptied current file goes.
  const closeFiles: TE.TaskEither<VolumeError, void> = TE.tryCatch(
    async () => {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
      if (current !== undefined) {
        closeSync(current.fd);
        const n = current.n;
        current = undefined;
        release(n);
      }
    },
    (e) => fsError('close', undefined, e),
  );

  return {
    dir,
    entry: (d) => {
      const r = records.get(d);
      return r === undefined ? undefined : { size: r.size, modifiedAt: r.modifiedAt };
    },
    entries: () => records.keys(),
    append,
    appendStream,
    read,
    where: (d) => {
      const r = records.get(d);
      return r === undefined ? undefined : { file: fileOf(r.file), offset: r.offset, length: r.size };
    },
    open,
    remove,
    quarantine,
    damaged: () => damaged,
    flush,
    close: () =>
      pipe(
        flush(),
        TE.flatMap(() => closeFiles),
      ),
    count: () => records.size,
    bytes: () => totalBytes,
  };
};
