import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { readExactlySync } from './cache';
import type { S3Error } from './errors';
import type { ListedObject, ObjectInfo, ObjectStore, PutFileBlobsResult } from './object-store';
import type { FileBlob } from './upload-worker';

export type StoreOp = 'stat' | 'put' | 'get' | 'remove' | 'list';

export interface StoreCall {
  readonly op: StoreOp;
  readonly key: string;
  readonly at: number;
}

/**
 * An in-memory `ObjectStore` for unit specs, with fault injection (restic's and kopia's
 * "faulty backend"): `fault` is asked before every call and may fail it; `calls` records them.
 */
export interface MemoryObjectStore extends ObjectStore {
  readonly objects: Map<string, { bytes: Buffer; metadata: Record<string, string>; lastModified: Date }>;
  readonly calls: StoreCall[];
  fault: (op: StoreOp, key: string) => S3Error | undefined;
  /** Bodies of `get` come in chunks of this size (a network read's), or whole when undefined. */
  chunkBytes: number | undefined;
}

export const unavailable = (op: string, key?: string): S3Error => ({
  _tag: 'VolumeUnavailable',
  op,
  ...(key === undefined ? {} : { key }),
  cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' }),
});

/** The bytes of file blobs, read as the upload worker reads them; the first that does not match its digest. */
const readFileBlobs = (blobs: readonly FileBlob[]): { bytes: Buffer } | { corrupt: FileBlob; actual: string } => {
  const parts: Buffer[] = [];
  for (const b of blobs) {
    const part = Buffer.alloc(b.length);
    const fd = openSync(b.file, 'r');
    try {
      readExactlySync(fd, part, b.offset, `${b.file} ends before ${b.offset + b.length}`);
    } finally {
      closeSync(fd);
    }
    const actual = createHash('sha256').update(part).digest('hex');
    if (actual !== b.digest) return { corrupt: b, actual };
    parts.push(part);
  }
  return { bytes: Buffer.concat(parts) };
};

/** `fileBlobs: false` leaves out `putFileBlobs` (a store that cannot read local files: packs go through `put`). */
export const makeMemoryObjectStore = (options: { readonly fileBlobs?: boolean } = {}): MemoryObjectStore => {
  const objects: MemoryObjectStore['objects'] = new Map();
  const calls: StoreCall[] = [];
  const self: MemoryObjectStore = {
    objects,
    calls,
    fault: () => undefined,
    chunkBytes: undefined,
    stat: (key) => guarded('stat', key, async (): Promise<ObjectInfo | undefined> => {
      const o = objects.get(key);
      return o && { key, size: o.bytes.length, metadata: { ...o.metadata }, lastModified: o.lastModified };
    }),
    put: (key, body, size, metadata) =>
      guarded('put', key, async () => {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c as Buffer));
        const bytes = Buffer.concat(chunks);
        if (bytes.length !== size) throw new Error(`body of ${bytes.length} bytes, announced ${size}`);
        objects.set(key, { bytes, metadata: { ...metadata }, lastModified: new Date() });
      }),
    ...(options.fileBlobs === false
      ? {}
      : {
          putFileBlobs: (key: string, blobs: readonly FileBlob[], size: number) =>
            guarded('put', key, async (): Promise<PutFileBlobsResult> => {
              const read = readFileBlobs(blobs);
              if ('corrupt' in read) return { kind: 'corrupt', digest: read.corrupt.digest, actual: read.actual };
              if (read.bytes.length !== size) throw new Error(`blobs of ${read.bytes.length} bytes, announced ${size}`);
              objects.set(key, { bytes: read.bytes, metadata: {}, lastModified: new Date() });
              return { kind: 'stored' };
            }),
        }),
    get: (key) =>
      guarded('get', key, async () => {
        const o = objects.get(key);
        if (o === undefined) throw { _tag: 'ObjectNotFound', op: 'get', key } satisfies S3Error;
        const size = self.chunkBytes ?? Math.max(1, o.bytes.length);
        return Readable.from(Array.from({ length: Math.ceil(o.bytes.length / size) }, (_, i) => o.bytes.subarray(i * size, (i + 1) * size)));
      }),
    remove: (key) => guarded('remove', key, async () => void objects.delete(key)),
    list: (prefix, visit: (o: ListedObject) => void | Promise<void>) =>
      guarded('list', prefix, async () => {
        let n = 0;
        for (const key of [...objects.keys()].filter((k) => k.startsWith(prefix)).sort()) {
          const o = objects.get(key);
          if (o === undefined) continue;
          await visit({ key, size: o.bytes.length, lastModified: o.lastModified });
          n++;
        }
        return n;
      }),
  };
  const isS3Error = (e: unknown): e is S3Error => typeof e === 'object' && e !== null && '_tag' in e;
  function guarded<A>(op: StoreOp, key: string, f: () => Promise<A>): TE.TaskEither<S3Error, A> {
    return TE.tryCatch(
      async () => {
        calls.push({ op, key, at: Date.now() });
        await new Promise((r) => setImmediate(r)); // never answer synchronously, like a network
        const injected = self.fault(op, key);
        if (injected !== undefined) throw injected;
        return f();
      },
      (e): S3Error => (isS3Error(e) ? e : { _tag: 'VolumeIOError', op, key, cause: e }),
    );
  }
  return self;
};
