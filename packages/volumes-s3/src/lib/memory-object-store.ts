import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import type { S3Error } from './errors';
import type { ListedObject, ObjectInfo, ObjectStore } from './object-store';

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

export const makeMemoryObjectStore = (): MemoryObjectStore => {
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
    put: (key, body, size, metadata, options) =>
      guarded('put', key, async () => {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c as Buffer));
        const bytes = Buffer.concat(chunks);
        if (bytes.length !== size) throw new Error(`body of ${bytes.length} bytes, announced ${size}`);
        // As S3 does with a Content-MD5 header.
        if (options?.contentMd5 !== undefined && !createHash('md5').update(bytes).digest().equals(options.contentMd5))
          throw Object.assign(new Error('The Content-MD5 you specified did not match what we received.'), { code: 'BadDigest' });
        objects.set(key, { bytes, metadata: { ...metadata }, lastModified: new Date() });
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
