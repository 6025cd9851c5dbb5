import type { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { Client } from 'minio';
import { DEFAULT_PART_SIZE, type S3StoreConfig } from './config';
import { toS3Error, type S3Error } from './errors';
import type { ListedObject, ObjectInfo, ObjectStore } from './object-store';

const META_PREFIX = 'x-amz-meta-';

export const makeMinioClient = (config: S3StoreConfig): Client =>
  new Client({
    endPoint: config.endPoint,
    port: config.port,
    useSSL: config.useSSL,
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region: config.region,
    pathStyle: config.pathStyle ?? true,
    partSize: config.partSize ?? DEFAULT_PART_SIZE,
    // We retry ourselves, with back-off; minio's own retry also prints to the console.
    retryOptions: { disableRetry: true },
  });

/** Wraps one SDK call: the only way minio's promises enter our code. */
export const s3Call =
  (config: S3StoreConfig, op: string, key: string | undefined) =>
  <A>(f: () => Promise<A>): TE.TaskEither<S3Error, A> =>
    TE.tryCatch(f, (e) => toS3Error(op, key, e, [config.accessKey, config.secretKey]));

export interface MinioStoreOptions {
  /** Reject an upload that has not finished after this long (the SDK has no request timeout). */
  readonly uploadTimeoutMs: (size: number) => number;
}

// Resolves with the upload, or rejects when the body fails or the watchdog fires; the SDK
// does not notice a failing body in a multipart upload, so we must not wait for it.
const guardedUpload = (body: Readable, timeoutMs: number, upload: () => Promise<unknown>): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`upload did not finish within ${timeoutMs} ms`), { code: 'UploadTimeout' });
      body.destroy();
      reject(err);
    }, timeoutMs);
    const done = (err?: unknown): void => {
      clearTimeout(timer);
      if (err === undefined) resolve();
      else reject(err);
    };
    body.once('error', done);
    upload().then(
      () => done(),
      (e: unknown) => done(e ?? new Error('upload failed')),
    );
  });

export const makeMinioStore = (config: S3StoreConfig, options: MinioStoreOptions): ObjectStore => {
  const client = makeMinioClient(config);
  const bucket = config.bucket;
  const call = (op: string, key: string | undefined) => s3Call(config, op, key);

  const stat = (key: string): TE.TaskEither<S3Error, ObjectInfo | undefined> =>
    pipe(
      call('stat', key)(() => client.statObject(bucket, key)),
      TE.map((s): ObjectInfo | undefined => ({
        key,
        size: s.size,
        metadata: Object.fromEntries(
          Object.entries(s.metaData as Record<string, unknown>).map(([k, v]) => [
            k.toLowerCase().replace(META_PREFIX, ''),
            String(v),
          ]),
        ),
        lastModified: s.lastModified,
      })),
      TE.orElse((e) => (e._tag === 'ObjectNotFound' ? TE.right(undefined) : TE.left(e))),
    );

  const put = (
    key: string,
    body: Readable,
    size: number,
    metadata: Readonly<Record<string, string>>,
  ): TE.TaskEither<S3Error, void> =>
    call('put', key)(() =>
      guardedUpload(body, options.uploadTimeoutMs(size), () =>
        client.putObject(
          bucket,
          key,
          body,
          size,
          Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`${META_PREFIX}${k}`, v])),
        ),
      ),
    );

  const get = (key: string): TE.TaskEither<S3Error, Readable> => call('get', key)(() => client.getObject(bucket, key));

  const remove = (key: string): TE.TaskEither<S3Error, void> =>
    call('remove', key)(() => client.removeObject(bucket, key));

  const list = (prefix: string, visit: (o: ListedObject) => void | Promise<void>): TE.TaskEither<S3Error, number> =>
    call('list', prefix)(async () => {
      let n = 0;
      // Async iteration pulls one page of the listing at a time (back-pressure on `visit`).
      for await (const item of client.listObjectsV2(bucket, prefix, true)) {
        const o = item as { name?: string; size?: number; lastModified?: Date };
        if (o.name === undefined) continue; // a common prefix, only in non-recursive listings
        await visit({ key: o.name, size: o.size ?? 0, ...(o.lastModified ? { lastModified: o.lastModified } : {}) });
        n++;
      }
      return n;
    });

  return { stat, put, get, remove, list };
};
