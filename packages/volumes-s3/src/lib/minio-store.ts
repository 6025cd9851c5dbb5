import { createHash, type Hash } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Transform, pipeline, type Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Client } from 'minio';
import { DEFAULT_PART_SIZE, type S3StoreConfig } from './config';
import { downloadOffThread, downloadToFilesOffThread, type FileDownload } from './download-worker';
import { storeAnswerError, toS3Error, type S3Error } from './errors';
import type { ListedObject, ObjectInfo, ObjectStore, PutFileBlobsResult } from './object-store';
import { decodeListPage } from './list-page';
import { presignedBucketUrl, presignedGetUrl, presignedPutUrl, type SigningStore } from './presign';
import { uploadOffThread, type FileBlob } from './upload-worker';

const META_PREFIX = 'x-amz-meta-';
/** A presigned PUT is used at once; this only bounds a URL that leaked into a log. */
const PRESIGNED_SECONDS = 15 * 60;

// The minio SDK loads when the first client is made: most commands never talk to S3, and
// loading it costs ~0.3 s of CPU at the start of every command that imports this package.
const loadMinio = (): typeof import('minio') => require('minio') as typeof import('minio');

const agents = new WeakMap<Client, Agent>();

export const makeMinioClient = (config: S3StoreConfig): Client => {
  const agent = config.useSSL ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  const client = newClient(config, agent);
  agents.set(client, agent);
  return client;
};

/** The client options that say where the store is and who signs: for the minio client and for presigned GETs. */
const signingOf = (config: S3StoreConfig): SigningStore => ({
  endPoint: config.endPoint,
  port: config.port,
  useSSL: config.useSSL,
  accessKey: config.accessKey,
  secretKey: config.secretKey,
  region: config.region,
  pathStyle: config.pathStyle ?? true,
});

const newClient = (config: S3StoreConfig, agent: Agent): Client =>
  new (loadMinio().Client)({
    ...signingOf(config),
    partSize: config.partSize ?? DEFAULT_PART_SIZE,
    // We retry ourselves, with back-off; minio's own retry also prints to the console.
    retryOptions: { disableRetry: true },
    // Reuse connections across requests (Node's default agent does only since Node 19).
    transportAgent: agent,
  });

/** Wraps one SDK call: the only way minio's promises enter our code. */
export const s3Call =
  (config: S3StoreConfig, op: string, key: string | undefined) =>
  <A>(f: () => Promise<A>): TE.TaskEither<S3Error, A> =>
    TE.tryCatch(f, (e) => toS3Error(op, key, e, [config.accessKey, config.secretKey]));

export interface MinioStoreOptions {
  /** Reject an upload that has not finished after this long (the SDK has no request timeout). */
  readonly uploadTimeoutMs: (size: number) => number;
  /** Give up a page of a listing after this long (default 60 s). */
  readonly listTimeoutMs?: number;
  /** Keys per page of a listing (default: the server's, 1,000 on S3); specs make pages small. */
  readonly listPageKeys?: number;
}

const LIST_TIMEOUT_MS = 60_000;

/** A GET whose answer is a (small) document: its status and text. */
const getText = (url: string, agent: Agent, timeoutMs: number): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { method: 'GET', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    request.setTimeout(timeoutMs, () => request.destroy(Object.assign(new Error(`no answer to a listing within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    request.on('error', reject);
    request.end();
  });

// Resolves with `work`, or rejects when `body` fails or the watchdog fires; the SDK does not
// notice a failing body in a multipart upload, so we must not wait for it.
const guarded = <A>(body: Readable | undefined, timeoutMs: number, work: () => Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`upload did not finish within ${timeoutMs} ms`), { code: 'UploadTimeout' });
      body?.destroy();
      reject(err);
    }, timeoutMs);
    const fail = (err: unknown): void => {
      clearTimeout(timer);
      reject(err ?? new Error('upload failed'));
    };
    body?.once('error', fail);
    work().then((a) => {
      clearTimeout(timer);
      body?.off('error', fail);
      resolve(a);
    }, fail);
  });

/**
 * Passes the body on while hashing it, failing the stream when it holds more or fewer bytes than
 * `size` (a shorter cache file is never uploaded: minio reads a single-PUT body whole before it
 * sends anything, and a failed body fails that read).
 */
const exactly = (size: number, md5: Hash): Transform => {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (n > size) return cb(new Error(`the body holds more bytes than the announced ${size}`));
      md5.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      cb(n === size ? null : new Error(`the body holds fewer bytes (${n}) than the announced ${size}`));
    },
  });
};

/** An upload the store answered but did not confirm: retried like any failed upload. */
const unconfirmed = (message: string): Error => Object.assign(new Error(message), { code: 'UploadNotConfirmed' });

const metadataOf = (raw: Record<string, unknown>): Record<string, string> =>
  Object.fromEntries(Object.entries(raw).map(([k, v]) => [k.toLowerCase().replace(META_PREFIX, ''), String(v)]));

export const makeMinioStore = (config: S3StoreConfig, options: MinioStoreOptions): ObjectStore => {
  // Made at the first call that needs it: a restore reading only through the download worker
  // (with requests presigned by aws4) never loads the SDK.
  let madeClient: Client | undefined;
  const clientOf = (): Client => (madeClient ??= makeMinioClient(config));
  const signing = signingOf(config);
  const bucket = config.bucket;
  const partSize = config.partSize ?? DEFAULT_PART_SIZE;
  const call = (op: string, key: string | undefined) => s3Call(config, op, key);

  const stat = (key: string): TE.TaskEither<S3Error, ObjectInfo | undefined> =>
    pipe(
      call('stat', key)(() => clientOf().statObject(bucket, key)),
      TE.map((s): ObjectInfo | undefined => ({
        key,
        size: s.size,
        metadata: metadataOf(s.metaData as Record<string, unknown>),
        lastModified: s.lastModified,
      })),
      TE.orElse((e) => (e._tag === 'ObjectNotFound' ? TE.right(undefined) : TE.left(e))),
    );

  const presignedPut = async (key: string): Promise<string> =>
    presignedPutUrl(signing, bucket, key, PRESIGNED_SECONDS) ?? clientOf().presignedPutObject(bucket, key, PRESIGNED_SECONDS);

  // The ETag a store answered for a single PUT is the MD5 of what it holds: another one fails the put.
  const confirmEtag = (etag: string, md5: string): void => {
    const answered = etag.replace(/"/g, '').toLowerCase();
    if (answered !== md5) throw unconfirmed(`the store answered ETag ${answered} for content with MD5 ${md5}`);
  };
  // The store's answer to a PUT we sent ourselves: anything but a 200 with the content's MD5 as the ETag is a failure.
  const confirm = (status: number, etag: string, body: string, md5: string): void => {
    if (status !== 200) throw storeAnswerError(status, body);
    confirmEtag(etag, md5);
  };

  // One PUT without user metadata (index objects, and packs where no upload worker can read
  // them): a presigned request that sends the body's chunks as they are, with their Content-MD5,
  // which the store checks (BadDigest otherwise); the ETag it answers is checked too. Through
  // minio the same PUT cost a copy of the body and a SHA-256 of it (to sign the payload).
  const putPresigned = async (key: string, body: Readable, size: number): Promise<void> => {
    const hash = createHash('md5');
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of body) {
      const b = c as Buffer;
      n += b.length;
      if (n > size) throw new Error(`the body holds more bytes than the announced ${size}`);
      hash.update(b);
      chunks.push(b);
    }
    if (n !== size) throw new Error(`the body holds fewer bytes (${n}) than the announced ${size}`);
    const md5 = hash.digest();
    const url = await presignedPut(key);
    const answer = await new Promise<{ status: number; etag: string; body: string }>((resolve, reject) => {
      const request = (config.useSSL ? httpsRequest : httpRequest)(
        url,
        { method: 'PUT', agent: agents.get(clientOf()), headers: { 'Content-Length': String(size), 'Content-MD5': md5.toString('base64') } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            if (text.length < 4096) text += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: String(res.headers.etag ?? ''), body: text }));
          res.on('error', reject);
        },
      );
      request.on('error', reject);
      for (const c of chunks) request.write(c);
      request.end();
    });
    confirm(answer.status, answer.etag, answer.body, md5.toString('hex'));
  };

  // A pack from the spool files, sent by the upload worker (see upload-worker.ts).
  const putFileBlobs = (key: string, blobs: readonly FileBlob[], size: number): TE.TaskEither<S3Error, PutFileBlobsResult> =>
    call('put', key)(async () => {
      const answer = await uploadOffThread({ url: await presignedPut(key), blobs, size, timeoutMs: options.uploadTimeoutMs(size) });
      if (answer.kind === 'corrupt') return answer;
      confirm(answer.status, answer.etag, answer.body, answer.md5);
      return { kind: 'stored' };
    });

  // One PUT with user metadata, which minio buffers whole before sending: the bytes are hashed
  // on their way in, so that the ETag the store answers can be checked against the MD5 of
  // exactly the bytes sent.
  const putSingle = async (key: string, body: Readable, size: number, meta: Record<string, string>): Promise<void> => {
    const hash = createHash('md5');
    const checked = exactly(size, hash);
    pipeline(body, checked, () => undefined); // a failing body fails `checked`, which minio reads
    const { etag } = await guarded(checked, options.uploadTimeoutMs(size), () => clientOf().putObject(bucket, key, checked, size, meta));
    confirmEtag(etag, hash.digest('hex'));
  };

  // In parts: the server checks each part's Content-MD5 (minio sends it); a HEAD then shows
  // the whole size and our metadata.
  const putMultipart = async (key: string, body: Readable, size: number, meta: Record<string, string>): Promise<void> => {
    await guarded(body, options.uploadTimeoutMs(size), () => clientOf().putObject(bucket, key, body, size, meta));
    const s = await clientOf().statObject(bucket, key);
    const got = metadataOf(s.metaData as Record<string, unknown>);
    const wrong = Object.entries(meta).filter(([k, v]) => got[k.toLowerCase().replace(META_PREFIX, '')] !== v);
    if (s.size !== size || wrong.length > 0)
      throw unconfirmed(`the store holds ${s.size} bytes${wrong.length > 0 ? ` and other metadata (${wrong.map(([k]) => k).join(', ')})` : ''} after the upload of ${size} bytes`);
  };

  const put = (
    key: string,
    body: Readable,
    size: number,
    metadata: Readonly<Record<string, string>>,
  ): TE.TaskEither<S3Error, void> => {
    const meta = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`${META_PREFIX}${k}`, v]));
    return call('put', key)(() =>
      (size > partSize
        ? putMultipart(key, body, size, meta)
        : Object.keys(meta).length === 0
          ? guarded(body, options.uploadTimeoutMs(size), () => putPresigned(key, body, size))
          : putSingle(key, body, size, meta)
      ).finally(() => body.destroy()),
    );
  };

  const get = (key: string): TE.TaskEither<S3Error, Readable> => call('get', key)(() => clientOf().getObject(bucket, key));

  // GETs on the download worker (see download-worker.ts), presigned here: with aws4, or by the
  // SDK for a virtual-hosted store.
  const presignedGet = async (key: string): Promise<string> =>
    presignedGetUrl(signing, bucket, key, PRESIGNED_SECONDS) ?? clientOf().presignedGetObject(bucket, key, PRESIGNED_SECONDS);

  const getOffThread = (key: string): TE.TaskEither<S3Error, Readable> => call('get', key)(async () => downloadOffThread(await presignedGet(key)));

  const downloadToFiles = (key: string): FileDownload => downloadToFilesOffThread(presignedGet(key));

  const remove = (key: string): TE.TaskEither<S3Error, void> =>
    call('remove', key)(() => clientOf().removeObject(bucket, key));

  // Pages of ListObjectsV2 through presigned URLs (aws4) and fast-xml-parser: listing is the
  // first thing a new machine does (its index objects), and through the SDK it meant loading it.
  const listAgent = config.useSSL ? new HttpsAgent({ keepAlive: true }) : new Agent({ keepAlive: true });
  const listPresigned = async (prefix: string, visit: (o: ListedObject) => void | Promise<void>): Promise<number | undefined> => {
    let n = 0;
    let token: string | undefined;
    do {
      const url = presignedBucketUrl(signing, bucket, {
          'list-type': '2',
          prefix,
          ...(options.listPageKeys === undefined ? {} : { 'max-keys': String(options.listPageKeys) }),
          ...(token === undefined ? {} : { 'continuation-token': token }),
        }, PRESIGNED_SECONDS);
      if (url === undefined) return undefined;
      const answer = await getText(url, listAgent, options.listTimeoutMs ?? LIST_TIMEOUT_MS);
      if (answer.status !== 200) throw storeAnswerError(answer.status, answer.body);
      const page = decodeListPage(answer.body);
      for (const o of page.objects) {
        await visit(o);
        n++;
      }
      token = page.next;
    } while (token !== undefined);
    return n;
  };

  const list = (prefix: string, visit: (o: ListedObject) => void | Promise<void>): TE.TaskEither<S3Error, number> =>
    call('list', prefix)(async () => {
      const listed = await listPresigned(prefix, visit);
      if (listed !== undefined) return listed;
      let n = 0;
      // Async iteration pulls one page of the listing at a time (back-pressure on `visit`).
      for await (const item of clientOf().listObjectsV2(bucket, prefix, true)) {
        const o = item as { name?: string; size?: number; lastModified?: Date };
        if (o.name === undefined) continue; // a common prefix, only in non-recursive listings
        await visit({ key: o.name, size: o.size ?? 0, ...(o.lastModified ? { lastModified: o.lastModified } : {}) });
        n++;
      }
      return n;
    });

  return { stat, put, putFileBlobs, get, getOffThread, downloadToFiles, remove, list };
};
