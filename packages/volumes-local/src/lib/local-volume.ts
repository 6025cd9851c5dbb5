import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import * as TE from 'fp-ts/TaskEither';
import { Digest, digestShard, type BlobStat, type BlobVolume, type PutOptions, type PutResult, type VolumeError } from '@zxbackup/volume-contract';
import { compress, compressSmall, createCompressor, FileSink, failingStream, isNotFound, nextChunk, sha256, verifiedFileStream, verifyWhole, writeFully } from './blob-io';
import { closeFd, fstatFd, fsyncFd, fsyncPath, openFd, readFdUpTo, renamePath, unlinkPath, utimesPath, writevFully } from './fd-io';
import { decodeHeader, encodeHeader, HEADER_SIZE, type Codec } from './format';
import { errnoOf, fromFsError } from './fs-errors';
import { syncfs, syncfsUsable } from './syncfs';
import { isAbandonedTemp, TEMP_DIR, tempName } from './temp-files';

export interface LocalVolumeOptions {
  /** The directory holding `<xx>/<digest>` (a backup path's `items/`, or an NFS/FUSE mount). */
  readonly root: string;
  /**
   * `auto` (default) compresses a blob when a fast probe of its first 64 KB shrinks it enough
   * (mail text) and stores it raw otherwise (compressed or random attachments).
   */
  readonly compression?: 'auto' | 'always' | 'never';
  /**
   * `group` (default): `flush()` makes every blob put before it durable (fsync of the files, then
   * rename, then fsync of the directories), so many puts share one sync. `none`: no fsync at all,
   * blobs are renamed into place at once (tests, scratch volumes).
   */
  readonly syncMode?: 'group' | 'none';
}

/** The local volume: a `BlobVolume` plus the housekeeping of its temp directory. */
export interface LocalVolume extends BlobVolume {
  readonly root: string;
  /**
   * Removes temp files left by dead writers (this host: process gone; other hosts: older than a
   * day) and returns how many were removed. `makeLocalVolume` runs it once.
   */
  cleanupTemp(): TE.TaskEither<VolumeError, number>;
}

// The compressibility probe looks at this much of a blob's start.
const PROBE_BYTES = 64 * 1024;
// Blobs up to this size are read whole and written with one call (a put holds at most this much
// memory); larger ones are streamed. Most mail is far smaller; this covers ~99% of the blobs.
const WHOLE_PUT_BYTES = 1024 * 1024;
// Below this, the header and codec overhead eat the gain.
const MIN_COMPRESSIBLE_BYTES = 256;
// Store compressed only when the probe at least shrinks it to this share. Mail text (~0.35-0.45)
// qualifies. Base64 attachments (~0.76) do not: they are most of a mailbox's bytes, and saving a
// quarter of them would cost as much CPU on put and get as all the rest (see the README's
// figures); random or already-compressed data (~1.0) never does.
const MAX_COMPRESSED_RATIO = 0.7;
// Blob files up to this size are read with one call on `get`.
const WHOLE_READ_BYTES = 1024 * 1024;
// Parallel fsyncs / renames in a flush: enough to keep libuv's threadpool busy and let the
// file system batch journal commits, without opening thousands of descriptors at once.
const FLUSH_CONCURRENCY = 32;
// A temp file's descriptor stays open from its write to its fsync (saving an open and a close
// per blob), for at most this many blobs: a process has few descriptors (often 1024, LevelDB
// takes hundreds). Past it, the oldest is fsynced early in the background, or closed unsynced
// when EARLY_SYNCS are already running (the flush then fsyncs it by path, as before).
const MAX_HELD_FDS = 128;
// Each early fsync blocks a libuv thread (4 by default) until the disk answers: keep some for
// the reads and writes of the puts themselves.
const EARLY_SYNCS = 2;
// From this many files (or directories) to sync on, a flush makes them durable with one syncfs
// where it is as safe as fsync (see syncfs.ts): a process spawn costs about as much as ~50 fsyncs.
const SYNCFS_MIN_FILES = 64;

interface Pending {
  readonly tempPath: string;
  /** The temp file's descriptor while it is kept open for its fsync. */
  fd: number | undefined;
  /** Its data reached the disk (an early fsync or a failed flush's). */
  synced: boolean;
  /** The fsync under way; an early one and a flush wait for the same. */
  syncing: Promise<void> | undefined;
  /** A failed early fsync or close, reported by the next flush. */
  failure: unknown;
}

const runLimited = async <A>(items: readonly A[], limit: number, task: (item: A) => Promise<void>): Promise<void> => {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next] as A;
      next += 1;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
};

const removeQuietly = async (target: string): Promise<void> => {
  // Only on a path already failing: the first error is the one reported; a temp that stays
  // behind is invisible and removed by `cleanupTemp`.
  await fs.rm(target, { force: true }).catch(() => undefined);
};

/**
 * Opens a blob volume on a local or NFS/FUSE directory; the directory must exist and be
 * writable (the mount must be up). Blobs live in `<root>/<xx>/<digest>`, temp files in
 * `<root>/.tmp/`; a rename is the commit point, so no partial blob is ever visible under a
 * digest and nothing relies on hard links or O_EXCL across NFS clients.
 */
export const makeLocalVolume = (options: LocalVolumeOptions): TE.TaskEither<VolumeError, LocalVolume> => {
  const root = path.resolve(options.root);
  return pipe(
    TE.tryCatch(async () => {
      const stat = await fs.stat(root);
      if (!stat.isDirectory()) throw Object.assign(new Error(`${root} is not a directory`), { code: 'ENOTDIR' });
      await fs.access(root, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
      await fs.mkdir(path.join(root, TEMP_DIR)).catch((error: unknown) => {
        if (errnoOf(error) !== 'EEXIST') throw error;
      });
      const syncMode = options.syncMode ?? 'group';
      const canSyncfs = syncMode === 'group' && (await syncfsUsable(root));
      return openLocalVolume(root, options.compression ?? 'auto', syncMode, canSyncfs);
    }, (cause) => fromFsError('open', cause, root)),
    // Leftovers of a killed writer go at open, so they never pile up.
    TE.tap((volume) => volume.cleanupTemp()),
  );
};

const openLocalVolume = (root: string, compression: 'auto' | 'always' | 'never', syncMode: 'group' | 'none', canSyncfs: boolean): LocalVolume => {
  const tempDir = path.join(root, TEMP_DIR);
  const shardDir = (digest: Digest): string => path.join(root, digestShard(digest));
  const finalPath = (digest: Digest): string => path.join(shardDir(digest), digest);

  // Blobs written but not yet flushed (group mode): readable from their temp file, renamed into
  // place only once fsynced, so a machine crash never leaves a torn file under a digest.
  const pending = new Map<Digest, Pending>();
  // Pending blobs whose descriptor is still open, oldest first (a Set keeps insertion order).
  const heldFds = new Set<Pending>();
  let earlySyncs = 0;
  let useSyncfs = canSyncfs;
  // Directories whose entries changed since the last flush (renames, deletes, new shards).
  const dirtyDirs = new Set<string>();
  const knownShards = new Set<string>();
  let flushChain: Promise<void> = Promise.resolve();
  let closed = false;

  const guard = <A>(op: string, run: () => Promise<E.Either<VolumeError, A>>): TE.TaskEither<VolumeError, A> => {
    return async () => {
      if (closed) return E.left({ _tag: 'VolumeUnavailable', op, cause: 'the volume is closed' });
      try {
        return await run();
      } catch (cause) {
        return E.left(fromFsError(op, cause));
      }
    };
  };

  /** ENOENT on a blob path: a missing blob, or the whole volume gone (unmounted, deleted)? */
  const missing = async (op: string, digest: Digest): Promise<VolumeError> => {
    try {
      await fs.stat(tempDir);
      return { _tag: 'BlobNotFound', op, key: digest };
    } catch (cause) {
      return fromFsError(op, cause, digest);
    }
  };

  const ensureShard = async (digest: Digest): Promise<void> => {
    const shard = digestShard(digest);
    if (knownShards.has(shard)) return;
    // Never recursive: recreating a vanished root would write onto the bare mount point.
    try {
      await fs.mkdir(shardDir(digest));
      dirtyDirs.add(root);
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw error;
    }
    knownShards.add(shard);
  };

  const renameIntoPlace = async (tempPath: string, digest: Digest): Promise<void> => {
    await ensureShard(digest);
    await renamePath(tempPath, finalPath(digest));
    dirtyDirs.add(shardDir(digest));
  };

  /** Whether the blob is already stored; refreshes its mtime so a purge's grace period covers it. */
  const alreadyStored = async (digest: Digest): Promise<boolean> => {
    if (pending.has(digest)) return true;
    const now = new Date();
    try {
      await utimesPath(finalPath(digest), now, now);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  };

  /** Takes a pending blob's open descriptor, if it still has one. */
  const takeFd = (entry: Pending): number | undefined => {
    const fd = entry.fd;
    entry.fd = undefined;
    heldFds.delete(entry);
    return fd;
  };

  /** fsyncs a pending blob's temp file once, through its open descriptor when it has one. */
  const syncEntry = (entry: Pending): Promise<void> => {
    if (entry.synced) return Promise.resolve();
    entry.syncing ??= (async () => {
      try {
        const fd = takeFd(entry);
        if (fd === undefined) {
          await fsyncPath(entry.tempPath);
        } else {
          try {
            await fsyncFd(fd);
          } catch (error) {
            await closeFd(fd).catch(() => undefined); // the fsync error is the one that matters
            throw error;
          }
          // NFS reports write-back errors on close: it counts as part of the sync.
          await closeFd(fd);
        }
        entry.synced = true;
      } finally {
        entry.syncing = undefined;
      }
    })();
    return entry.syncing;
  };

  /** Keeps a new pending blob's descriptor, making room by syncing or closing the oldest. */
  const holdFd = (entry: Pending): void => {
    heldFds.add(entry);
    if (heldFds.size <= MAX_HELD_FDS) return;
    const oldest = heldFds.values().next().value as Pending;
    // With syncfs, the flush syncs everything at once: an early fsync would be wasted.
    if (earlySyncs < EARLY_SYNCS && !useSyncfs) {
      earlySyncs += 1;
      syncEntry(oldest)
        .catch((error: unknown) => {
          oldest.failure = error;
        })
        .finally(() => {
          earlySyncs -= 1;
        });
    } else {
      const fd = takeFd(oldest) as number;
      closeFd(fd).catch((error: unknown) => {
        oldest.failure = error;
      });
    }
  };

  /** Writes a temp file with one call; returns its descriptor still open when `keepOpen`. */
  const writeTemp = async (header: Buffer, body: Buffer, keepOpen: boolean): Promise<{ tempPath: string; fd: number | undefined }> => {
    const tempPath = path.join(tempDir, tempName());
    const fd = await openFd(tempPath, 'wx');
    try {
      await writevFully(fd, [header, body], 0);
      if (!keepOpen) await closeFd(fd);
    } catch (error) {
      await closeFd(fd).catch(() => undefined); // the write error is the one that matters
      await removeQuietly(tempPath);
      throw error;
    }
    return { tempPath, fd: keepOpen ? fd : undefined };
  };

  /** Makes a complete temp file the blob `digest`; another writer may have won meanwhile. */
  const commit = async (digest: Digest, tempPath: string, size: number, fd?: number): Promise<PutResult> => {
    try {
      if (syncMode === 'group') {
        if (pending.has(digest)) {
          if (fd !== undefined) await closeFd(fd);
          await unlinkPath(tempPath);
          return { digest, size, stored: false };
        }
        const entry: Pending = { tempPath, fd, synced: false, syncing: undefined, failure: undefined };
        pending.set(digest, entry);
        if (fd !== undefined) holdFd(entry);
      } else {
        await renameIntoPlace(tempPath, digest);
      }
      return { digest, size, stored: true };
    } catch (error) {
      await removeQuietly(tempPath);
      throw error;
    }
  };

  const wrongDigest = (expected: Digest, actual: Digest): E.Either<VolumeError, PutResult> =>
    E.left({ _tag: 'BlobCorrupt', op: 'put', key: expected, cause: `content hashes to ${actual}` });

  // The probe is at most PROBE_BYTES: compressing it on this thread is cheap (see blob-io). When
  // it was the whole blob, its compressed form is the body.
  const chooseCodec = (blob: Buffer): { codec: Codec; compressed?: Buffer } => {
    const head = blob.subarray(0, PROBE_BYTES);
    if (compression === 'never' || (compression === 'auto' && head.length < MIN_COMPRESSIBLE_BYTES)) return { codec: 'raw' };
    const probe = compressSmall(head);
    if (compression === 'always' || probe.length <= head.length * MAX_COMPRESSED_RATIO) {
      return head.length === blob.length ? { codec: 'brotli', compressed: probe } : { codec: 'brotli' };
    }
    return { codec: 'raw' };
  };

  const putWhole = async (raw: Buffer, options: PutOptions): Promise<E.Either<VolumeError, PutResult>> => {
    const digest = sha256(raw);
    if (options.expectedDigest !== undefined && options.expectedDigest !== digest) return wrongDigest(options.expectedDigest, digest);
    // The digest is known before writing: a duplicate costs no write at all.
    if (await alreadyStored(digest)) return E.right({ digest, size: raw.length, stored: false });
    const { codec, compressed } = chooseCodec(raw);
    const body = codec === 'brotli' ? (compressed ?? (await compress(raw))) : raw;
    const { tempPath, fd } = await writeTemp(encodeHeader({ codec, size: raw.length }), body, syncMode === 'group');
    return E.right(await commit(digest, tempPath, raw.length, fd));
  };

  const putStreamed = async (
    head: Buffer[],
    source: AsyncIterator<unknown>,
    options: PutOptions,
  ): Promise<E.Either<VolumeError, PutResult>> => {
    const headBytes = Buffer.concat(head);
    const { codec } = chooseCodec(headBytes.subarray(0, PROBE_BYTES));
    const hash = createHash('sha256');
    let size = 0;
    const content = Readable.from(
      (async function* () {
        hash.update(headBytes);
        size += headBytes.length;
        yield headBytes;
        for (let chunk = await nextChunk(source); chunk !== undefined; chunk = await nextChunk(source)) {
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      })(),
      { objectMode: false },
    );
    const tempPath = path.join(tempDir, tempName());
    const handle = await fs.open(tempPath, 'wx');
    try {
      const sink = new FileSink(handle, HEADER_SIZE);
      if (codec === 'brotli') await pipeline(content, createCompressor(options.size), sink);
      else await pipeline(content, sink);
      // The raw size is known only now; the header goes in last, at offset 0.
      await writeFully(handle, encodeHeader({ codec, size }), 0);
      await handle.close();
    } catch (error) {
      await handle.close().catch(() => undefined);
      await removeQuietly(tempPath);
      throw error;
    }
    const digest = hash.digest('hex') as Digest;
    if (options.expectedDigest !== undefined && options.expectedDigest !== digest) {
      await fs.rm(tempPath);
      return wrongDigest(options.expectedDigest, digest);
    }
    if (await alreadyStored(digest).catch(async (error: unknown) => {
      await removeQuietly(tempPath);
      throw error;
    })) {
      await fs.rm(tempPath);
      return E.right({ digest, size, stored: false });
    }
    return E.right(await commit(digest, tempPath, size));
  };

  const put = (content: Readable, options: PutOptions = {}): TE.TaskEither<VolumeError, PutResult> =>
    guard('put', async () => {
      const source = content[Symbol.asyncIterator]();
      let finished = false;
      try {
        const head: Buffer[] = [];
        let headLength = 0;
        while (headLength <= WHOLE_PUT_BYTES) {
          const chunk = await nextChunk(source);
          if (chunk === undefined) {
            finished = true;
            return await putWhole(head.length === 1 ? (head[0] as Buffer) : Buffer.concat(head), options);
          }
          head.push(chunk);
          headLength += chunk.length;
        }
        const result = await putStreamed(head, source, options);
        finished = true;
        return result;
      } finally {
        // On failure, stop the caller's stream; its own teardown error would add nothing.
        if (!finished) await source.return?.().catch(() => undefined);
      }
    });

  /** Opens a blob for reading: its pending temp file first, then its place in the shard. */
  const openBlob = async (op: string, digest: Digest): Promise<E.Either<VolumeError, number>> => {
    const temp = pending.get(digest);
    if (temp !== undefined) {
      try {
        return E.right(await openFd(temp.tempPath, 'r'));
      } catch (error) {
        // A flush renamed it meanwhile: it is in its shard now.
        if (!isNotFound(error)) throw error;
      }
    }
    try {
      return E.right(await openFd(finalPath(digest), 'r'));
    } catch (error) {
      if (isNotFound(error)) return E.left(await missing(op, digest));
      throw error;
    }
  };

  const get = (digest: Digest): TE.TaskEither<VolumeError, Readable> =>
    guard('get', async () => {
      const opened = await openBlob('get', digest);
      if (E.isLeft(opened)) return opened;
      const fd = opened.right;
      let streaming = false;
      try {
        const { size: fileSize } = await fstatFd(fd);
        const first = await readFdUpTo(fd, Math.min(fileSize, WHOLE_READ_BYTES), 0);
        const header = decodeHeader(first);
        if (E.isLeft(header)) return E.right(failingStream({ _tag: 'BlobCorrupt', op: 'get', key: digest, cause: header.left }));
        const compressed = header.right.codec === 'brotli';
        if (fileSize <= WHOLE_READ_BYTES) {
          return E.right(await verifyWhole(digest, header.right.size, first.subarray(HEADER_SIZE), compressed));
        }
        streaming = true;
        return E.right(verifiedFileStream(fd, HEADER_SIZE, digest, header.right.size, compressed));
      } finally {
        if (!streaming) await closeFd(fd);
      }
    });

  const stat = (digest: Digest): TE.TaskEither<VolumeError, BlobStat> =>
    guard('stat', async () => {
      const opened = await openBlob('stat', digest);
      if (E.isLeft(opened)) return opened;
      const fd = opened.right;
      try {
        const fileStat = await fstatFd(fd);
        const header = decodeHeader(await readFdUpTo(fd, HEADER_SIZE, 0));
        if (E.isLeft(header)) return E.left({ _tag: 'BlobCorrupt', op: 'stat', key: digest, cause: header.left });
        return E.right({ digest, size: header.right.size, storedSize: fileStat.size, modifiedAt: fileStat.mtimeMs });
      } finally {
        await closeFd(fd);
      }
    });

  const has = (digest: Digest): TE.TaskEither<VolumeError, boolean> =>
    guard('has', async () => {
      if (pending.has(digest)) return E.right(true);
      try {
        await fs.stat(finalPath(digest));
        return E.right(true);
      } catch (error) {
        if (!isNotFound(error)) throw error;
        const why = await missing('has', digest);
        return why._tag === 'BlobNotFound' ? E.right(false) : E.left(why);
      }
    });

  const remove = (digest: Digest): TE.TaskEither<VolumeError, void> =>
    guard('delete', async () => {
      const temp = pending.get(digest);
      if (temp !== undefined) {
        pending.delete(digest);
        const fd = takeFd(temp);
        // The blob is discarded: what its close could report about its data no longer matters.
        if (fd !== undefined) await closeFd(fd).catch(() => undefined);
        try {
          await unlinkPath(temp.tempPath);
          return E.right(undefined);
        } catch (error) {
          // A running flush renamed it first: delete it from its shard below.
          if (!isNotFound(error)) throw error;
        }
      }
      try {
        await fs.rm(finalPath(digest));
      } catch (error) {
        if (isNotFound(error)) return E.left(await missing('delete', digest));
        throw error;
      }
      dirtyDirs.add(shardDir(digest));
      return E.right(undefined);
    });

  const list = (visit: (digest: Digest) => void | Promise<void>): TE.TaskEither<VolumeError, number> =>
    guard('list', async () => {
      // Pending blobs are visited from this snapshot unless the walk meets them in their shard
      // (a flush may move them there meanwhile), so each is visited exactly once.
      const unflushed = new Set(pending.keys());
      let visited = 0;
      const shards = (await fs.readdir(root)).filter((name) => /^[0-9a-f]{2}$/.test(name)).sort();
      for (const shard of shards) {
        let dir: Awaited<ReturnType<typeof fs.opendir>>;
        try {
          dir = await fs.opendir(path.join(root, shard), { bufferSize: 256 });
        } catch (error) {
          if (errnoOf(error) === 'ENOTDIR') continue;
          throw error;
        }
        for await (const entry of dir) {
          const name = entry.name;
          if (!Digest.is(name) || digestShard(name) !== shard) continue;
          unflushed.delete(name);
          await visit(name);
          visited += 1;
        }
      }
      for (const digest of unflushed) {
        await visit(digest);
        visited += 1;
      }
      return E.right(visited);
    });

  /** One syncfs for a large batch where it is usable; false when the caller must fsync one by one. */
  const syncWholeFileSystem = async (count: number): Promise<boolean> => {
    if (!useSyncfs || count < SYNCFS_MIN_FILES) return false;
    try {
      await syncfs(tempDir);
      return true;
    } catch (error) {
      // No `sync` program: fsync from now on. Any other failure (an old `sync` without -f, an
      // I/O error anywhere on the file system) falls back to fsyncs for this batch: they tell
      // whether *our* files are durable, and report it if not.
      if (errnoOf(error) === 'ENOENT') useSyncfs = false;
      return false;
    }
  };

  const flushPending = async (): Promise<void> => {
    const batch = [...pending.entries()];
    const stillPending = ([digest, entry]: [Digest, Pending]): boolean => pending.get(digest) === entry;
    // 1. Data first: one syncfs, or fsync every temp file in parallel so the threadpool and the
    // journal batch them.
    for (const item of batch) {
      const entry = item[1];
      if (stillPending(item) && entry.failure !== undefined) {
        const failure = entry.failure;
        entry.failure = undefined; // reported once, like a failed fsync; the next flush syncs again
        throw failure;
      }
    }
    const synced = await syncWholeFileSystem(batch.filter(([, entry]) => !entry.synced).length);
    await runLimited(batch, FLUSH_CONCURRENCY, async (item) => {
      const entry = item[1];
      if (!stillPending(item)) return;
      try {
        if (synced && entry.syncing === undefined) {
          const fd = takeFd(entry);
          if (fd !== undefined) await closeFd(fd);
          entry.synced = true;
        } else {
          await syncEntry(entry);
        }
      } catch (error) {
        if (!(isNotFound(error) && !stillPending(item))) throw error;
      }
    });
    // 2. Then the commit point: rename into the shard.
    await runLimited(batch, FLUSH_CONCURRENCY, async (item) => {
      if (!stillPending(item)) return;
      const [digest, entry] = item;
      try {
        await renameIntoPlace(entry.tempPath, digest);
      } catch (error) {
        if (isNotFound(error) && !stillPending(item)) return; // deleted meanwhile
        throw error;
      }
      if (stillPending(item)) pending.delete(digest);
    });
    // 3. Then the directory entries (the renames, deletes and new shards).
    const dirs = [...dirtyDirs];
    dirtyDirs.clear();
    try {
      if (!(await syncWholeFileSystem(dirs.length))) await runLimited(dirs, FLUSH_CONCURRENCY, fsyncPath);
    } catch (error) {
      for (const dir of dirs) dirtyDirs.add(dir);
      throw error;
    }
  };

  const flush = (): TE.TaskEither<VolumeError, void> =>
    guard('flush', async () => {
      if (syncMode === 'none') return E.right(undefined);
      // Flushes run one after the other; each covers all puts resolved before it started.
      const run = flushChain.then(flushPending);
      flushChain = run.catch(() => undefined);
      await run;
      return E.right(undefined);
    });

  const cleanupTemp = (): TE.TaskEither<VolumeError, number> =>
    guard('cleanupTemp', async () => {
      const ours = new Set([...pending.values()].map((entry) => path.basename(entry.tempPath)));
      const now = Date.now();
      let removed = 0;
      for (const name of await fs.readdir(tempDir)) {
        if (ours.has(name)) continue;
        const target = path.join(tempDir, name);
        let modifiedAt: number;
        try {
          modifiedAt = (await fs.stat(target)).mtimeMs;
        } catch (error) {
          if (isNotFound(error)) continue; // its writer finished meanwhile
          throw error;
        }
        if (!isAbandonedTemp(name, modifiedAt, now)) continue;
        await fs.rm(target, { force: true, recursive: true });
        removed += 1;
      }
      return E.right(removed);
    });

  const close = (): TE.TaskEither<VolumeError, void> =>
    pipe(
      flush(),
      TE.map(() => {
        closed = true;
      }),
    );

  return {
    name: `local:${root}`,
    root,
    supports: { durable: syncMode === 'group', remote: false },
    put,
    has,
    get,
    stat,
    delete: remove,
    list,
    flush,
    close,
    cleanupTemp,
  };
};

