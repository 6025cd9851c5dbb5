import { createHash } from 'node:crypto';
import { closeSync, fstatSync, readFileSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { Readable, pipeline } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import {
  VolumeStreamError,
  headLength,
  openSourceSync,
  putFileThroughStream,
  readWholeThroughStream,
  sourceUnreadable,
  writeToFileThroughGet,
  type BlobFile,
  type BlobStat,
  type BlobVolume,
  type Digest,
  type PutFileOptions,
  type PutFileResult,
  type PutOptions,
  type PutResult,
  type VolumeError,
} from '@zxbackup/volume-contract';
import { SMALL_BLOB_BYTES, makeBlobCache, type BlobCache } from './cache';
import { compactionTurn } from './compaction';
import { DEFAULT_PACK_SIZE, DEFAULT_PART_SIZE, decodeS3VolumeConfig, type S3VolumeConfig } from './config';
import { makeEncryptedObjectStore, storeReadError } from './encrypted-object-store';
import { EncryptionFailure, decryptStream, encryptStream, encryptedSize, loadKeyFile, type EncryptionKey } from './encryption';
import { asVolumeError, objectFailure, toVolumeError } from './errors';
import { warmDownloadWorker } from './download-worker';
import { makeMinioStore } from './minio-store';
import type { ObjectStore } from './object-store';
import { decodeIndexObject, indexPrefix, packIdOfIndexKey, packIdOfKey, packKey, packsPrefix, type PackId } from './pack-format';
import { openPackIndex, type BlobLocation, type PackIndex } from './pack-index';
import { makeFileRestorer } from './file-restore';
import { makePackReader, PREFETCH_CONCURRENCY, type PackPlan, type PackReader } from './pack-reader';
import { makeUploader, type UploadStatus, type Uploader } from './uploader';
import { verifiedStream } from './verify-stream';

const MiB = 1024 * 1024;
/** Packs uploading at once: a few large requests keep a store busy; memory is the limit. */
const DEFAULT_UPLOAD_CONCURRENCY = 4;
/** Memory the running uploads may hold (a single PUT buffers its pack). */
const UPLOAD_MEMORY_BYTES = 256 * MiB;
/** A pack not full is uploaded after this long without a new blob. */
const PACK_IDLE_MS = 250;
/** Memory for reads: blobs taken out of announced packs ahead of their reads; whole packs for other reads. */
const READ_CACHE_BYTES = 32 * MiB;
/** Locations remembered from prefetches (~200 bytes each). */
const MAX_HINTS = 250_000;
/** Digests looked up in the local index at once. */
const LOCATE_PAGE = 512;
/** Index objects fetched at once when a new machine loads the bucket's index. */
const INDEX_FETCH_CONCURRENCY = 24;

export type S3VolumeStatus = UploadStatus;

/** Where a blob's stored bytes are in the bucket (for diagnostics and tests). */
export interface StoredLocation {
  readonly key: string;
  readonly offset: number;
  readonly length: number;
}

/** A `BlobVolume` on S3 with a local write cache and a background uploader. */
export interface S3Volume extends BlobVolume {
  /** Waits until every cached blob is confirmed by the store (or `timeoutMs` passed: `VolumeUnavailable`). */
  drain(options?: { readonly timeoutMs?: number }): TE.TaskEither<VolumeError, void>;
  /** Blobs (and their bytes) in the cache waiting for the store. */
  pending(): { readonly blobs: number; readonly bytes: number };
  status(): S3VolumeStatus;
  /** Called on every change of the upload status; returns the unsubscribe function. Must not throw. */
  onStatus(listener: (s: S3VolumeStatus) => void): () => void;
  /** The pack object and byte range holding a blob, once uploaded; undefined while only cached or unknown. */
  locate(d: Digest): TE.TaskEither<VolumeError, StoredLocation | undefined>;
}


/**
 * Builds the volume over any `ObjectStore` (the minio one, or a fake in unit specs). `store`
 * is the bare store: the volume seals each blob and each index object itself with `key`.
 */
export const makeS3VolumeWith = (
  config: S3VolumeConfig,
  store: ObjectStore,
  key?: EncryptionKey,
): TE.TaskEither<VolumeError, S3Volume> =>
  pipe(
    TE.fromEither(decodeS3VolumeConfig(config)),
    TE.bindTo('c'),
    // Packs sent from the spool files (see uploader.ts) never read a blob back: nothing to keep.
    TE.bind('cache', ({ c }) => makeBlobCache(c.cacheDir, sendsFromFiles(store, key) ? { recentBytes: 0 } : {})),
    TE.bind('index', ({ c }) =>
      openPackIndex(path.join(c.cacheDir, 'index'), JSON.stringify([c.endPoint, c.port, c.bucket, c.prefix])),
    ),
    TE.bind('reader', ({ c }) =>
      makePackReader({
        store,
        keyOf: (id) => packKey(c.prefix, id),
        legacyDir: path.join(c.cacheDir, 'packs'),
        capacityBytes: c.readCacheBytes ?? READ_CACHE_BYTES,
        wholePackMax: wholePackMaxOf(c),
        storeError: (e, loc) => toVolumeError(e, loc.digest),
      }),
    ),
    TE.map(({ c, cache, index, reader }) => assemble(c, store, key, cache, index, reader)),
  );

/** Unsealed packs go up from the spool files when the store can read them (`putFileBlobs`). */
const sendsFromFiles = (store: ObjectStore, key: EncryptionKey | undefined): boolean => key === undefined && store.putFileBlobs !== undefined;

/** Packs larger than this hold one big blob: its reads stream it (never kept whole, never prefetched). */
const wholePackMaxOf = (c: S3VolumeConfig): number => 2 * (c.packSize ?? DEFAULT_PACK_SIZE);

/** Opens the S3 volume described by `config` (decoded with `S3VolumeConfig`). Does not contact the store. */
export const makeS3Volume = (config: S3VolumeConfig): TE.TaskEither<VolumeError, S3Volume> =>
  pipe(
    TE.fromEither(decodeS3VolumeConfig(config)),
    TE.flatMap((c) => {
      const store = makeMinioStore(c, {
        uploadTimeoutMs: (size) => c.uploadTimeoutMs ?? 10 * 60_000 + Math.ceil(size / MiB) * 1000,
      });
      // The packs a restore streams go through the download worker: started now, on the other
      // core, it is ready by the time the restore has planned its reads.
      warmDownloadWorker();
      const encryption = c.encryption;
      if (encryption === undefined) return makeS3VolumeWith(c, store);
      return pipe(
        loadKeyFile(encryption.keyFile),
        TE.flatMap((key) =>
          encryption.keyId !== undefined && encryption.keyId !== key.id
            ? TE.left({
                _tag: 'KeyFileError' as const,
                op: 'loadKey',
                key: encryption.keyFile,
                reason: `holds the key ${key.id}, but this volume is encrypted with the key ${encryption.keyId}: restore the right key file`,
              })
            : TE.right(key),
        ),
        TE.mapLeft((e): VolumeError => ({ _tag: 'VolumeIOError', op: 'open', cause: new EncryptionFailure(e) })),
        TE.flatMap((key) => makeS3VolumeWith(c, store, key)),
      );
    }),
  );

const assemble = (
  c: S3VolumeConfig,
  store: ObjectStore,
  key: EncryptionKey | undefined,
  cache: BlobCache,
  index: PackIndex,
  reader: PackReader,
): S3Volume => {
  const sealedStore = key === undefined ? store : makeEncryptedObjectStore(store, key);
  const packSize = c.packSize ?? DEFAULT_PACK_SIZE;
  const wholePackMax = wholePackMaxOf(c);

  // The bucket's index objects into the local index, once (a new machine, a lost cache). Plain
  // ones are read on the download worker: ~100 small GETs, whose receiving (and, through the
  // SDK, whose requests) cost the main thread more than decoding them.
  const getOffThread = store.getOffThread;
  const indexStore: ObjectStore = key === undefined && getOffThread !== undefined ? { ...store, get: getOffThread } : sealedStore;
  let syncing: Promise<E.Either<VolumeError, void>> | undefined;
  const loadBucketIndex = async (): Promise<E.Either<VolumeError, void>> => {
    const ids: PackId[] = [];
    const listed = await store.list(indexPrefix(c.prefix), (o) => {
      const id = packIdOfIndexKey(c.prefix, o.key);
      if (id !== undefined) ids.push(id);
    })();
    if (E.isLeft(listed)) return E.left(objectFailure(listed.left, indexPrefix(c.prefix)));
    let next = 0;
    let failure: VolumeError | undefined;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < ids.length) {
        const id = ids[next++] as PackId;
        if ((await index.packInfo(id)) !== undefined) continue;
        const r = await readObject(indexStore, `${indexPrefix(c.prefix)}${id}`)();
        if (E.isLeft(r)) {
          failure = r.left;
          return;
        }
        const described = decodeIndexObject(id, r.right);
        if (E.isLeft(described)) {
          failure = { _tag: 'VolumeIOError', op: 'loadIndex', key: `${indexPrefix(c.prefix)}${id}`, cause: new Error(`the index object of pack ${id} ${described.left}`) };
          return;
        }
        await index.addPack(id, described.right.size, described.right.at, described.right.entries, { sync: false });
      }
    };
    await Promise.all(Array.from({ length: INDEX_FETCH_CONCURRENCY }, worker));
    if (failure !== undefined) return E.left(failure);
    await index.markSynced();
    return E.right(undefined);
  };
  const ensureSynced = (): TE.TaskEither<VolumeError, void> => () => {
    if (index.synced()) return Promise.resolve(E.right(undefined));
    syncing ??= loadBucketIndex()
      .catch((e: unknown) => E.left(asVolumeError('loadIndex')(e)))
      .finally(() => {
        syncing = undefined;
      });
    return syncing;
  };

  // Where the blobs of the last prefetches are, each until its read: a restore's reads then cost
  // no index lookup each (one LevelDB get per blob was ~10% of a restore's main thread).
  const hints = new Map<Digest, BlobLocation>();
  /** The last prefetch, until the pack reader knows of it. Never rejects. */
  let announcing: Promise<void> = Promise.resolve();
  /** Where each blob is in the store (undefined: in the write cache, or unknown); remembered as hints. */
  const locateAll = async (digests: readonly Digest[]): Promise<Array<BlobLocation | undefined>> => {
    const locs: Array<BlobLocation | undefined> = digests.map((d) => hints.get(d));
    const ask: number[] = [];
    for (let i = 0; i < digests.length; i++) {
      const d = digests[i] as Digest;
      if (locs[i] === undefined && cache.entry(d) === undefined && index.mayHold(d)) ask.push(i);
    }
    for (let at = 0; at < ask.length; at += LOCATE_PAGE) {
      const page = ask.slice(at, at + LOCATE_PAGE);
      const found = await index.locateMany(page.map((i) => digests[i] as Digest));
      page.forEach((i, k) => {
        const loc = found[k];
        locs[i] = loc;
        if (loc !== undefined && hints.size < MAX_HINTS) hints.set(loc.digest, loc);
      });
    }
    return locs;
  };
  const locate = (d: Digest): TE.TaskEither<VolumeError, BlobLocation | undefined> =>
    pipe(
      ensureSynced(),
      TE.flatMap(() => (index.mayHold(d) ? TE.tryCatch(() => index.locate(d), asVolumeError('locate', d)) : TE.right(undefined))),
    );

  /**
   * A located blob, verified: the parts the reader holds in memory when nothing is sealed (no
   * stream stage), else a verifying stream. A corrupt blob in memory is a Left for `readWhole`
   * (`whole`), and a failing stream for `get`, whose contract says so.
   */
  const readLocated = (loc: BlobLocation, whole: boolean): TE.TaskEither<VolumeError, Buffer[] | Readable> =>
    pipe(
      // A read right after a prefetch waits until the reader knows of it (a few index lookups),
      // or it would download its pack whole beside the pack's stream.
      TE.fromTask(() => announcing),
      TE.flatMap(() => TE.tryCatch(() => index.packMeta(loc.pack), asVolumeError('get', loc.digest))),
      TE.flatMap((info) =>
        info === undefined
          ? TE.left<VolumeError, Readable | Buffer[]>({ _tag: 'BlobNotFound', op: 'get', key: loc.digest })
          : reader.read(loc, info.size),
      ),
      TE.flatMap((stored): TE.TaskEither<VolumeError, Buffer[] | Readable> => {
        if (Array.isArray(stored) && key === undefined) {
          // Whole in memory: checked at once, without a stream stage.
          const hash = createHash('sha256');
          for (const part of stored) hash.update(part);
          const actual = hash.digest('hex');
          if (actual === loc.digest) return TE.right(stored);
          void reader.evict(loc.pack); // the next read downloads the pack again
          const failure: VolumeError = { _tag: 'BlobCorrupt', op: 'get', key: loc.digest, cause: new Error(`content of ${loc.length} bytes hashes to ${actual}`) };
          return whole
            ? TE.left(failure)
            : TE.right(
                new Readable({
                  read() {
                    this.destroy(new VolumeStreamError(failure));
                  },
                }),
              );
        }
        const body: Readable = Array.isArray(stored) ? Readable.from(stored, { objectMode: false }) : stored;
        let plain = body;
        if (key !== undefined) {
          plain = decryptStream(key, { name: `${packKey(c.prefix, loc.pack)}@${loc.offset}` });
          pipeline(body, plain as unknown as NodeJS.WritableStream, () => undefined);
        }
        const verified = verifiedStream(plain, loc.digest, 'get', (e) => storeReadError(loc.digest, e));
        // A damaged pack copy must not stay in the read cache: the next read downloads it again.
        verified.once('error', (e) => {
          if (e instanceof VolumeStreamError && e.volumeError._tag === 'BlobCorrupt') void reader.evict(loc.pack);
        });
        return TE.right(verified);
      }),
    );
  const readPlain = (loc: BlobLocation): TE.TaskEither<VolumeError, Readable> =>
    pipe(
      readLocated(loc, false),
      TE.map((r) => (Array.isArray(r) ? Readable.from(r, { objectMode: false }) : r)),
    );

  const uploader: Uploader = makeUploader({
    store,
    sealedStore,
    cache,
    index,
    prefix: c.prefix,
    ...(key === undefined ? {} : { seal: () => encryptStream(key) }),
    sealedLength: key === undefined ? (n) => n : encryptedSize,
    packSize,
    idleMs: PACK_IDLE_MS,
    concurrency: c.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
    maxBufferedBytes: UPLOAD_MEMORY_BYTES,
    partSize: c.partSize ?? DEFAULT_PART_SIZE,
    retry: { initialDelayMs: c.retry?.initialDelayMs ?? 1000, maxDelayMs: c.retry?.maxDelayMs ?? 60_000 },
    ensureSynced,
    maintain: () =>
      compactionTurn({
        store,
        sealedStore,
        index,
        prefix: c.prefix,
        minLiveFraction: 0.5,
        batch: 16,
        restage: (e) => restage(e.digest),
      }),
  });

  // A live blob of a pack being repacked: back into the cache, to move to a new pack.
  const restage = (d: Digest): TE.TaskEither<VolumeError, void> =>
    pipe(
      locate(d),
      TE.flatMap((loc) =>
        loc === undefined
          ? TE.right(undefined)
          : pipe(
              readPlain(loc),
              TE.flatMap((body) => cache.appendStream(body, d)),
              TE.map(() => uploader.enqueue(d, { move: true })),
            ),
      ),
    );

  // Blobs a previous run cached but did not upload.
  for (const d of cache.entries()) uploader.enqueue(d);
  uploader.reportDamaged(cache.damaged());

  // Is the content in the store already? A failed lookup only means we cache and upload as
  // usual (the upload looks again before it sends anything).
  const inStore = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    pipe(
      locate(d),
      TE.map((loc) => loc !== undefined),
      TE.orElse((e) => {
        uploader.observe(e);
        return TE.right(false);
      }),
    );

  /** Caches hashed bytes unless the cache or the bucket holds them; true when cached now. */
  const cacheBytes = async (bytes: Buffer, digest: Digest): Promise<E.Either<VolumeError, boolean>> => {
    if (cache.entry(digest) !== undefined) return E.right(false);
    const found = await inStore(digest)();
    if (E.isRight(found) && found.right) return E.right(false);
    const appended = cache.append(bytes, digest);
    if (E.isLeft(appended)) return appended;
    uploader.enqueue(digest);
    return E.right(true);
  };

  // Small content is gathered in memory and goes the way of `putFile`; larger content streams
  // into a spool file of its own.
  const put = (content: Readable, options?: PutOptions): TE.TaskEither<VolumeError, PutResult> => async () => {
    const iterator = content[Symbol.asyncIterator]();
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for (;;) {
        const next = await iterator.next();
        if (next.done === true) break;
        const b = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value as Uint8Array);
        chunks.push(b);
        size += b.length;
        if (size > SMALL_BLOB_BYTES) break;
      }
    } catch (e) {
      return E.left({ _tag: 'VolumeIOError', op: 'put', cause: e });
    }
    if (size > SMALL_BLOB_BYTES) {
      const rest = Readable.from((async function* () {
        yield* chunks;
        for (;;) {
          const next = await iterator.next();
          if (next.done === true) return;
          yield next.value as Buffer;
        }
      })());
      const cached = await cache.appendStream(rest, options?.expectedDigest)();
      if (E.isLeft(cached)) return cached;
      const { digest, added } = cached.right;
      const result = (stored: boolean): PutResult => ({ digest, size: cached.right.size, stored });
      if (!added) return E.right(result(false));
      const found = await inStore(digest)();
      if (E.isRight(found) && found.right) {
        cache.remove(digest);
        return E.right(result(false));
      }
      uploader.enqueue(digest);
      return E.right(result(true));
    }
    return putBytes(Buffer.concat(chunks, size), options?.expectedDigest);
  };

  const putBytes = async (bytes: Buffer, expected: Digest | undefined): Promise<E.Either<VolumeError, PutResult>> => {
    const digest = createHash('sha256').update(bytes).digest('hex') as Digest;
    if (expected !== undefined && digest !== expected)
      return E.left({ _tag: 'BlobCorrupt', op: 'put', key: expected, cause: new Error(`content hashes to ${digest}`) });
    const stored = await cacheBytes(bytes, digest);
    return E.isLeft(stored) ? stored : E.right({ digest, size: bytes.length, stored: stored.right });
  };
  // Buffers that small files are read into, reused: the cache does not keep what it appends
  // when packs go up from the spool files, and on this VM reading the mails of a SmartScan into
  // fresh memory cost twice the CPU of reading them into reused buffers (a page fault per 4 KiB).
  // One per put under way (a scan puts a few files at a time).
  const reusable = sendsFromFiles(store, key);
  const spareBuffers: Buffer[] = [];
  /** The file's bytes, and the buffer to give back once they are cached (none when not reusable). */
  const readSmallFile = (fd: number, size: number): { readonly bytes: Buffer; readonly buffer?: Buffer } => {
    if (!reusable) return { bytes: readFileSync(fd) };
    let buffer = spareBuffers.pop();
    if (buffer === undefined || buffer.length < size) buffer = Buffer.allocUnsafeSlow(Math.max(size, 256 * 1024));
    let done = 0;
    while (done < size) {
      const got = readSync(fd, buffer, done, size - done, done);
      if (got <= 0) break; // shorter than it was: what is there, as readFileSync does
      done += got;
    }
    return { bytes: buffer.subarray(0, done), buffer };
  };

  // A small file is read whole, hashed, and written to the cache only when neither the cache
  // nor the bucket has its content (an incremental scan writes nothing for known mail).
  const putFile = (file: string, options: PutFileOptions = {}): TE.TaskEither<VolumeError, PutFileResult> => async () => {
    let read: ReturnType<typeof readSmallFile> | undefined;
    try {
      const fd = openSourceSync(file);
      try {
        const size = fstatSync(fd).size;
        if (size <= SMALL_BLOB_BYTES) read = readSmallFile(fd, size);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      return E.left(sourceUnreadable(file, e));
    }
    if (read === undefined) return putFileThroughStream(put)(file, options)();
    try {
      const head = Buffer.from(read.bytes.subarray(0, headLength(read.bytes, options.headBytes ?? 0, options.headEnd)));
      return E.map((r: PutResult): PutFileResult => ({ ...r, head }))(await putBytes(read.bytes, options.expectedDigest));
    } finally {
      if (read.buffer !== undefined && spareBuffers.length < 8) spareBuffers.push(read.buffer);
    }
  };

  const has = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    cache.entry(d) !== undefined ? TE.right(true) : pipe(locate(d), TE.map((loc) => loc !== undefined));

  const stat = (d: Digest): TE.TaskEither<VolumeError, BlobStat> => {
    const cached = cache.entry(d);
    if (cached !== undefined)
      return TE.right({ digest: d, size: cached.size, storedSize: cached.size, modifiedAt: cached.modifiedAt });
    return pipe(
      locate(d),
      TE.flatMap((loc) =>
        loc === undefined
          ? TE.left<VolumeError, BlobStat>({ _tag: 'BlobNotFound', op: 'stat', key: d })
          : pipe(
              TE.tryCatch(() => index.packMeta(loc.pack), asVolumeError('stat', d)),
              TE.map((info) => ({
                digest: d,
                size: loc.size,
                storedSize: loc.length,
                ...(info === undefined ? {} : { modifiedAt: info.uploadedAt }),
              })),
            ),
      ),
    );
  };

  /** Reads a blob of the bucket, where the prefetch's hint or else the index places it. */
  const fromStore = <A>(d: Digest, read: (loc: BlobLocation) => TE.TaskEither<VolumeError, A>): TE.TaskEither<VolumeError, A> => {
    const located = pipe(
      locate(d),
      TE.flatMap((loc) => (loc === undefined ? TE.left<VolumeError, A>({ _tag: 'BlobNotFound', op: 'get', key: d }) : read(loc))),
    );
    const hint = hints.get(d);
    if (hint === undefined) return located;
    hints.delete(d);
    // A hint is stale when its pack was repacked since the prefetch: then the index answers.
    return pipe(
      read(hint),
      TE.orElse(() => located),
    );
  };

  const get = (d: Digest): TE.TaskEither<VolumeError, Readable> =>
    cache.entry(d) === undefined
      ? fromStore(d, readPlain)
      : pipe(
          cache.open(d),
          TE.flatMap((body) =>
            body === undefined
              ? fromStore(d, readPlain) // uploaded and dropped from the cache meanwhile
              : TE.right(verifiedStream(body, d, 'get', (e) => ({ _tag: 'VolumeIOError', op: 'get', key: d, cause: e }))),
          ),
        );

  const throughStream = readWholeThroughStream(get);

  // Restores into files: each announced pack is downloaded on the download worker, which writes
  // its blobs into the files (see file-restore.ts). Not for sealed blobs: the worker does not
  // decrypt; their restores read through get.
  const downloadToFiles = store.downloadToFiles;
  const files =
    key === undefined && downloadToFiles !== undefined
      ? makeFileRestorer({ download: (id) => downloadToFiles(packKey(c.prefix, id)), concurrency: PREFETCH_CONCURRENCY })
      : undefined;
  const writeThroughGet = writeToFileThroughGet(get);
  const writeToFile = (d: Digest, file: BlobFile): TE.TaskEither<VolumeError, void> => async () => {
    await announcing; // the plans of a prefetch just made
    const written = files === undefined ? ({ kind: 'unannounced' } as const) : await files.write(d, file);
    switch (written.kind) {
      case 'written':
        return E.right(undefined);
      case 'corrupt':
        return E.left({ _tag: 'BlobCorrupt', op: 'get', key: d, cause: new Error(`content hashes to ${written.actual}`) });
      case 'failed':
        return E.left({ _tag: 'VolumeIOError', op: 'writeFile', key: file.path, cause: written.error });
      default:
        // Not announced, in the write cache, or its download failed: read it the other way.
        return writeThroughGet(d, file)();
    }
  };
  /**
   * The packs a list of blobs needs, in the order the list first needs each (as `readOrder`
   * ranks them), at most `limit` of them, with their size and the blobs wanted of each (by
   * offset, each with how many times the list has it). Packs the index no longer knows are left
   * out: their reads find what became of the blobs.
   */
  const plansOf = async (digests: readonly Digest[], limit = Infinity): Promise<Array<PackPlan & { blobs: Array<BlobLocation & { wanted: number }> }>> => {
    const byPack = new Map<PackId, Map<Digest, BlobLocation & { wanted: number }>>();
    for (const loc of await locateAll(digests)) {
      if (loc === undefined) continue;
      const blobs = byPack.get(loc.pack) ?? new Map<Digest, BlobLocation & { wanted: number }>();
      byPack.set(loc.pack, blobs);
      const known = blobs.get(loc.digest);
      if (known !== undefined) known.wanted++;
      else blobs.set(loc.digest, { ...loc, wanted: 1 });
    }
    const plans: Array<PackPlan & { blobs: Array<BlobLocation & { wanted: number }> }> = [];
    for (const [pack, blobs] of byPack) {
      if (plans.length >= limit) break;
      const meta = await index.packMeta(pack);
      if (meta !== undefined) plans.push({ pack, size: meta.size, blobs: [...blobs.values()].sort((a, b) => a.offset - b.offset) });
    }
    return plans;
  };
  // From the bucket, the parts a prefetched pack's stream brought, as they are; the cache's
  // blobs (not uploaded yet) and sealed ones go through a stream.
  const readWhole = (d: Digest): TE.TaskEither<VolumeError, ReadonlyArray<Buffer>> =>
    cache.entry(d) !== undefined
      ? throughStream(d)
      : pipe(
          fromStore(d, (loc) => readLocated(loc, true)),
          TE.flatMap((r) => (Array.isArray(r) ? TE.right(r) : readWholeThroughStream(() => TE.right(r))(d))),
        );

  const del = (d: Digest): TE.TaskEither<VolumeError, void> =>
    pipe(
      TE.fromTask(() => uploader.forget(d)), // a running upload would bring it back
      TE.map(() => cache.remove(d)),
      TE.flatMap((wasCached) =>
        pipe(
          ensureSynced(),
          TE.flatMap(() => TE.tryCatch(() => index.remove(d), asVolumeError('delete', d))),
          TE.flatMap((indexed) => {
            if (indexed) uploader.kick(); // its pack shrinks: rewrite, repack or remove it
            return indexed || wasCached ? TE.right(undefined) : TE.left<VolumeError, void>({ _tag: 'BlobNotFound', op: 'delete', key: d });
          }),
        ),
      ),
    );

  // The cache first; then the index in pack order, skipping packs the store no longer holds
  // (a blob whose pack is gone is not on this volume, whatever the index says).
  const list = (visit: (d: Digest) => void | Promise<void>): TE.TaskEither<VolumeError, number> => {
    const seen = new Set<Digest>();
    const packs = new Set<PackId>();
    let fromPacks = 0;
    return pipe(
      TE.tryCatch(
        async () => {
          for (const d of [...cache.entries()]) {
            seen.add(d);
            await visit(d);
          }
        },
        asVolumeError('list'),
      ),
      TE.flatMap(() => ensureSynced()),
      TE.flatMap(() =>
        pipe(
          store.list(packsPrefix(c.prefix), (o) => {
            const id = packIdOfKey(c.prefix, o.key);
            if (id !== undefined) packs.add(id);
          }),
          TE.mapLeft((e) => objectFailure(e, packsPrefix(c.prefix))),
        ),
      ),
      TE.flatMap(() =>
        TE.tryCatch(
          () =>
            // The index holds each digest once: only the cache's need remembering.
            index.forEachLive(async (loc) => {
              if (seen.has(loc.digest) || !packs.has(loc.pack)) return;
              fromPacks++;
              await visit(loc.digest);
            }),
          asVolumeError('list'),
        ),
      ),
      TE.map(() => seen.size + fromPacks),
    );
  };

  return {
    name: `s3:${c.bucket}/${c.prefix}`,
    supports: { durable: true, remote: true },
    put,
    putFile,
    has,
    get,
    readWhole,
    ...(files === undefined ? {} : { writeToFile }),
    stat,
    delete: del,
    list,
    flush: () => cache.flush(),
    close: () =>
      pipe(
        TE.fromTask(() => uploader.close()),
        TE.flatMap(() => cache.close()),
        TE.flatMap(() =>
          TE.tryCatch(
            async () => {
              hints.clear();
              files?.close();
              await reader.close();
              await index.close();
            },
            asVolumeError('close'),
          ),
        ),
      ),
    drain: (options) => uploader.drain(options?.timeoutMs),
    pending: () => ({ blobs: cache.count(), bytes: cache.bytes() }),
    status: () => uploader.status(),
    onStatus: (l) => uploader.onStatus(l),
    readOrder: async (digests) => {
      const asGiven = digests.map((_, i) => i);
      try {
        if (E.isLeft(await ensureSynced()())) return asGiven;
        const locs = await locateAll(digests);
        // Packs in the order the list first needs them; blobs of a pack by offset. Blobs not in
        // a pack (still in the write cache, or unknown) come first, as given.
        const rank = new Map<PackId, number>();
        for (const loc of locs) if (loc !== undefined && !rank.has(loc.pack)) rank.set(loc.pack, rank.size);
        const packRank = locs.map((loc) => (loc === undefined ? -1 : (rank.get(loc.pack) ?? 0)));
        const within = locs.map((loc, i) => loc?.offset ?? i);
        return asGiven.sort((a, b) => (packRank[a] as number) - (packRank[b] as number) || (within[a] as number) - (within[b] as number));
      } catch {
        return asGiven; // an order only: the reads report what is wrong
      }
    },
    prefetch: (digests, readHints) => {
      const previous = announcing;
      announcing = (async () => {
        await previous;
        if (E.isLeft(await ensureSynced()())) return;
        const plans = await plansOf(digests);
        // Big packs (one big blob each) are read through get.
        if (readHints?.into === 'files' && files !== undefined) files.announce(plans.filter((p) => p.size <= wholePackMax));
        else reader.prefetch(plans);
      })().catch(() => undefined); // a hint: the reads report what is wrong
    },
    warmUp: (digests, readHints) => {
      const previous = announcing;
      announcing = (async () => {
        await previous;
        if (E.isLeft(await ensureSynced()())) return;
        // The first packs a list's prefix needs are the first of the whole list, whose prefetch
        // then finds them open.
        const first = await plansOf(digests, PREFETCH_CONCURRENCY);
        if (readHints?.into === 'files' && files !== undefined) files.open(first.filter((p) => p.size <= wholePackMax).map((p) => p.pack));
        else reader.open(first);
      })().catch(() => undefined); // a hint: the reads report what is wrong
    },
    locate: (d) =>
      pipe(
        locate(d),
        TE.map((loc) => loc && { key: packKey(c.prefix, loc.pack), offset: loc.offset, length: loc.length }),
      ),
  };
};

/** The whole body of a (small) object. */
const readObject = (store: ObjectStore, key: string): TE.TaskEither<VolumeError, Buffer> =>
  pipe(
    store.get(key),
    TE.mapLeft((e) => objectFailure(e, key)),
    TE.flatMap((body) =>
      TE.tryCatch(
        async () => {
          const chunks: Buffer[] = [];
          for await (const chunk of body) chunks.push(chunk as Buffer);
          return Buffer.concat(chunks);
        },
        (e): VolumeError => ({ _tag: 'VolumeIOError', op: 'loadIndex', key, cause: e }),
      ),
    ),
  );
