import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import {
  Digest,
  digestShard,
  putFileThroughStream,
  type BlobStat,
  type BlobVolume,
  type PutOptions,
  type PutResult,
  type VolumeError,
} from '@zxbackup/volume-contract';
import { makeBlobCache, type BlobCache, type Staged } from './cache';
import { DEFAULT_PART_SIZE, decodeS3VolumeConfig, type S3VolumeConfig } from './config';
import { toVolumeError, type S3Error } from './errors';
import { makeKnownObjects } from './known-objects';
import { makeMinioStore } from './minio-store';
import { storeReadError, withEncryption } from './encrypted-object-store';
import { EncryptionFailure } from './encryption';
import type { ObjectStore } from './object-store';
import { isVerified, makeUploader, type UploadStatus, type Uploader } from './uploader';
import { verifiedStream } from './verify-stream';

const MiB = 1024 * 1024;
/** S3 servers answer many requests at once; with one small object per blob, latency is the cost. */
const DEFAULT_UPLOAD_CONCURRENCY = 16;
/** Memory the running uploads may hold (a single PUT buffers its body). */
const UPLOAD_MEMORY_BYTES = 256 * MiB;
/** Digests remembered to spare lookups on a volume that started empty (~100 bytes each). */
const KNOWN_OBJECTS_CAP = 250_000;

export type S3VolumeStatus = UploadStatus;

/** A `BlobVolume` on S3 with a local write cache and a background uploader. */
export interface S3Volume extends BlobVolume {
  /** Waits until every cached blob is confirmed by the store (or `timeoutMs` passed: `VolumeUnavailable`). */
  drain(options?: { readonly timeoutMs?: number }): TE.TaskEither<VolumeError, void>;
  /** Blobs (and their bytes) in the cache waiting for the store. */
  pending(): { readonly blobs: number; readonly bytes: number };
  status(): S3VolumeStatus;
  /** Called on every change of the upload status; returns the unsubscribe function. Must not throw. */
  onStatus(listener: (s: S3VolumeStatus) => void): () => void;
}

const blobKey = (prefix: string, d: Digest): string => `${prefix}items/${digestShard(d)}/${d}`;

/** `<prefix>items/<xx>/<digest>` → the digest, or undefined for anything else. */
const digestOfKey = (itemsPrefix: string, key: string): Digest | undefined => {
  if (!key.startsWith(itemsPrefix)) return undefined;
  const m = /^([0-9a-f]{2})\/([0-9a-f]{64})$/.exec(key.slice(itemsPrefix.length));
  if (m === null) return undefined;
  const d = Digest.decode(m[2]);
  return E.isRight(d) && digestShard(d.right) === m[1] ? d.right : undefined;
};

/** Builds the volume over any `ObjectStore` (the minio one, or a fake in unit specs). */
export const makeS3VolumeWith = (
  config: S3VolumeConfig,
  store: ObjectStore,
): TE.TaskEither<VolumeError, S3Volume> =>
  pipe(
    TE.fromEither(decodeS3VolumeConfig(config)),
    TE.flatMap((c) =>
      pipe(
        makeBlobCache(c.cacheDir),
        TE.map((cache) => assemble(c, store, cache)),
      ),
    ),
  );

/** Opens the S3 volume described by `config` (decoded with `S3VolumeConfig`). Does not contact the store. */
export const makeS3Volume = (config: S3VolumeConfig): TE.TaskEither<VolumeError, S3Volume> =>
  pipe(
    TE.fromEither(decodeS3VolumeConfig(config)),
    TE.flatMap((c) =>
      pipe(
        withEncryption(
          makeMinioStore(c, {
            uploadTimeoutMs: (size) => c.uploadTimeoutMs ?? 10 * 60_000 + Math.ceil(size / MiB) * 1000,
          }),
          c.encryption,
        ),
        TE.mapLeft((e): VolumeError => ({ _tag: 'VolumeIOError', op: 'open', cause: new EncryptionFailure(e) })),
        TE.flatMap((store) => makeS3VolumeWith(c, store)),
      ),
    ),
  );

const assemble = (c: S3VolumeConfig, store: ObjectStore, cache: BlobCache): S3Volume => {
  const keyOf = (d: Digest): string => blobKey(c.prefix, d);
  const itemsPrefix = `${c.prefix}items/`;
  const known = makeKnownObjects(store, itemsPrefix, KNOWN_OBJECTS_CAP);
  const uploader: Uploader = makeUploader({
    store,
    cache,
    keyOf,
    concurrency: c.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
    maxBufferedBytes: UPLOAD_MEMORY_BYTES,
    partSize: c.partSize ?? DEFAULT_PART_SIZE,
    onConfirmed: (d) => known.confirmed(d),
    retry: { initialDelayMs: c.retry?.initialDelayMs ?? 1000, maxDelayMs: c.retry?.maxDelayMs ?? 60_000 },
  });
  const s3 =
    (d: Digest) =>
    <A>(te: TE.TaskEither<S3Error, A>): TE.TaskEither<VolumeError, A> =>
      pipe(te, TE.mapLeft((e) => toVolumeError(e, d)));

  // Blobs a previous run cached but did not upload.
  for (const [d] of cache.entries()) uploader.enqueue(d);

  // Is the content already in the store? Skipped while the store is known to be unreachable
  // (puts must not stall on it); a failed lookup only means we cache and upload as usual.
  const lookup = (s: Staged): TE.TaskEither<VolumeError, boolean> =>
    uploader.status().state === 'unreachable'
      ? TE.right(false)
      : pipe(
          store.stat(keyOf(s.digest)),
          TE.map((info) => isVerified(info, s.digest, s.size)),
          TE.orElse((e) => {
            uploader.observe(toVolumeError(e, s.digest));
            return TE.right(false);
          }),
        );
  const inStore = (s: Staged): TE.TaskEither<VolumeError, boolean> =>
    pipe(
      TE.fromTask(() => known.holds(s.digest)),
      TE.flatMap((held) => (held === undefined ? lookup(s) : TE.right(held))),
    );

  const put = (content: Readable, options?: PutOptions): TE.TaskEither<VolumeError, PutResult> =>
    pipe(
      cache.stage(content, options?.expectedDigest),
      TE.flatMap((s) => {
        const cached = cache.entry(s.digest);
        const result = (stored: boolean): PutResult => ({ digest: s.digest, size: s.size, stored });
        if (cached?.trusted) return pipe(cache.discard(s), TE.as(result(false)));
        // An untrusted copy (found at start) may be short after a crash: replace it with this one.
        if (cached !== undefined) return pipe(cache.commit(s), TE.as(result(false)));
        return pipe(
          inStore(s),
          TE.flatMap((present) =>
            present
              ? pipe(cache.discard(s), TE.as(result(false)))
              : pipe(
                  cache.commit(s),
                  TE.tap(() => TE.fromIO(() => uploader.enqueue(s.digest))),
                  TE.as(result(true)),
                ),
          ),
        );
      }),
    );

  const has = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    cache.entry(d) !== undefined
      ? TE.right(true)
      : pipe(
          s3(d)(store.stat(keyOf(d))),
          TE.map((info) => info !== undefined),
        );

  const stat = (d: Digest): TE.TaskEither<VolumeError, BlobStat> => {
    const cached = cache.entry(d);
    if (cached !== undefined)
      return TE.right({ digest: d, size: cached.size, storedSize: cached.size, modifiedAt: cached.modifiedAt });
    return pipe(
      s3(d)(store.stat(keyOf(d))),
      TE.flatMap((info) =>
        info === undefined
          ? TE.left<VolumeError, BlobStat>({ _tag: 'BlobNotFound', op: 'stat', key: d })
          : TE.right({
              digest: d,
              size: info.size,
              storedSize: info.size,
              ...(info.lastModified === undefined ? {} : { modifiedAt: info.lastModified.getTime() }),
            }),
      ),
    );
  };

  const fromStore = (d: Digest): TE.TaskEither<VolumeError, Readable> =>
    pipe(
      s3(d)(store.get(keyOf(d))),
      TE.map((body) =>
        verifiedStream(body, d, 'get', (e) => storeReadError(d, e)),
      ),
    );

  const get = (d: Digest): TE.TaskEither<VolumeError, Readable> =>
    cache.entry(d) === undefined
      ? fromStore(d)
      : pipe(
          cache.open(d),
          TE.flatMap((body) =>
            body === undefined
              ? fromStore(d) // uploaded and dropped from the cache meanwhile
              : TE.right(verifiedStream(body, d, 'get', (e) => ({ _tag: 'VolumeIOError', op: 'get', key: d, cause: e }))),
          ),
        );

  const del = (d: Digest): TE.TaskEither<VolumeError, void> =>
    pipe(
      TE.fromTask(() => uploader.forget(d)), // a running upload would bring it back
      TE.tap(() => TE.fromIO(() => known.removed(d))),
      TE.flatMap(() => cache.remove(d)),
      TE.flatMap((wasCached) =>
        pipe(
          s3(d)(store.stat(keyOf(d))),
          TE.flatMap((info) =>
            info === undefined
              ? wasCached
                ? TE.right(undefined)
                : TE.left<VolumeError, void>({ _tag: 'BlobNotFound', op: 'delete', key: d })
              : s3(d)(store.remove(keyOf(d))),
          ),
        ),
      ),
    );

  const list = (visit: (d: Digest) => void | Promise<void>): TE.TaskEither<VolumeError, number> => {
    // The cache's own index first; the store's listing then skips what was visited.
    const seen = new Set<Digest>();
    return pipe(
      TE.tryCatch(
        async () => {
          for (const [d] of [...cache.entries()]) {
            seen.add(d);
            await visit(d);
          }
          return seen.size;
        },
        (e): VolumeError => ({ _tag: 'VolumeIOError', op: 'list', cause: e }),
      ),
      TE.flatMap((fromCache) => {
        let fromStore = 0;
        return pipe(
          store.list(itemsPrefix, async (o) => {
            const d = digestOfKey(itemsPrefix, o.key);
            if (d === undefined || seen.has(d)) return;
            fromStore++;
            await visit(d);
          }),
          TE.mapLeft((e): VolumeError => (e._tag === 'ObjectNotFound' ? { ...e, _tag: 'VolumeIOError', cause: e.cause } : e)),
          TE.map(() => fromCache + fromStore),
        );
      }),
    );
  };

  return {
    name: `s3:${c.bucket}/${c.prefix}`,
    supports: { durable: true, remote: true },
    put,
    putFile: putFileThroughStream(put),
    has,
    get,
    stat,
    delete: del,
    list,
    flush: () => cache.flush(),
    close: () =>
      pipe(
        TE.fromTask(() => uploader.close()),
        TE.flatMap(() => cache.flush()),
      ),
    drain: (options) => uploader.drain(options?.timeoutMs),
    pending: () => ({ blobs: cache.count(), bytes: cache.bytes() }),
    status: () => uploader.status(),
    onStatus: (l) => uploader.onStatus(l),
  };
};
