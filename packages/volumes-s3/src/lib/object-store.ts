import type { Readable } from 'node:stream';
import type * as TE from 'fp-ts/TaskEither';
import type { FileDownload } from './download-worker';
import type { FileBlob } from './upload-worker';
import type { S3Error } from './errors';

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** User metadata, names without the `x-amz-meta-` prefix, lower case. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly lastModified?: Date;
}

/** What `putFileBlobs` did: stored, or nothing sent because a blob on disk is not what its digest says. */
export type PutFileBlobsResult =
  | { readonly kind: 'stored' }
  | { readonly kind: 'corrupt'; readonly digest: string; readonly actual: string };

export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly lastModified?: Date;
}

/**
 * The few object-store calls the volume needs, over one bucket. The minio adapter is the only
 * implementation that talks to a server; unit specs use a fault-injecting in-memory fake.
 * Keys are full keys (prefix included).
 */
export interface ObjectStore {
  /** `undefined` when the key does not exist. */
  stat(key: string): TE.TaskEither<S3Error, ObjectInfo | undefined>;
  /**
   * `size` is required: it decides between a single PUT and a multipart upload. Resolves only
   * once the store confirmed it holds exactly the `size` bytes of `body` with `metadata` (the
   * minio store checks the ETag against the MD5 of what it sent, or a multipart upload's size
   * and metadata with a HEAD); a body of another size fails the put. The uploader relies on it.
   */
  put(
    key: string,
    body: Readable,
    size: number,
    metadata: Readonly<Record<string, string>>,
  ): TE.TaskEither<S3Error, void>;
  /**
   * `put` (no metadata, a single PUT: `size` at most the part size) of the concatenation of
   * blobs of local files, read where the store sends them from and each checked against its
   * SHA-256 digest before anything is sent: the caller's thread never holds the bytes (the minio
   * store reads and sends them on its upload worker). Confirmed as `put` is.
   */
  readonly putFileBlobs?: (key: string, blobs: readonly FileBlob[], size: number) => TE.TaskEither<S3Error, PutFileBlobsResult>;
  /** A missing key is `ObjectNotFound`, before any byte is streamed. */
  get(key: string): TE.TaskEither<S3Error, Readable>;
  /**
   * `get`, with the receiving of the body on another thread where the store can: for long reads
   * whose bytes the caller only passes on (a restore's packs), so the caller's thread is free
   * for its own work. The same failures and the same bytes as `get`.
   */
  readonly getOffThread?: (key: string) => TE.TaskEither<S3Error, Readable>;
  /**
   * Downloads an object on another thread, which writes its parts (blobs of a pack) into new
   * files there (see download-worker.ts): the bytes never come to the caller's thread. Its
   * failures come as files `lost` (the caller reads those blobs another way).
   */
  readonly downloadToFiles?: (key: string) => FileDownload;
  /** Removing a missing key succeeds (S3 semantics). */
  remove(key: string): TE.TaskEither<S3Error, void>;
  /** Streams the keys under `prefix` (recursively), awaiting `visit` before reading on. */
  list(prefix: string, visit: (o: ListedObject) => void | Promise<void>): TE.TaskEither<S3Error, number>;
}
