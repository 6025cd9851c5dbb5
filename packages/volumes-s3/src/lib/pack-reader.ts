import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, openSync, promises as fsp, readSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { VolumeError } from '@zxbackup/volume-contract';
import { asVolumeError, type S3Error } from './errors';
import type { ObjectStore } from './object-store';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';

/** Packs downloaded at once ahead of the reads (one 8 MiB GET at a time ran at a third of the rate of 8). */
const PREFETCH_CONCURRENCY = 3;

export interface PackReaderDeps {
  readonly store: ObjectStore;
  readonly keyOf: (id: PackId) => string;
  /** The read cache: whole packs, wiped at open. */
  readonly dir: string;
  /** Bytes of packs kept in `dir` (least recently used go first). */
  readonly capacityBytes: number;
  /** Packs larger than this (one big blob each) are streamed, never kept. */
  readonly wholePackMax: number;
  readonly storeError: (e: S3Error, loc: BlobLocation) => VolumeError;
}

/**
 * Reads blobs out of packs. A pack is downloaded whole, once, into a bounded local read cache,
 * and every blob of it is then read from that file: restoring an account (its blobs were
 * packed together by the scan) costs one request per pack, not per message. Concurrent reads
 * of one pack share its download.
 */
export interface PackReader {
  /**
   * The stored (maybe sealed) bytes of one blob: a Buffer when they come from a pack in the read
   * cache (read synchronously: a short pread, where the threadpool cost an open, a read and a
   * close per blob), a stream otherwise.
   */
  read(loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable | Buffer>;
  /** Drops a pack's cached copy (a blob of it failed verification: the next read downloads it again). */
  evict(id: PackId): Promise<void>;
  /**
   * Starts downloading packs that reads will need soon, in this order, a few at a time and never
   * more than half the cache ahead of the reads. Failures are left to the reads themselves.
   */
  prefetch(packs: ReadonlyArray<{ readonly loc: BlobLocation; readonly size: number }>): void;
  close(): Promise<void>;
}

export const makePackReader = (deps: PackReaderDeps): TE.TaskEither<VolumeError, PackReader> =>
  TE.tryCatch(
    async () => {
      await fsp.rm(deps.dir, { recursive: true, force: true });
      await fsp.mkdir(deps.dir, { recursive: true });
      return packReader(deps);
    },
    (e): VolumeError => ({ _tag: 'VolumeIOError', op: 'openReadCache', key: deps.dir, cause: e }),
  );

const packReader = (deps: PackReaderDeps): PackReader => {
  const cached = new Map<PackId, number>(); // insertion order = least recently used first
  let cachedBytes = 0;
  const downloads = new Map<PackId, Promise<string>>();
  const fileOf = (id: PackId): string => path.join(deps.dir, id);
  // Prefetching: packs asked for, and packs fetched ahead that no read has touched yet.
  const ahead: Array<{ readonly loc: BlobLocation; readonly size: number }> = [];
  const unread = new Map<PackId, number>();
  let unreadBytes = 0;
  let prefetching = 0;
  let closed = false;
  const touched = (id: PackId): void => {
    const size = unread.get(id);
    if (size === undefined) return;
    unread.delete(id);
    unreadBytes -= size;
    pumpAhead();
  };
  const pumpAhead = (): void => {
    while (!closed && prefetching < PREFETCH_CONCURRENCY && ahead.length > 0 && unreadBytes < deps.capacityBytes / 2) {
      const next = ahead.shift() as { loc: BlobLocation; size: number };
      const id = next.loc.pack;
      if (cached.has(id) || downloads.has(id) || next.size > deps.wholePackMax) continue;
      prefetching++;
      unread.set(id, next.size);
      unreadBytes += next.size;
      void download(next.loc, next.size)
        .catch(() => touched(id)) // the read that needs it will try again and report
        .finally(() => {
          prefetching--;
          pumpAhead();
        });
    }
  };

  const fds = new Map<PackId, number>(); // of the cached packs; an unlinked pack stays readable
  const evict = async (id: PackId): Promise<void> => {
    const size = cached.get(id);
    if (size === undefined) return;
    cached.delete(id);
    cachedBytes -= size;
    const fd = fds.get(id);
    fds.delete(id);
    if (fd !== undefined) closeSync(fd);
    // An open read keeps its descriptor: unlinking under it is safe.
    await fsp.rm(fileOf(id), { force: true });
  };

  const makeRoom = async (incoming: number): Promise<void> => {
    for (const id of [...cached.keys()]) {
      if (cachedBytes + incoming <= deps.capacityBytes) return;
      await evict(id);
    }
  };

  const download = (loc: BlobLocation, packSize: number): Promise<string> => {
    const running = downloads.get(loc.pack);
    if (running !== undefined) return running;
    const work = (async () => {
      const body = await pipe(
        deps.store.get(deps.keyOf(loc.pack)),
        TE.getOrElse((e) => {
          throw deps.storeError(e, loc);
        }),
      )();
      const tmp = path.join(deps.dir, `${loc.pack}.${randomBytes(4).toString('hex')}.tmp`);
      try {
        await pipeline(body, createWriteStream(tmp));
        const { size } = await fsp.stat(tmp);
        if (size !== packSize)
          throw { _tag: 'BlobCorrupt', op: 'get', key: loc.digest, cause: new Error(`pack ${loc.pack} holds ${size} bytes, its index says ${packSize}`) } satisfies VolumeError;
        await makeRoom(size);
        await fsp.rename(tmp, fileOf(loc.pack));
        cached.set(loc.pack, size);
        cachedBytes += size;
        return fileOf(loc.pack);
      } finally {
        await fsp.rm(tmp, { force: true });
      }
    })();
    downloads.set(loc.pack, work);
    void work.then(
      () => downloads.delete(loc.pack),
      () => downloads.delete(loc.pack),
    );
    return work;
  };

  const read = (loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable | Buffer> =>
    packSize > deps.wholePackMax
      ? pipe(
          // A big blob alone in its pack: streamed straight through.
          deps.store.get(deps.keyOf(loc.pack)),
          TE.mapLeft((e) => deps.storeError(e, loc)),
        )
      : TE.tryCatch<VolumeError, Readable | Buffer>(
          async () => {
            touched(loc.pack);
            for (let attempt = 0; ; attempt++) {
              const size = cached.get(loc.pack);
              if (size !== undefined) {
                cached.delete(loc.pack); // most recently used: to the end
                cached.set(loc.pack, size);
              }
              const file = size !== undefined ? fileOf(loc.pack) : await download(loc, packSize);
              try {
                let fd = fds.get(loc.pack);
                if (fd === undefined) {
                  fd = openSync(file, 'r');
                  if (cached.has(loc.pack)) fds.set(loc.pack, fd);
                  else setImmediate(() => closeSync(fd as number)); // evicted meanwhile: this read only
                }
                const bytes = Buffer.allocUnsafe(loc.length);
                for (let done = 0; done < loc.length; ) {
                  const got = readSync(fd, bytes, done, loc.length - done, loc.offset + done);
                  if (got <= 0) throw new Error(`pack ${loc.pack} ends before ${loc.digest}`);
                  done += got;
                }
                return bytes;
              } catch (e) {
                // Evicted for another pack between the download and this open: fetch it again.
                if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw e;
                await evict(loc.pack);
              }
            }
          },
          asVolumeError('get', loc.digest),
        );

  return {
    read: (loc, packSize) =>
      // An empty blob (stored unsealed) has no byte range to read.
      loc.length === 0 ? TE.right(Buffer.alloc(0)) : read(loc, packSize),
    evict,
    prefetch: (packs) => {
      ahead.push(...packs);
      pumpAhead();
    },
    close: async () => {
      closed = true;
      ahead.length = 0;
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
      await Promise.allSettled([...downloads.values()]);
      await fsp.rm(deps.dir, { recursive: true, force: true });
    },
  };
};
