import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import * as TE from 'fp-ts/TaskEither';
import { Digest, digestShard, putFileThroughStream, readWholeThroughStream, sourceUnreadable, type BlobStat, type BlobVolume, type PutFileOptions, type PutFileResult, type PutOptions, type PutResult, type VolumeError } from '@zxbackup/volume-contract';
import { compress, createCompressor, FileSink, failingStream, bytesStream, isNotFound, nextChunk, verifiedFileStream, writeFully } from './blob-io';
import { chooseCodec, type CompressionMode } from './codec-choice';
import { closeFd, fstatFd, fsyncPath, openFd, readFdUpTo, renamePath, unlinkPath, utimesPath, writevFully } from './fd-io';
import { decodeHeader, encodeHeader, HEADER_SIZE } from './format';
import { errnoOf, fromFsError } from './fs-errors';
import { ioPool, WorkerIoError } from './io-pool';
import type { PutReply } from './io-protocol';
import { syncfs, syncfsUsable } from './syncfs';
import { isAbandonedTemp, isTempName, isWriterMark, TEMP_DIR, tempName, writerMarkName } from './temp-files';

export interface LocalVolumeOptions {
  /** The directory holding `<xx>/<digest>` (a backup path's `items/`, or an NFS/FUSE mount). */
  readonly root: string;
  /**
   * `auto` (default) compresses a blob when a fast probe of its first 64 KB shrinks it enough
   * (mail text) and stores it raw otherwise (compressed or random attachments).
   */
  readonly compression?: CompressionMode;
  /**
   * `group` (default): `flush()` makes every blob put before it durable (fsync of the files, then
   * rename, then fsync of the directories), so many puts share one sync. `none`: no fsync at all,
   * blobs are renamed into place at once (tests, scratch volumes).
   */
  readonly syncMode?: 'group' | 'none';
  /**
   * Where a flush uses syncfs: start a background syncfs after this many bytes written (default
   * 128 MB), so the disk works while the puts go on. 0 turns it off.
   */
  readonly earlyWritebackBytes?: number;
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

// Blobs up to this size are held whole by `put` (read from the caller's stream, then hashed,
// compressed and written with one call); larger ones are streamed through a temp file. Most mail
// is far smaller; this covers ~99% of blobs.
const WHOLE_PUT_BYTES = 1024 * 1024;
// `putFile` and `get` hand whole files up to this size to a worker (a read costs one worker
// message, not a stream); larger ones are streamed. At most this much memory per call.
const WORKER_WHOLE_BYTES = 4 * 1024 * 1024;
// Parallel fsyncs / renames in a flush: enough to keep libuv's threadpool busy and let the
// file system batch journal commits, without opening thousands of descriptors at once.
const FLUSH_CONCURRENCY = 32;
// Renames go to the I/O workers in batches of this many (one message each).
const RENAME_BATCH = 500;
// From this many files (or directories) to sync on, a flush makes them durable with one syncfs
// where it is as safe as fsync (see syncfs.ts): a process spawn costs about as much as ~50 fsyncs.
const SYNCFS_MIN_FILES = 64;
// Where syncfs is used, a background syncfs starts after every this many bytes written, so the
// disk writes while the puts go on and the flush finds little left to write. A failure it
// reports fails the next flush (syncfs reports a write-back error once).
const EARLY_WRITEBACK_BYTES = 128 * 1024 * 1024;

interface Pending {
  readonly tempPath: string;
  /** Its data reached the disk (a failed flush's fsync). */
  synced: boolean;
  /** The fsync under way (a flush waits for a running one). */
  syncing: Promise<void> | undefined;
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
      return openLocalVolume(root, options.compression ?? 'auto', syncMode, canSyncfs, options.earlyWritebackBytes ?? EARLY_WRITEBACK_BYTES);
    }, (cause) => fromFsError('open', cause, root)),
    // Leftovers of a killed writer go at open, so they never pile up.
    TE.tap((volume) => volume.cleanupTemp()),
  );
};

const openLocalVolume = (root: string, compression: CompressionMode, syncMode: 'group' | 'none', canSyncfs: boolean, earlyWritebackBytes: number): LocalVolume => {
  const tempDir = path.join(root, TEMP_DIR);
  const shardDir = (digest: Digest): string => path.join(root, digestShard(digest));
  const finalPath = (digest: Digest): string => path.join(shardDir(digest), digest);

  // Blobs written but not yet flushed (group mode): readable from their temp file, renamed into
  // place only once fsynced, so a machine crash never leaves a torn file under a digest.
  const pending = new Map<Digest, Pending>();
  let useSyncfs = canSyncfs;
  // Early write-back (see EARLY_WRITEBACK_BYTES): bytes written since the last one started, the
  // one running, and a failure it reported that the next flush must report.
  let unsyncedBytes = 0;
  let earlyWriteback: Promise<void> | undefined;
  let earlyWritebackFailure: unknown;
  // Directories whose entries changed since the last flush (renames, deletes, new shards).
  const dirtyDirs = new Set<string>();
  const knownShards = new Set<string>();
  let flushChain: Promise<void> = Promise.resolve();
  let closed = false;
  // This volume's mark in `.tmp/` (see temp-files.ts): there before its first temp file in a
  // shard, durable first in group mode, removed by `close`.
  const markPath = path.join(tempDir, writerMarkName());
  let marked: Promise<void> | undefined;
  // The mark is there: a put goes on without waiting (hands its request over in the same turn).
  let markReady = false;

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
    // Never recursive, and only while `.tmp` is there: a vanished root or `.tmp` means the mount
    // is gone, and a bare mount point is never written to.
    try {
      await fs.stat(tempDir);
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

  const createMark = async (): Promise<void> => {
    const fd = await openFd(markPath, 'w');
    await closeFd(fd);
    // Durable before any temp file of ours can be: after a power cut, a temp file in a shard
    // without a mark would never be swept. Once per volume.
    if (syncMode === 'group') {
      await fsyncPath(markPath);
      await fsyncPath(tempDir);
    }
    markReady = true;
  };

  /** Leaves this volume's mark, once (again after a failure). */
  const ensureMark = (): Promise<void> => {
    marked ??= createMark().catch((error: unknown) => {
      marked = undefined;
      throw error;
    });
    return marked;
  };

  /**
   * Keeps the mark fresh at each flush: a mark of another host is taken for abandoned once older
   * than a day, and a host sweeping the shards then removes it (it is recreated here).
   */
  const refreshMark = async (): Promise<void> => {
    if (marked === undefined) return;
    const now = new Date();
    try {
      await utimesPath(markPath, now, now);
    } catch (error) {
      if (!isNotFound(error)) throw error;
      marked = undefined;
      markReady = false;
      await ensureMark();
    }
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

  /** fsyncs a pending blob's temp file once. */
  const syncEntry = (entry: Pending): Promise<void> => {
    if (entry.synced) return Promise.resolve();
    entry.syncing ??= (async () => {
      try {
        await fsyncPath(entry.tempPath);
        entry.synced = true;
      } finally {
        entry.syncing = undefined;
      }
    })();
    return entry.syncing;
  };

  const noteWritten = (bytes: number): void => {
    if (!useSyncfs || earlyWritebackBytes <= 0) return;
    unsyncedBytes += bytes;
    if (unsyncedBytes < earlyWritebackBytes || earlyWriteback !== undefined) return;
    unsyncedBytes = 0;
    earlyWriteback = syncfs(tempDir)
      .catch((error: unknown) => {
        // No `sync` at all: the flush finds out too and falls back to fsyncs.
        if (errnoOf(error) !== 'ENOENT') earlyWritebackFailure = error;
      })
      .finally(() => {
        earlyWriteback = undefined;
      });
  };

  /** Makes a complete temp file the blob `digest`; another writer may have won meanwhile. */
  const commit = async (digest: Digest, tempPath: string, size: number): Promise<PutResult> => {
    try {
      if (syncMode === 'group') {
        if (pending.has(digest)) {
          await unlinkPath(tempPath);
          return { digest, size, stored: false };
        }
        pending.set(digest, { tempPath, synced: false, syncing: undefined });
      } else {
        await renameIntoPlace(tempPath, digest);
      }
      return { digest, size, stored: true };
    } catch (error) {
      await removeQuietly(tempPath);
      throw error;
    }
  };

  const wrongDigest = <A>(expected: Digest, actual: Digest): E.Either<VolumeError, A> =>
    E.left({ _tag: 'BlobCorrupt', op: 'put', key: expected, cause: `content hashes to ${actual}` });

  // The head arrived as this thread's own copy (structured clone): a view, not another copy.
  const headOf = (head: Uint8Array): Buffer => Buffer.from(head.buffer, head.byteOffset, head.byteLength);

  /** What a worker did with a whole file, as this volume's result. */
  const settle = async (reply: Exclude<PutReply, { kind: 'too-large' }>, options: PutOptions): Promise<E.Either<VolumeError, PutFileResult>> => {
    switch (reply.kind) {
      case 'wrong-digest':
        return wrongDigest(options.expectedDigest as Digest, reply.digest as Digest);
      case 'exists':
        return E.right({ digest: reply.digest as Digest, size: reply.size, stored: false, head: headOf(reply.head) });
      case 'written':
        noteWritten(reply.storedBytes);
        if (reply.createdShard) dirtyDirs.add(root);
        knownShards.add(digestShard(reply.digest as Digest));
        return E.right({ ...(await commit(reply.digest as Digest, reply.tempPath, reply.size)), head: headOf(reply.head) });
    }
  };

  /**
   * A put of bytes the caller's stream gave us, on this thread. (Handing them to an I/O worker
   * measured slower: a copy or a transfer of fresh memory per blob, and a message, cost more than
   * the few file-system calls they would save.)
   */
  const putWhole = async (raw: Buffer, options: PutOptions): Promise<E.Either<VolumeError, PutResult>> => {
    const digest = createHash('sha256').update(raw).digest('hex') as Digest;
    if (options.expectedDigest !== undefined && options.expectedDigest !== digest) return wrongDigest(options.expectedDigest, digest);
    if (await alreadyStored(digest)) return E.right({ digest, size: raw.length, stored: false });
    const choice = chooseCodec(raw, compression, true);
    const body = choice.codec === 'brotli' ? (choice.compressed ?? (await compress(raw))) : raw;
    // The digest is known: the temp file goes in the shard (see temp-files.ts).
    if (!markReady) await ensureMark();
    await ensureShard(digest);
    const tempPath = path.join(shardDir(digest), tempName());
    const fd = await openFd(tempPath, 'wx');
    try {
      await writevFully(fd, [encodeHeader({ codec: choice.codec, size: raw.length }), body], 0);
    } catch (error) {
      await closeFd(fd).catch(() => undefined); // the write error is the one that matters
      await removeQuietly(tempPath);
      throw error;
    }
    await closeFd(fd);
    noteWritten(HEADER_SIZE + body.length);
    return E.right(await commit(digest, tempPath, raw.length));
  };

  const putStreamed = async (
    head: Buffer[],
    source: AsyncIterator<unknown>,
    options: PutOptions,
  ): Promise<E.Either<VolumeError, PutResult>> => {
    const headBytes = Buffer.concat(head);
    const { codec } = chooseCodec(headBytes, compression, false);
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
    noteWritten(size);
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

  // Files too large to be held whole go through `put`, streamed.
  const putFileStreamed = putFileThroughStream(put);

  const putFile = (file: string, options: PutFileOptions = {}): TE.TaskEither<VolumeError, PutFileResult> =>
    guard('put', async () => {
      if (!markReady) await ensureMark();
      let reply: PutReply;
      try {
        reply = await ioPool.putFile({ file, root, tempName: tempName(), compression, maxWholeBytes: WORKER_WHOLE_BYTES, expectedDigest: options.expectedDigest, headBytes: options.headBytes ?? 0, headEnd: options.headEnd });
      } catch (error) {
        if (error instanceof WorkerIoError && error.inSource) return E.left(sourceUnreadable(file, error));
        throw error;
      }
      if (reply.kind === 'too-large') return putFileStreamed(file, options)();
      return settle(reply, options);
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

  /**
   * A whole blob, read and verified by a worker (its pending temp file first, then its place in
   * the shard), handed over as `get` or `readWhole` hands it: `corrupt` says how a failed
   * verification is reported, `large` reads a blob too big for a worker's one message.
   */
  const fromWorker = <A>(
    digest: Digest,
    verified: (bytes: Buffer) => A,
    corrupt: (error: VolumeError) => E.Either<VolumeError, A>,
    large: () => Promise<E.Either<VolumeError, A>>,
  ): TE.TaskEither<VolumeError, A> =>
    guard('get', async () => {
      const temp = pending.get(digest);
      const reply = await ioPool.get({ digest, paths: temp === undefined ? [finalPath(digest)] : [temp.tempPath, finalPath(digest)], maxWholeBytes: WORKER_WHOLE_BYTES });
      switch (reply.kind) {
        case 'missing':
          return E.left(await missing('get', digest));
        case 'corrupt':
          return corrupt({ _tag: 'BlobCorrupt', op: 'get', key: digest, cause: reply.reason });
        case 'verified':
          return E.right(verified(Buffer.from(reply.bytes.buffer, reply.bytes.byteOffset, reply.bytes.byteLength)));
        case 'too-large':
          return large();
      }
    });

  const get = (digest: Digest): TE.TaskEither<VolumeError, Readable> =>
    fromWorker(digest, bytesStream, (e) => E.right(failingStream(e)), () => getStreamed(digest));

  // One buffer from the worker; a corrupt blob is a Left here.
  const readWhole = (digest: Digest): TE.TaskEither<VolumeError, ReadonlyArray<Buffer>> =>
    fromWorker(
      digest,
      (bytes) => [bytes],
      (e) => E.left(e),
      () => readWholeThroughStream(() => () => getStreamed(digest))(digest)(),
    );

  /** A get of a large blob: decompressed and verified while it streams. */
  const getStreamed = async (digest: Digest): Promise<E.Either<VolumeError, Readable>> => {
    const opened = await openBlob('get', digest);
    if (E.isLeft(opened)) return opened;
    const fd = opened.right;
    let streaming = false;
    try {
      const header = decodeHeader(await readFdUpTo(fd, HEADER_SIZE, 0));
      if (E.isLeft(header)) return E.right(failingStream({ _tag: 'BlobCorrupt', op: 'get', key: digest, cause: header.left }));
      streaming = true;
      return E.right(verifiedFileStream(fd, HEADER_SIZE, digest, header.right.size, header.right.codec === 'brotli'));
    } finally {
      if (!streaming) await closeFd(fd);
    }
  };

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
    // journal batch them. A background write-back's failure is this flush's: syncfs reports a
    // write-back error only once, and it may have been that one's.
    if (earlyWriteback !== undefined) await earlyWriteback;
    if (earlyWritebackFailure !== undefined) {
      const failure = earlyWritebackFailure;
      earlyWritebackFailure = undefined;
      throw failure;
    }
    unsyncedBytes = 0;
    const synced = await syncWholeFileSystem(batch.filter(([, entry]) => !entry.synced).length);
    await runLimited(batch, FLUSH_CONCURRENCY, async (item) => {
      const entry = item[1];
      if (!stillPending(item)) return;
      try {
        if (synced && entry.syncing === undefined) entry.synced = true;
        else await syncEntry(entry);
      } catch (error) {
        if (!(isNotFound(error) && !stillPending(item))) throw error;
      }
    });
    // 2. Then the commit point: rename into the shard (on the I/O workers, in batches).
    const moves = batch.filter(stillPending);
    const batches: Array<typeof moves> = [];
    for (let at = 0; at < moves.length; at += RENAME_BATCH) batches.push(moves.slice(at, at + RENAME_BATCH));
    const replies = await Promise.all(
      batches.map((part) => ioPool.rename({ moves: part.map(([digest, entry]) => ({ from: entry.tempPath, to: finalPath(digest) })) })),
    );
    let firstFailure: unknown;
    replies.forEach((reply, b) => {
      if (reply.createdDirs.length > 0) dirtyDirs.add(root);
      reply.failures.forEach((failure, i) => {
        const item = (batches[b] as typeof moves)[i] as [Digest, Pending];
        if (failure === undefined) {
          knownShards.add(digestShard(item[0]));
          dirtyDirs.add(shardDir(item[0]));
          if (stillPending(item)) pending.delete(item[0]);
        } else if (!(failure.code === 'ENOENT' && !stillPending(item))) {
          // (ENOENT of a blob no longer pending: deleted meanwhile.)
          firstFailure ??= new WorkerIoError(failure);
        }
      });
    });
    if (firstFailure !== undefined) throw firstFailure;
    // 3. Then the directory entries (the renames, deletes and new shards).
    const dirs = [...dirtyDirs];
    dirtyDirs.clear();
    try {
      if (!(await syncWholeFileSystem(dirs.length))) await runLimited(dirs, FLUSH_CONCURRENCY, fsyncPath);
    } catch (error) {
      for (const dir of dirs) dirtyDirs.add(dir);
      throw error;
    }
    await refreshMark();
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

  /** Removes the abandoned temp files (`isTempName`) of the shards; returns how many. */
  const sweepShards = async (ours: ReadonlySet<string>, now: number): Promise<number> => {
    let removed = 0;
    const shards = (await fs.readdir(root)).filter((name) => /^[0-9a-f]{2}$/.test(name));
    for (const shard of shards) {
      let names: string[];
      try {
        names = await fs.readdir(path.join(root, shard));
      } catch (error) {
        if (errnoOf(error) === 'ENOTDIR') continue;
        throw error;
      }
      for (const name of names) {
        if (!isTempName(name) || ours.has(name)) continue;
        const target = path.join(root, shard, name);
        let modifiedAt: number;
        try {
          modifiedAt = (await fs.stat(target)).mtimeMs;
        } catch (error) {
          if (isNotFound(error)) continue; // its writer committed it meanwhile
          throw error;
        }
        if (!isAbandonedTemp(name, modifiedAt, now)) continue;
        await fs.rm(target, { force: true });
        removed += 1;
      }
    }
    return removed;
  };

  const cleanupTemp = (): TE.TaskEither<VolumeError, number> =>
    guard('cleanupTemp', async () => {
      const ours = new Set([...pending.values()].map((entry) => path.basename(entry.tempPath)));
      ours.add(path.basename(markPath));
      const now = Date.now();
      let removed = 0;
      const deadMarks: string[] = [];
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
        if (isWriterMark(name)) {
          deadMarks.push(target);
          continue;
        }
        await fs.rm(target, { force: true, recursive: true });
        removed += 1;
      }
      // A writer that left a mark is gone without closing: it may have left temp files in the
      // shards. The marks go only once the shards are clean, so a failed sweep is tried again.
      if (deadMarks.length > 0) {
        removed += await sweepShards(ours, now);
        for (const mark of deadMarks) await fs.rm(mark, { force: true });
      }
      return E.right(removed);
    });

  const close = (): TE.TaskEither<VolumeError, void> =>
    pipe(
      flush(),
      TE.flatMap(() =>
        guard('close', async () => {
          // Nothing of ours is pending any more: our temp files are all committed or removed.
          if (marked !== undefined && pending.size === 0) {
            marked = undefined;
            markReady = false;
            await unlinkPath(markPath).catch((error: unknown) => {
              if (!isNotFound(error)) throw error;
            });
          }
          return E.right(undefined);
        }),
      ),
      TE.map(() => {
        closed = true;
      }),
    );

  return {
    name: `local:${root}`,
    root,
    supports: { durable: syncMode === 'group', remote: false },
    put,
    putFile,
    has,
    get,
    readWhole,
    stat,
    delete: remove,
    list,
    flush,
    close,
    cleanupTemp,
  };
};

