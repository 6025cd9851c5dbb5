import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { VolumeError } from '@zxbackup/volume-contract';
import type { S3Error } from './errors';
import type { ObjectStore } from './object-store';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';

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
  /** The stored (maybe sealed) bytes of one blob. */
  read(loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable>;
  /** Drops a pack's cached copy (a blob of it failed verification: the next read downloads it again). */
  evict(id: PackId): Promise<void>;
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

  const evict = async (id: PackId): Promise<void> => {
    const size = cached.get(id);
    if (size === undefined) return;
    cached.delete(id);
    cachedBytes -= size;
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

  const asVolumeError = (e: unknown, loc: BlobLocation): VolumeError =>
    typeof e === 'object' && e !== null && '_tag' in e ? (e as VolumeError) : { _tag: 'VolumeIOError', op: 'get', key: loc.digest, cause: e };

  const read = (loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable> =>
    packSize > deps.wholePackMax
      ? pipe(
          // A big blob alone in its pack: streamed straight through.
          deps.store.get(deps.keyOf(loc.pack)),
          TE.mapLeft((e) => deps.storeError(e, loc)),
        )
      : TE.tryCatch(
          async () => {
            for (let attempt = 0; ; attempt++) {
              const size = cached.get(loc.pack);
              if (size !== undefined) {
                cached.delete(loc.pack); // most recently used: to the end
                cached.set(loc.pack, size);
              }
              const file = size !== undefined ? fileOf(loc.pack) : await download(loc, packSize);
              try {
                const fh = await fsp.open(file, 'r');
                return fh.createReadStream({ start: loc.offset, end: loc.offset + loc.length - 1 }) as Readable;
              } catch (e) {
                // Evicted for another pack between the download and this open: fetch it again.
                if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw e;
                await evict(loc.pack);
              }
            }
          },
          (e) => asVolumeError(e, loc),
        );

  return {
    read: (loc, packSize) =>
      // An empty blob (stored unsealed) has no byte range to read.
      loc.length === 0 ? TE.right(Readable.from([])) : read(loc, packSize),
    evict,
    close: async () => {
      await Promise.allSettled([...downloads.values()]);
      await fsp.rm(deps.dir, { recursive: true, force: true });
    },
  };
};
