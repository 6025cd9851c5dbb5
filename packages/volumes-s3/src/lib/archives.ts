import type { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { decodeS3StoreConfig, type S3StoreConfig } from './config';
import type { S3Error } from './errors';
import { makeMinioClient, makeMinioStore, s3Call } from './minio-store';
import { encryptionS3Error, withEncryption } from './encrypted-object-store';
import type { ListedObject, ObjectStore } from './object-store';

export interface BucketInfo {
  readonly name: string;
  readonly creationDate: Date;
}

export interface ArchiveInfo {
  /** Relative to the volume prefix, e.g. `accounts/alice@example.com/20260126T030000000Z.tar.gz`. */
  readonly key: string;
  readonly size: number;
  readonly lastModified?: Date;
}

const decoded = (config: S3StoreConfig): TE.TaskEither<S3Error, S3StoreConfig> =>
  pipe(
    TE.fromEither(decodeS3StoreConfig(config)),
    TE.mapLeft((e): S3Error => ({ _tag: 'VolumeIOError', op: e.op, cause: e.cause })),
  );

/** The store of the archives: encrypted like the blobs when the configuration says so. */
const archiveStore = (c: S3StoreConfig): TE.TaskEither<S3Error, ObjectStore> =>
  pipe(
    // Metadata archives are small next to blobs; a generous fixed watchdog is enough.
    withEncryption(makeMinioStore(c, { uploadTimeoutMs: (size) => 10 * 60_000 + Math.ceil(size / (1024 * 1024)) * 1000 }), c.encryption),
    TE.mapLeft((e) => encryptionS3Error('loadKey', undefined, e)),
  );

/** Creates the bucket when it does not exist; `true` when it was created. */
export const ensureBucket = (config: S3StoreConfig): TE.TaskEither<S3Error, boolean> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => {
      const client = makeMinioClient(c);
      const call = s3Call(c, 'ensureBucket', c.bucket);
      return pipe(
        call(() => client.bucketExists(c.bucket)),
        TE.flatMap((exists) => (exists ? TE.right(false) : pipe(call(() => client.makeBucket(c.bucket, c.region)), TE.as(true)))),
      );
    }),
  );

/** The buckets the credentials can see (`config.bucket` and `prefix` are not used). */
export const listBuckets = (config: S3StoreConfig): TE.TaskEither<S3Error, ReadonlyArray<BucketInfo>> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => {
      const client = makeMinioClient(c);
      return pipe(
        s3Call(c, 'listBuckets', undefined)(() => client.listBuckets()),
        TE.map((bs) => bs.map((b) => ({ name: b.name, creationDate: b.creationDate }))),
      );
    }),
  );

/** `accounts/<account>/<UTC timestamp>.tar.gz`: keys sort by time within an account. */
export const accountArchiveKey = (account: string, at: Date): string =>
  `accounts/${account}/${at.toISOString().replace(/[-:.]/g, '')}.tar.gz`;

/**
 * Uploads `size` bytes of `body` to `<prefix><key>` (multipart above `partSize`); with
 * `config.encryption`, encrypted (the archive helpers all read and write through the key).
 */
export const uploadArchive = (
  config: S3StoreConfig,
  key: string,
  body: Readable,
  size: number,
): TE.TaskEither<S3Error, void> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => pipe(archiveStore(c), TE.flatMap((store) => store.put(`${c.prefix}${key}`, body, size, {})))),
  );

/** Archives under `<prefix><under>` (e.g. `accounts/alice@example.com/`), oldest key first. */
export const listArchives = (config: S3StoreConfig, under: string): TE.TaskEither<S3Error, ReadonlyArray<ArchiveInfo>> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => {
      const found: ArchiveInfo[] = [];
      return pipe(
        archiveStore(c),
        TE.flatMap((store) =>
          store.list(`${c.prefix}${under}`, (o: ListedObject) => {
            found.push({ ...o, key: o.key.slice(c.prefix.length) });
          }),
        ),
        TE.map(() => found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))),
      );
    }),
  );

/** Removes `<prefix><key>`; removing a missing archive succeeds (S3 semantics). */
export const removeArchive = (config: S3StoreConfig, key: string): TE.TaskEither<S3Error, void> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => pipe(archiveStore(c), TE.flatMap((store) => store.remove(`${c.prefix}${key}`)))),
  );

/** Streams `<prefix><key>`; a missing archive is `ObjectNotFound`. */
export const downloadArchive = (config: S3StoreConfig, key: string): TE.TaskEither<S3Error, Readable> =>
  pipe(
    decoded(config),
    TE.flatMap((c) => pipe(archiveStore(c), TE.flatMap((store) => store.get(`${c.prefix}${key}`)))),
  );
