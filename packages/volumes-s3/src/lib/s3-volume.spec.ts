import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { Readable } from 'node:stream';
import * as path from 'node:path';
import { digestShard, VolumeStreamError, type Digest } from '@zxbackup/volume-contract';
import { pipe } from 'fp-ts/function';
import * as TE from 'fp-ts/TaskEither';
import {
  describeVolumeContract,
  expectLeft,
  expectRight,
  mailLikeText,
  pseudoRandomBytes,
  readAll,
  sha256Hex,
  streamOf,
} from '@zxbackup/volume-contract/testing';
import type { S3VolumeConfig } from './config';
import type { S3Error } from './errors';
import { makeEncryptedObjectStore } from './encrypted-object-store';
import { decryptStream, encryptStream, encryptedSize, keyFromBytes } from './encryption';
import { makeMemoryObjectStore, unavailable, type MemoryObjectStore } from './memory-object-store';
import type { ObjectStore } from './object-store';
import { makeS3VolumeWith, type S3Volume, type S3VolumeStatus } from './s3-volume';

const baseConfig = (cacheDir: string): S3VolumeConfig => ({
  endPoint: '127.0.0.1',
  port: 9000,
  useSSL: false,
  accessKey: 'test:tester',
  secretKey: 'very-secret-key',
  region: 'us-east-1',
  bucket: 'unit',
  prefix: 'server1',
  cacheDir,
  retry: { initialDelayMs: 20, maxDelayMs: 160 },
});

const tempDirs: string[] = [];
const freshDir = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-unit-'));
  tempDirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

const keyOf = (d: Digest): string => `server1/items/${digestShard(d)}/${d}`;

/** Every spec below runs twice: over the bare store, and through client-side encryption. */
interface Variant {
  readonly name: string;
  readonly over: (store: MemoryObjectStore) => ObjectStore;
  /** What the store holds for `plain`, and back. */
  readonly seal: (plain: Buffer) => Promise<Buffer>;
  readonly open: (stored: Buffer | undefined) => Promise<Buffer | undefined>;
}
const KEY = (() => {
  const k = keyFromBytes(Buffer.alloc(32, 0x5a));
  if (k._tag === 'Left') throw new Error('bad test key');
  return k.right;
})();
const through = async (stream: NodeJS.ReadWriteStream, bytes: Buffer): Promise<Buffer> => {
  const out = readAll(stream as unknown as Readable);
  stream.end(bytes);
  return out;
};
const VARIANTS: ReadonlyArray<Variant> = [
  { name: 'plain', over: (s) => s, seal: async (b) => b, open: async (b) => b },
  {
    name: 'encrypted',
    over: (s) => makeEncryptedObjectStore(s, KEY),
    seal: (b) => through(encryptStream(KEY), b),
    open: async (b) => (b === undefined ? undefined : through(decryptStream(KEY), b)),
  },
];
const cachePath = (dir: string, d: Digest): string => path.join(dir, 'items', digestShard(d), d);
const exists = (p: string): Promise<boolean> => fsp.access(p).then(
  () => true,
  () => false,
);

for (const variant of VARIANTS) describeVolumeContract<S3Volume>(`s3 volume over an in-memory store (${variant.name})`, (() => {
  const stores = new WeakMap<S3Volume, MemoryObjectStore>();
  return {
    make: async () => {
      const store = makeMemoryObjectStore();
      const volume = await expectRight(makeS3VolumeWith(baseConfig(freshDir()), variant.over(store)));
      stores.set(volume, store);
      return volume;
    },
    corrupt: async (volume, digest) => {
      await expectRight(volume.drain({ timeoutMs: 5000 }));
      const o = stores.get(volume)?.objects.get(keyOf(digest));
      if (o === undefined) throw new Error('blob not in the store after drain');
      o.bytes = Buffer.from(o.bytes);
      o.bytes[7] = (o.bytes[7] ?? 0) ^ 0xff;
    },
  };
})());

describe.each(VARIANTS)('S3 volume write cache and uploader (in-memory store, $name)', (variant) => {
  let dir: string;
  let store: MemoryObjectStore;
  let volume: S3Volume;
  let statuses: S3VolumeStatus[];

  const open = async (config: Partial<S3VolumeConfig> = {}): Promise<S3Volume> => {
    const v = await expectRight(makeS3VolumeWith({ ...baseConfig(dir), ...config }, variant.over(store)));
    v.onStatus((s) => statuses.push(s));
    return v;
  };

  beforeEach(async () => {
    dir = freshDir();
    store = makeMemoryObjectStore();
    statuses = [];
    volume = await open();
  });
  afterEach(async () => {
    await expectRight(volume.close());
  });

  it('a put lands in the cache, drain uploads it with its digest and empties the cache', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined); // hold it in the cache
    const bytes = mailLikeText(50_000, 1);
    const { digest, stored } = await expectRight(volume.put(streamOf(bytes)));
    expect(stored).toBe(true);
    expect(await exists(cachePath(dir, digest))).toBe(true);
    expect(volume.pending()).toEqual({ blobs: 1, bytes: bytes.length });
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const o = store.objects.get(keyOf(digest));
    expect((await variant.open(o?.bytes))?.equals(bytes)).toBe(true);
    expect(o?.metadata['sha256']).toBe(digest);
    expect(await exists(cachePath(dir, digest))).toBe(false);
    expect(volume.pending()).toEqual({ blobs: 0, bytes: 0 });
    expect(volume.status().state).toBe('ok');
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('the store holds the plaintext only without encryption; sizes and digests are the plaintext\'s', async () => {
    const marker = 'ZXB-PLAINTEXT-MARKER-7f3a9c';
    const bytes = Buffer.from(`Subject: ${marker}\r\n\r\n${`${marker} lorem ipsum `.repeat(9000)}`);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const o = store.objects.get(keyOf(digest));
    if (o === undefined) throw new Error('not uploaded');
    expect(o.bytes.includes(marker)).toBe(variant.name === 'plain');
    expect(o.bytes.length).toBe(variant.name === 'plain' ? bytes.length : encryptedSize(bytes.length));
    expect(o.metadata['sha256']).toBe(digest);
    expect(volume.pending().blobs).toBe(0);
    expect((await expectRight(volume.stat(digest))).size).toBe(bytes.length);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('retries an unreachable store with a doubling back-off, and reports it', async () => {
    let lookupFailures = 2;
    let putFailures = 3;
    store.fault = (op) =>
      (op === 'list' || op === 'stat') && lookupFailures-- > 0
        ? unavailable(op)
        : op === 'put' && putFailures-- > 0
          ? unavailable('put')
          : undefined;
    await expectRight(volume.close());
    volume = await open({ retry: { initialDelayMs: 40, maxDelayMs: 1000 } });
    const bytes = pseudoRandomBytes(10_000, 2);
    // The put-path lookups fail too (the listing of a fresh volume, then the HEAD): the put
    // still succeeds into the cache.
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect((await variant.open(store.objects.get(keyOf(digest))?.bytes))?.equals(bytes)).toBe(true);
    const attempts = store.calls.filter((c) => c.op === 'put' && c.key === keyOf(digest)).map((c) => c.at);
    // 3 failed upload attempts, then a success; the confirmed PUT needs no stat after it.
    expect(attempts.length).toBe(4);
    expect(store.calls.filter((c) => c.op === 'stat').length).toBe(1);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
    // Upload attempts 2..4 wait 40, 80, 160 ms (timers may fire a little late, never early).
    expect(gaps[0]).toBeGreaterThanOrEqual(38);
    expect(gaps[1]).toBeGreaterThanOrEqual(78);
    expect(gaps[2]).toBeGreaterThanOrEqual(158);
    const states = statuses.map((s) => s.state);
    expect(states).toContain('unreachable');
    expect(states[states.length - 1]).toBe('ok');
    expect(statuses.find((s) => s.state === 'unreachable')?.lastError?._tag).toBe('VolumeUnavailable');
  });

  it('the back-off is capped at maxDelayMs', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    await expectRight(volume.put(streamOf(mailLikeText(100, 3))));
    await new Promise((r) => setTimeout(r, 900));
    const puts = store.calls.filter((c) => c.op === 'put').map((c) => c.at);
    const gaps = puts.slice(1).map((t, i) => t - (puts[i] ?? 0));
    // 20, 40, 80, 160, 160, ... ms: never more than the cap (plus timer slack).
    expect(puts.length).toBeGreaterThanOrEqual(6);
    expect(Math.max(...gaps)).toBeLessThan(160 + 80);
    expect(gaps.slice(-2).every((g) => g >= 158)).toBe(true);
    expect(volume.status().state).toBe('unreachable');
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
  });

  it('puts keep working while the store is down; everything uploads once it is back', async () => {
    store.fault = (op, key) => unavailable(op, key);
    const contents = Array.from({ length: 10 }, (_, i) => mailLikeText(1000 + i * 700, 10 + i));
    for (const bytes of contents) expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(true);
    expect(volume.pending().blobs).toBe(10);
    expect(volume.status().state).toBe('unreachable');
    // Reads are served from the cache meanwhile.
    const first = contents[0] ?? Buffer.alloc(0);
    expect((await readAll(await expectRight(volume.get(sha256Hex(first))))).equals(first)).toBe(true);
    expectLeft(volume.drain({ timeoutMs: 100 })).then((e) => expect(e._tag).toBe('VolumeUnavailable'));
    await new Promise((r) => setTimeout(r, 150));
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    for (const bytes of contents) expect((await variant.open(store.objects.get(keyOf(sha256Hex(bytes)))?.bytes))?.equals(bytes)).toBe(true);
    expect(volume.pending().blobs).toBe(0);
    expect(volume.status().state).toBe('ok');
  });

  it('an upload that the store does not confirm is retried, and the cache copy kept until it is', async () => {
    const realPut = store.put;
    let lossy = 2;
    // As the minio store answers a PUT whose ETag is not the MD5 of what it sent.
    store.put = (key, body, size, metadata) =>
      lossy-- > 0
        ? pipe(
            realPut(key, body, size, {}),
            TE.flatMap(() => TE.left<S3Error, void>({ _tag: 'VolumeIOError', op: 'put', key, cause: new Error('ETag is not the MD5 sent') })),
          )
        : realPut(key, body, size, metadata);
    const bytes = mailLikeText(4000, 4);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await new Promise((r) => setTimeout(r, 10));
    expect(await exists(cachePath(dir, digest))).toBe(true);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(store.objects.get(keyOf(digest))?.metadata['sha256']).toBe(digest);
    expect(store.calls.filter((c) => c.op === 'put').length).toBe(3);
    expect(statuses.some((s) => s.state === 'degraded' && s.lastError?._tag === 'VolumeIOError')).toBe(true);
    expect(await exists(cachePath(dir, digest))).toBe(false);
  });

  it('after a restart, cached blobs are uploaded; one already in the store is not uploaded again', async () => {
    await expectRight(volume.close());
    const a = mailLikeText(3000, 5);
    const b = pseudoRandomBytes(3000, 6);
    for (const bytes of [a, b]) {
      const p = cachePath(dir, sha256Hex(bytes));
      await fsp.mkdir(path.dirname(p), { recursive: true });
      await fsp.writeFile(p, bytes);
    }
    await fsp.mkdir(path.join(dir, 'tmp'), { recursive: true });
    await fsp.writeFile(path.join(dir, 'tmp', 'leftover-of-a-killed-put'), 'partial');
    store.objects.set(keyOf(sha256Hex(a)), { bytes: await variant.seal(a), metadata: { sha256: sha256Hex(a) }, lastModified: new Date() });
    volume = await open();
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(store.calls.filter((c) => c.op === 'put').map((c) => c.key)).toEqual([keyOf(sha256Hex(b))]);
    expect((await variant.open(store.objects.get(keyOf(sha256Hex(b)))?.bytes))?.equals(b)).toBe(true);
    expect(volume.pending().blobs).toBe(0);
  });

  it('a cached blob damaged by a crash is quarantined, not uploaded, and drain says so', async () => {
    await expectRight(volume.close());
    const bytes = mailLikeText(5000, 7);
    const digest = sha256Hex(bytes);
    const p = cachePath(dir, digest);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, bytes.subarray(0, 1000)); // a short file, as after a power loss
    volume = await open();
    const e = await expectLeft(volume.drain({ timeoutMs: 5000 }));
    expect(e._tag).toBe('BlobCorrupt');
    expect(e.key).toBe(digest);
    expect(store.objects.has(keyOf(digest))).toBe(false);
    expect(await fsp.readdir(path.join(dir, 'corrupt'))).toHaveLength(1);
    expect(await exists(p)).toBe(false);
  });

  it('a put replaces an untrusted cached copy, so a crash-damaged file does not shadow good content', async () => {
    await expectRight(volume.close());
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const bytes = mailLikeText(5000, 8);
    const digest = sha256Hex(bytes);
    const p = cachePath(dir, digest);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, bytes.subarray(0, 10));
    volume = await open();
    await expectRight(volume.put(streamOf(bytes)));
    expect((await fsp.readFile(p)).equals(bytes)).toBe(true);
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect((await variant.open(store.objects.get(keyOf(digest))?.bytes))?.equals(bytes)).toBe(true);
  });

  it('list visits the union of cache and store, each digest once', async () => {
    const inStore = [mailLikeText(100, 20), mailLikeText(200, 21)];
    for (const bytes of inStore) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const inCache = [mailLikeText(300, 22), mailLikeText(400, 23)];
    for (const bytes of inCache) await expectRight(volume.put(streamOf(bytes)));
    // A blob in both places (uploaded, then its cache copy restored as after a crash).
    const both = inStore[0] ?? Buffer.alloc(0);
    const p = cachePath(dir, sha256Hex(both));
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, both);
    await expectRight(volume.close());
    volume = await open();
    // Noise next to the blobs is not a blob.
    store.objects.set('server1/items/ab/not-a-digest', { bytes: Buffer.from('x'), metadata: {}, lastModified: new Date() });
    store.objects.set('server2/items/00/' + '0'.repeat(64), { bytes: Buffer.from('x'), metadata: {}, lastModified: new Date() });
    const seen: Digest[] = [];
    const n = await expectRight(volume.list((d) => void seen.push(d)));
    expect(n).toBe(4);
    expect(new Set(seen)).toEqual(new Set([...inStore, ...inCache].map(sha256Hex)));
    expect(seen.length).toBe(4);
  });

  it('a get from the store verifies the digest', async () => {
    const bytes = pseudoRandomBytes(20_000, 30);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const o = store.objects.get(keyOf(digest));
    if (o === undefined) throw new Error('not uploaded');
    o.bytes = o.bytes.subarray(0, 100);
    const err = await readAll(await expectRight(volume.get(digest))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VolumeStreamError);
    expect((err as VolumeStreamError).volumeError._tag).toBe('BlobCorrupt');
  });

  it('a delete during a pending upload removes the blob everywhere', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const bytes = mailLikeText(2000, 40);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.delete(digest));
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(store.objects.has(keyOf(digest))).toBe(false);
    expect(await expectRight(volume.has(digest))).toBe(false);
  });

  it('store errors on reads keep their tag, and has/get of an unreachable store is VolumeUnavailable', async () => {
    store.fault = (op, key) => unavailable(op, key);
    const missing = sha256Hex(Buffer.from('nope'));
    expect((await expectLeft(volume.has(missing)))._tag).toBe('VolumeUnavailable');
    expect((await expectLeft(volume.get(missing)))._tag).toBe('VolumeUnavailable');
    expect((await expectLeft(volume.list(() => undefined)))._tag).toBe('VolumeUnavailable');
  });

  it('rejects a bad configuration without echoing its values', async () => {
    const bad = { ...baseConfig(dir), port: 'nine thousand', secretKey: 42 } as unknown as S3VolumeConfig;
    const e = await expectLeft(makeS3VolumeWith(bad, variant.over(store)));
    expect(e._tag).toBe('VolumeIOError');
    const text = String((e.cause as Error).message);
    expect(text).toContain('port');
    expect(text).toContain('secretKey');
    expect(text).not.toContain('nine thousand');
    expect(text).not.toContain('42');
    const small = await expectLeft(makeS3VolumeWith({ ...baseConfig(dir), partSize: 1024 }, variant.over(store)));
    expect(String((small.cause as Error).message)).toContain('partSize');
  });
});
