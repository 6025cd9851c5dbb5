import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import type { VolumeError } from '@zxbackup/volume-contract';

const MiB = 1024 * 1024;
/** S3's limits for one part of a multipart upload. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const DEFAULT_PART_SIZE = 64 * MiB;
/**
 * Blobs are uploaded in packs of about this many bytes (restic's default too). Each pack costs two
 * requests (the pack, its index object), and on the test server (Swift) a request costs ~15 ms of
 * CPU: 16 MiB instead of 8 made the initial SmartScan of 20,000 mails ~7% faster (three
 * interleaved pairs, 11.9-13.3 s against 13.7-15.1 s), the server sharing the machine.
 */
export const DEFAULT_PACK_SIZE = 16 * MiB;
export const MIN_PACK_SIZE = 16 * 1024;

/**
 * Client-side encryption (see `encryption.ts`): the path of the key file, never the key.
 * `keyId`, when given, is the fingerprint the file must hold: a replaced key file is refused
 * instead of failing on every object.
 */
export const EncryptionConfig = t.intersection([t.type({ keyFile: t.string }), t.partial({ keyId: t.string })]);
export type EncryptionConfig = t.TypeOf<typeof EncryptionConfig>;

/** Where the bucket is and how to talk to it: enough for the archive helpers and `ensureBucket`. */
export const S3StoreConfig = t.intersection([
  t.type({
    /** Host name or IP, without scheme or port (minio's `endPoint`). */
    endPoint: t.string,
    port: t.number,
    useSSL: t.boolean,
    accessKey: t.string,
    secretKey: t.string,
    region: t.string,
    bucket: t.string,
    /** The volume prefix, e.g. `server1/`: one server's data in a shared bucket. `''` for the bucket root. */
    prefix: t.string,
  }),
  t.partial({
    /** Objects larger than this upload in parts of this size (default 64 MiB, at least 5 MiB). */
    partSize: t.number,
    /** Path-style requests (`host/bucket/key`); default true, which every S3-compatible server accepts. */
    pathStyle: t.boolean,
    /** Encrypt every object (blobs and metadata archives) with this key file's key. */
    encryption: EncryptionConfig,
  }),
]);
export type S3StoreConfig = t.TypeOf<typeof S3StoreConfig>;

export const RetryPolicy = t.partial({
  /** First back-off after a failed upload (default 1 s); doubles after each consecutive failure. */
  initialDelayMs: t.number,
  /** Ceiling of the back-off (default 60 s). The uploader never gives up. */
  maxDelayMs: t.number,
});
export type RetryPolicy = t.TypeOf<typeof RetryPolicy>;

export const S3VolumeConfig = t.intersection([
  S3StoreConfig,
  t.type({
    /** Local write cache, e.g. `<backupPath>/cache/s3`; one volume instance per directory. */
    cacheDir: t.string,
  }),
  t.partial({
    /** Packs uploading at once (default 4). */
    uploadConcurrency: t.number,
    /** Bytes per pack (default 16 MiB; at least 16 KiB). A blob of half as many or more gets a pack of its own. */
    packSize: t.number,
    /** Memory for reads (default 32 MiB): blobs taken out of prefetched packs ahead of their reads, whole packs for other reads. */
    readCacheBytes: t.number,
    retry: RetryPolicy,
    /** An upload that takes longer is abandoned and retried (default 10 min + 1 s per MiB). */
    uploadTimeoutMs: t.number,
  }),
]);
export type S3VolumeConfig = t.TypeOf<typeof S3VolumeConfig>;

const invalid = (what: string): VolumeError => ({
  _tag: 'VolumeIOError',
  op: 'decodeConfig',
  cause: new Error(`invalid S3 configuration: ${what}`),
});

// The paths only, never the values: a bad value may be a secret.
const describeErrors = (errors: t.Errors): string =>
  [
    ...new Set(
      errors.map((e) =>
        e.context
          .map((c) => c.key)
          .filter((k) => k !== '' && !/^\d+$/.test(k))
          .join('.'),
      ),
    ),
  ].join(', ') || 'not an object';

const checkRanges = <C extends S3StoreConfig>(c: C): E.Either<VolumeError, C> => {
  const numbers: Record<string, unknown> = { ...c, ...(c as Partial<S3VolumeConfig>).retry };
  const fractional = ['port', 'partSize', 'packSize', 'readCacheBytes', 'uploadConcurrency', 'uploadTimeoutMs', 'initialDelayMs', 'maxDelayMs'].filter(
    (k) => typeof numbers[k] === 'number' && !(Number.isSafeInteger(numbers[k]) && (numbers[k] as number) >= 0),
  );
  if (fractional.length > 0) return E.left(invalid(`not a non-negative integer: ${fractional.join(', ')}`));
  if (c.port < 1 || c.port > 65535) return E.left(invalid('port out of range'));
  if (c.bucket === '') return E.left(invalid('bucket is empty'));
  if (c.encryption !== undefined && c.encryption.keyFile === '') return E.left(invalid('encryption.keyFile is empty'));
  if (c.partSize !== undefined && (c.partSize < MIN_PART_SIZE || c.partSize > MAX_PART_SIZE))
    return E.left(invalid(`partSize must be between ${MIN_PART_SIZE} and ${MAX_PART_SIZE} bytes`));
  return E.right(c);
};

/** `server1`, `/server1/` and `server1/` all mean the folder `server1/`. */
export const normalizePrefix = (prefix: string): string => {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p === '' ? '' : `${p}/`;
};

export const decodeS3StoreConfig = (u: unknown): E.Either<VolumeError, S3StoreConfig> =>
  pipe(
    S3StoreConfig.decode(u),
    E.mapLeft((errors) => invalid(describeErrors(errors))),
    E.flatMap(checkRanges),
    E.map((c) => ({ ...c, prefix: normalizePrefix(c.prefix) })),
  );

export const decodeS3VolumeConfig = (u: unknown): E.Either<VolumeError, S3VolumeConfig> =>
  pipe(
    S3VolumeConfig.decode(u),
    E.mapLeft((errors) => invalid(describeErrors(errors))),
    E.flatMap(checkRanges),
    E.flatMap((c) =>
      c.uploadConcurrency !== undefined && c.uploadConcurrency < 1
        ? E.left(invalid('uploadConcurrency must be at least 1'))
        : c.packSize !== undefined && c.packSize < MIN_PACK_SIZE
          ? E.left(invalid(`packSize must be at least ${MIN_PACK_SIZE} bytes`))
          : E.right(c),
    ),
    E.map((c) => ({ ...c, prefix: normalizePrefix(c.prefix) })),
  );
