import { randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Transform, type Readable } from 'node:stream';
import * as path from 'node:path';
import { VolumeStreamError, type Digest } from '@zxbackup/volume-contract';
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
import { decryptStream, encryptedSize, keyFromBytes, type EncryptionKey } from './encryption';
import { makeMemoryObjectStore, unavailable, type MemoryObjectStore } from './memory-object-store';
import { recordHeader } from './cache';
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

const KEY = (() => {
  const k = keyFromBytes(Buffer.alloc(32, 0x5a));
  if (k._tag === 'Left') throw new Error('bad test key');
  return k.right;
})();

/** Every spec below runs twice: without and with client-side encryption. */
interface Variant {
  readonly name: string;
  readonly key: EncryptionKey | undefined;
  /** Whether the store reads packs from the spool files (`putFileBlobs`); unsealed volumes use it then. */
  readonly fileBlobs: boolean;
  /** The plaintext of what the store holds for one blob (or one index object). */
  readonly open: (stored: Buffer | undefined) => Promise<Buffer | undefined>;
}
const decrypt = async (bytes: Buffer): Promise<Buffer> => {
  const d = decryptStream(KEY);
  const out = readAll(d as unknown as Readable);
  d.end(bytes);
  return out;
};
const VARIANTS: ReadonlyArray<Variant> = [
  { name: 'plain', key: undefined, fileBlobs: true, open: async (b) => b },
  { name: 'plain, packs through put', key: undefined, fileBlobs: false, open: async (b) => b },
  { name: 'encrypted', key: KEY, fileBlobs: true, open: async (b) => (b === undefined ? undefined : decrypt(b)) },
];
/** Packs of this variant go up from the spool files, not from memory. */
const fromFiles = (v: Variant): boolean => v.key === undefined && v.fileBlobs;
/** Writes a spool file as a crashed run would leave it: `damage` flips a byte, `cut` drops the tail. */
const writeSpool = async (
  dir: string,
  n: number,
  blobs: ReadonlyArray<{ readonly bytes: Buffer; readonly damage?: boolean }>,
  cut = 0,
): Promise<string> => {
  const parts = blobs.flatMap(({ bytes, damage }) => {
    const stored = Buffer.from(bytes);
    if (damage === true) stored[0] = (stored[0] ?? 0) ^ 0xff;
    return [recordHeader(sha256Hex(bytes), bytes.length), stored];
  });
  const all = Buffer.concat(parts);
  const file = path.join(dir, 'spool', `${String(n).padStart(10, '0')}.spool`);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, all.subarray(0, all.length - cut));
  return file;
};
const spoolFiles = async (dir: string): Promise<string[]> => (await fsp.readdir(path.join(dir, 'spool'))).filter((f) => f.endsWith('.spool'));
const packKeys = (store: MemoryObjectStore): string[] => [...store.objects.keys()].filter((k) => k.startsWith('server1/packs/'));
const indexKeys = (store: MemoryObjectStore): string[] => [...store.objects.keys()].filter((k) => k.startsWith('server1/index/'));

/** The stored bytes of one blob, cut out of its pack. */
const storedBlob = async (volume: S3Volume, store: MemoryObjectStore, d: Digest): Promise<Buffer | undefined> => {
  const loc = await expectRight(volume.locate(d));
  const pack = loc && store.objects.get(loc.key);
  return loc && pack && pack.bytes.subarray(loc.offset, loc.offset + loc.length);
};

for (const variant of VARIANTS) describeVolumeContract<S3Volume>(`s3 volume over an in-memory store (${variant.name})`, (() => {
  const stores = new WeakMap<S3Volume, MemoryObjectStore>();
  return {
    make: async () => {
      const store = makeMemoryObjectStore({ fileBlobs: variant.fileBlobs });
      const volume = await expectRight(makeS3VolumeWith(baseConfig(freshDir()), store, variant.key));
      stores.set(volume, store);
      return volume;
    },
    corrupt: async (volume, digest) => {
      await expectRight(volume.drain({ timeoutMs: 5000 }));
      const loc = await expectRight(volume.locate(digest));
      const o = loc && stores.get(volume)?.objects.get(loc.key);
      if (loc === undefined || o === undefined) throw new Error('blob not in the store after drain');
      o.bytes = Buffer.from(o.bytes);
      const at = loc.offset + Math.floor(loc.length / 2);
      o.bytes[at] = (o.bytes[at] ?? 0) ^ 0xff;
    },
  };
})());

describe.each(VARIANTS)('S3 volume write cache, packs and uploader (in-memory store, $name)', (variant) => {
  let dir: string;
  let store: MemoryObjectStore;
  let volume: S3Volume;
  let statuses: S3VolumeStatus[];

  const open = async (config: Partial<S3VolumeConfig> = {}, at = dir): Promise<S3Volume> => {
    const v = await expectRight(makeS3VolumeWith({ ...baseConfig(at), ...config }, store, variant.key));
    v.onStatus((s) => statuses.push(s));
    return v;
  };

  /** GETs of pack objects the volume has made. */
  const packGets = (): number => store.calls.filter((c) => c.op === 'get' && c.key.includes('/packs/')).length;

  /** `contents` in packs of 64 KiB in the store, and the volume opened again on an empty cache (a new machine): every read goes to the store. */
  const inPacksOnNewMachine = async (contents: readonly Buffer[]): Promise<void> => {
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024 });
    for (const bytes of contents) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await expectRight(volume.close());
    await fsp.rm(dir, { recursive: true, force: true });
    volume = await open({ packSize: 64 * 1024 });
  };

  /** The contents' digests in a fixed shuffle: a restore's item ids are hashes, so its list is random to the packs. */
  const shuffledDigests = (contents: readonly Buffer[]): Digest[] =>
    contents
      .map((bytes, i) => ({ bytes, key: (i * 7919) % contents.length }))
      .sort((a, b) => a.key - b.key)
      .map((e) => sha256Hex(e.bytes));

  beforeEach(async () => {
    dir = freshDir();
    store = makeMemoryObjectStore({ fileBlobs: variant.fileBlobs });
    statuses = [];
    volume = await open();
  });
  afterEach(async () => {
    await expectRight(volume.close());
  });

  it('a put lands in the cache; drain uploads it in a pack with its index object and empties the cache', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined); // hold it in the cache
    const bytes = mailLikeText(50_000, 1);
    const { digest, stored } = await expectRight(volume.put(streamOf(bytes)));
    expect(stored).toBe(true);
    expect(await spoolFiles(dir)).toHaveLength(1);
    expect(volume.pending()).toEqual({ blobs: 1, bytes: bytes.length });
    expect(await expectRight(volume.locate(digest))).toBeUndefined();
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(packKeys(store)).toHaveLength(1);
    expect(indexKeys(store)).toHaveLength(1);
    expect((await variant.open(await storedBlob(volume, store, digest)))?.equals(bytes)).toBe(true);
    const description = JSON.parse(String(await variant.open(store.objects.get(indexKeys(store)[0] ?? '')?.bytes))) as { entries: unknown[][] };
    expect(description.entries.map((e) => e[0])).toEqual([digest]);
    expect(await spoolFiles(dir)).toEqual([]); // every blob of it uploaded: removed
    expect(volume.pending()).toEqual({ blobs: 0, bytes: 0 });
    expect(volume.status().state).toBe('ok');
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('many small blobs make few packs; a big one gets a pack of its own', async () => {
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024 });
    const small = Array.from({ length: 40 }, (_, i) => mailLikeText(3000 + i * 100, 100 + i));
    const big = pseudoRandomBytes(40 * 1024, 99);
    for (const bytes of [...small.slice(0, 20), big, ...small.slice(20)]) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const packs = packKeys(store);
    // ~170 KB of small blobs in 64 KiB packs (each closed once full), plus the big one alone.
    expect(packs.length).toBeGreaterThanOrEqual(3);
    expect(packs.length).toBeLessThanOrEqual(6);
    expect(indexKeys(store)).toHaveLength(packs.length);
    const bigAt = await expectRight(volume.locate(sha256Hex(big)));
    expect(bigAt?.offset).toBe(0);
    expect(store.objects.get(bigAt?.key ?? '')?.bytes.length).toBe(bigAt?.length);
    for (const bytes of [...small, big]) expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
    expect(store.calls.filter((c) => c.op === 'put').length).toBe(2 * packs.length);
  });

  it('reads of many blobs of one pack download it once', async () => {
    const contents = Array.from({ length: 30 }, (_, i) => mailLikeText(2000 + i * 50, 200 + i));
    for (const bytes of contents) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(packKeys(store)).toHaveLength(1);
    await expectRight(volume.close());
    await fsp.rm(dir, { recursive: true, force: true }); // an empty cache: every read goes to the store
    volume = await open();
    const bodies = await Promise.all(contents.map(async (b) => readAll(await expectRight(volume.get(sha256Hex(b))))));
    bodies.forEach((b, i) => expect(b.equals(contents[i] ?? Buffer.alloc(0))).toBe(true));
    expect(packGets()).toBe(1);
  });

  it('prefetch downloads the packs a list of blobs needs, ahead of the reads and once each', async () => {
    const contents = Array.from({ length: 40 }, (_, i) => mailLikeText(5000, 900 + i)); // ~200 KB: 3-4 packs
    await inPacksOnNewMachine(contents);
    const packs = packKeys(store).length;
    volume.prefetch?.(contents.map(sha256Hex));
    for (let i = 0; i < 100 && packGets() < packs; i++) await new Promise((r) => setTimeout(r, 10));
    expect(packGets()).toBe(packs);
    await new Promise((r) => setTimeout(r, 20)); // the downloads land in the read cache
    for (const bytes of contents) expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
    expect(packGets()).toBe(packs);
  });

  it('warmUp opens the first packs of a list before its prefetch, which then streams them without a second GET', async () => {
    const contents = Array.from({ length: 48 }, (_, i) => mailLikeText(4000 + i * 50, 1500 + i)); // ~4 packs
    await inPacksOnNewMachine(contents);
    const digests = shuffledDigests(contents);
    const packOf = async (d: Digest): Promise<string> => ((await expectRight(volume.locate(d))) ?? { key: '' }).key;
    // The packs of the list's first blobs, in the order the list first needs them.
    const firstPacks: string[] = [];
    for (const d of digests.slice(0, 16)) {
      const key = await packOf(d);
      if (!firstPacks.includes(key)) firstPacks.push(key);
    }
    const getsOf = (key: string): number => store.calls.filter((c) => c.op === 'get' && c.key === key).length;
    volume.warmUp?.(digests.slice(0, 16));
    const opened = firstPacks.slice(0, 3);
    for (let i = 0; i < 100 && packGets() < opened.length; i++) await new Promise((r) => setTimeout(r, 5));
    expect(opened.map(getsOf)).toEqual(opened.map(() => 1)); // opened ahead, the first three only
    expect(packGets()).toBe(opened.length);
    const order = (await volume.readOrder?.(digests)) ?? [];
    const ordered = order.map((i) => digests[i] as Digest);
    volume.prefetch?.(ordered);
    const read = await Promise.all(ordered.map(async (d) => readAll(await expectRight(volume.get(d)))));
    read.forEach((bytes, k) => expect(sha256Hex(bytes)).toBe(ordered[k]));
    const packs = new Set(await Promise.all(digests.map(packOf)));
    expect(packGets()).toBe(packs.size); // each pack once: the ones opened ahead were streamed by the prefetch
  });

  it('readOrder puts the blobs of each pack together, by offset; announced reads take each blob out of its pack stream, also across the chunks of a body', async () => {
    const contents = Array.from({ length: 48 }, (_, i) => mailLikeText(3000 + i * 97, 1100 + i)); // ~4 packs
    await inPacksOnNewMachine(contents);
    store.chunkBytes = 1000; // a blob spans several chunks, a chunk ends inside blobs
    // Shuffled: the volume's order groups them again.
    const digests = shuffledDigests(contents);
    const order = (await volume.readOrder?.(digests)) ?? [];
    expect([...order].sort((a, b) => a - b)).toEqual(digests.map((_, i) => i));
    const places = await Promise.all(order.map(async (i) => (await expectRight(volume.locate(digests[i] as Digest))) ?? { key: '', offset: -1, length: 0 }));
    const packsInOrder = places.map((p) => p.key).filter((k, i, all) => i === 0 || all[i - 1] !== k);
    expect(new Set(packsInOrder).size).toBe(packsInOrder.length); // each pack's blobs together
    for (let i = 1; i < places.length; i++) if (places[i]?.key === places[i - 1]?.key) expect(places[i]?.offset).toBeGreaterThan(places[i - 1]?.offset ?? 0);
    const ordered = order.map((i) => digests[i] as Digest);
    volume.prefetch?.(ordered);
    for (let i = 0; i < 100 && packGets() === 0; i++) await new Promise((r) => setTimeout(r, 5));
    // Read at once, while the packs stream: each read waits for its blob or finds it taken out.
    const read = await Promise.all(ordered.map(async (d) => readAll(await expectRight(volume.get(d)))));
    read.forEach((bytes, k) => expect(sha256Hex(bytes)).toBe(ordered[k]));
    expect(packGets()).toBe(packsInOrder.length); // the streams only: no read downloaded a pack of its own
  });

  it('announced reads whose pack stream fails read their blob the other way, without waiting forever', async () => {
    const contents = Array.from({ length: 24 }, (_, i) => mailLikeText(4000, 1300 + i));
    await inPacksOnNewMachine(contents);
    store.chunkBytes = 1000;
    // Every pack's first GET (the prefetch's stream) breaks off after its first chunk, a while
    // later: the reads are waiting for their blobs by then.
    const started = new Set<string>();
    const realGet = store.get.bind(store);
    store.get = (key) =>
      key.includes('/packs/') && !started.has(key)
        ? pipe(
            realGet(key),
            TE.map((body) => {
              started.add(key);
              let n = 0;
              return body.pipe(
                new Transform({
                  transform(chunk: Buffer, _enc, done) {
                    if (++n === 1) done(null, chunk);
                    else setTimeout(() => done(new Error('connection reset')), 100);
                  },
                }),
              );
            }),
          )
        : realGet(key);
    const digests = contents.map(sha256Hex);
    volume.prefetch?.(digests);
    for (let i = 0; i < 100 && started.size === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const read = await Promise.all(digests.map(async (d) => readAll(await expectRight(volume.get(d)))));
    read.forEach((bytes, k) => expect(bytes.equals(contents[k] ?? Buffer.alloc(0))).toBe(true));
    expect(started.size).toBe(packKeys(store).length);
  });

  it('the read cache keeps at most readCacheBytes of packs, and reads on after evicting', async () => {
    const contents = Array.from({ length: 60 }, (_, i) => mailLikeText(5000, 800 + i)); // ~300 KB: 4-5 packs
    const readAllTwice = async (): Promise<number[]> => {
      const gets: number[] = [];
      for (const _round of [1, 2]) {
        const before = packGets();
        for (const bytes of contents) expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
        gets.push(packGets() - before);
      }
      return gets;
    };
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024 });
    for (const bytes of contents) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const packs = packKeys(store).length;
    expect(packs).toBeGreaterThanOrEqual(4);
    await expectRight(volume.close());
    await fsp.rm(path.join(dir, 'spool'), { recursive: true, force: true }); // every read from the store
    // Room for all: each pack is downloaded once, in the first round.
    volume = await open({ packSize: 64 * 1024 });
    expect(await readAllTwice()).toEqual([packs, 0]);
    await expectRight(volume.close());
    // Room for two packs: the second round downloads again the packs the first one evicted.
    volume = await open({ packSize: 64 * 1024, readCacheBytes: 160 * 1024 });
    const [first, second] = await readAllTwice();
    expect(first).toBe(packs);
    expect(second).toBeGreaterThanOrEqual(packs - 2);
  });

  it('the store holds the plaintext only without encryption; sizes and digests are the plaintext\'s', async () => {
    const marker = 'ZXB-PLAINTEXT-MARKER-7f3a9c';
    const bytes = Buffer.from(`Subject: ${marker}\r\n\r\n${`${marker} lorem ipsum `.repeat(9000)}`);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const objects = [...store.objects.values()];
    expect(objects.some((o) => o.bytes.includes(marker))).toBe(variant.key === undefined);
    // Without encryption the index names the digest; with it, no key nor byte of the bucket does.
    expect(objects.some((o) => o.bytes.includes(digest)) || [...store.objects.keys()].some((k) => k.includes(digest))).toBe(variant.key === undefined);
    const loc = await expectRight(volume.locate(digest));
    expect(loc?.length).toBe(variant.key === undefined ? bytes.length : encryptedSize(bytes.length));
    const st = await expectRight(volume.stat(digest));
    expect(st.size).toBe(bytes.length);
    expect(st.storedSize).toBe(loc?.length);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('retries an unreachable store with a doubling back-off, and reports it', async () => {
    let listFailures = 2;
    let putFailures = 3;
    store.fault = (op) =>
      op === 'list' && listFailures-- > 0 ? unavailable(op) : op === 'put' && putFailures-- > 0 ? unavailable('put') : undefined;
    await expectRight(volume.close());
    volume = await open({ retry: { initialDelayMs: 40, maxDelayMs: 1000 } });
    const bytes = pseudoRandomBytes(10_000, 2);
    // The put-path lookup needs the bucket's index, whose listing fails: the put still succeeds into the cache.
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect((await variant.open(await storedBlob(volume, store, digest)))?.equals(bytes)).toBe(true);
    const attempts = store.calls.filter((c) => c.op === 'put' && c.key.includes('/packs/')).map((c) => c.at);
    // 3 failed pack uploads, then a success.
    expect(attempts.length).toBe(4);
    const gaps = attempts.slice(1).map((t, i) => t - (attempts[i] ?? 0));
    // Attempts 2..4 wait at least 40, 80, 160 ms (timers may fire a little late, never early).
    expect(gaps[0]).toBeGreaterThanOrEqual(38);
    expect(gaps[1]).toBeGreaterThanOrEqual(78);
    expect(gaps[2]).toBeGreaterThanOrEqual(158);
    // The failed attempts left no pack behind.
    expect(packKeys(store)).toHaveLength(1);
    const states = statuses.map((s) => s.state);
    expect(states).toContain('unreachable');
    expect(states[states.length - 1]).toBe('ok');
    expect(statuses.find((s) => s.state === 'unreachable')?.lastError?._tag).toBe('VolumeUnavailable');
  });

  it('the back-off is capped at maxDelayMs', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    await expectRight(volume.put(streamOf(mailLikeText(100, 3))));
    await new Promise((r) => setTimeout(r, 1200));
    const puts = store.calls.filter((c) => c.op === 'put').map((c) => c.at);
    const gaps = puts.slice(1).map((t, i) => t - (puts[i] ?? 0));
    // 20, 40, 80, 160, 160, ... ms: never much more than the cap.
    expect(puts.length).toBeGreaterThanOrEqual(5);
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
    await new Promise((r) => setTimeout(r, 400)); // past the pack idle time: an upload was tried
    expect(volume.status().state).toBe('unreachable');
    // Reads are served from the cache meanwhile.
    const first = contents[0] ?? Buffer.alloc(0);
    expect((await readAll(await expectRight(volume.get(sha256Hex(first))))).equals(first)).toBe(true);
    expect((await expectLeft(volume.drain({ timeoutMs: 100 })))._tag).toBe('VolumeUnavailable');
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    for (const bytes of contents) expect((await variant.open(await storedBlob(volume, store, sha256Hex(bytes))))?.equals(bytes)).toBe(true);
    expect(volume.pending().blobs).toBe(0);
    expect(volume.status().state).toBe('ok');
  });

  it('an index object the store does not confirm is looked up before anything is sent again', async () => {
    const realPut = store.put;
    let lossy = 1;
    // As the minio store answers a PUT whose ETag is not the MD5 of what it sent.
    store.put = (key, body, size, metadata) =>
      key.includes('/index/') && lossy-- > 0
        ? pipe(
            realPut(key, body, size, metadata),
            TE.flatMap(() => TE.left<S3Error, void>({ _tag: 'VolumeIOError', op: 'put', key, cause: new Error('ETag is not the MD5 sent') })),
          )
        : realPut(key, body, size, metadata);
    const bytes = mailLikeText(4000, 4);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    // The unconfirmed index object was written all the same: the pending record finds it and
    // keeps that pack, so the blob is uploaded exactly once.
    expect(packKeys(store)).toHaveLength(1);
    expect(indexKeys(store)).toHaveLength(1);
    expect(statuses.some((s) => s.state === 'degraded' && s.lastError?._tag === 'VolumeIOError')).toBe(true);
    expect(volume.pending().blobs).toBe(0);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('a pack whose index object never made it is removed, and its blobs go up again', async () => {
    let failIndex = 1;
    store.fault = (op, key) => (op === 'put' && key.includes('/index/') && failIndex-- > 0 ? unavailable(op, key) : undefined);
    const bytes = mailLikeText(6000, 5);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const packPuts = store.calls.filter((c) => c.op === 'put' && c.key.includes('/packs/')).map((c) => c.key);
    expect(packPuts).toHaveLength(2);
    expect(store.calls.some((c) => c.op === 'remove' && c.key === packPuts[0])).toBe(true);
    expect(packKeys(store)).toEqual([packPuts[1]]);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('after a restart, cached blobs are uploaded; one already in a pack is not uploaded again', async () => {
    const a = mailLikeText(3000, 5);
    await expectRight(volume.put(streamOf(a)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await expectRight(volume.close());
    const b = pseudoRandomBytes(3000, 6);
    // As after a crash between recording a pack and emptying the cache: a is in both places;
    // and a streamed put killed mid-way left its part file.
    await writeSpool(dir, 7, [{ bytes: a }, { bytes: b }]);
    await fsp.writeFile(path.join(dir, 'spool', '0000000008.spool.part'), 'partial');
    const before = store.calls.length;
    volume = await open();
    expect(volume.pending().blobs).toBe(2);
    expect(await fsp.readdir(path.join(dir, 'spool'))).toEqual(['0000000007.spool']);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const packPuts = store.calls.slice(before).filter((c) => c.op === 'put' && c.key.includes('/packs/'));
    expect(packPuts).toHaveLength(1);
    const loc = await expectRight(volume.locate(sha256Hex(b)));
    expect(loc?.key).toBe(packPuts[0]?.key);
    expect(store.objects.get(loc?.key ?? '')?.bytes.length).toBe(loc?.length); // b alone in it
    expect(volume.pending().blobs).toBe(0);
    expect(await spoolFiles(dir)).toEqual([]);
  });

  it('a spool file changed on disk after the put: what is uploaded is what was put, or nothing', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const good = mailLikeText(3000, 13);
    const bytes = mailLikeText(6000, 14);
    await expectRight(volume.put(streamOf(good)));
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    const [name] = await spoolFiles(dir);
    const file = path.join(dir, 'spool', name ?? '');
    const onDisk = await fsp.readFile(file);
    onDisk[onDisk.length - 10] = (onDisk[onDisk.length - 10] ?? 0) ^ 0x55;
    await fsp.writeFile(file, onDisk);
    store.fault = () => undefined;
    const before = store.calls.length;
    const packPuts = (): number => store.calls.slice(before).filter((c) => c.op === 'put' && c.key.includes('/packs/')).length;
    if (fromFiles(variant)) {
      // Read from the spool file, each blob checked before anything is sent: the damaged one
      // stays out of the pack, drain names it, and its spool file is kept aside.
      const e = await expectLeft(volume.drain({ timeoutMs: 5000 }));
      expect(e).toMatchObject({ _tag: 'BlobCorrupt', key: digest });
      expect(volume.status().lastError?.key).toBe(digest);
      expect(await expectRight(volume.has(digest))).toBe(false);
      expect((await readAll(await expectRight(volume.get(sha256Hex(good))))).equals(good)).toBe(true);
      // One pack, the good blob alone in it (the attempt that found the damage sent nothing).
      expect(packKeys(store).map((k) => store.objects.get(k)?.bytes.length)).toEqual([good.length]);
      expect(await spoolFiles(dir)).toEqual([]);
      expect(await fsp.readdir(path.join(dir, 'corrupt'))).toEqual([expect.stringMatching(new RegExp(`^${name}\\.`))]);
      // Put again, it is cached and uploaded afresh.
      expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(true);
      await expectRight(volume.drain({ timeoutMs: 5000 }));
    } else {
      // Sent from the copy kept in memory (and hashed as sent): the disk does not matter.
      await expectRight(volume.drain({ timeoutMs: 5000 }));
      expect(packPuts()).toBe(1);
    }
    expect((await variant.open(await storedBlob(volume, store, digest)))?.equals(bytes)).toBe(true);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('a record cut short by a crash ends its spool file; the records before it are uploaded', async () => {
    await expectRight(volume.close());
    const whole = mailLikeText(4000, 9);
    const torn = mailLikeText(4000, 10);
    await writeSpool(dir, 0, [{ bytes: whole }, { bytes: torn }], 1000);
    volume = await open();
    expect(volume.pending()).toEqual({ blobs: 1, bytes: whole.length });
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect((await readAll(await expectRight(volume.get(sha256Hex(whole))))).equals(whole)).toBe(true);
    expect(await expectRight(volume.has(sha256Hex(torn)))).toBe(false);
  });

  it('a cached blob damaged on disk is not uploaded, drain says so, and its spool file is kept aside', async () => {
    await expectRight(volume.close());
    const good = mailLikeText(3000, 11);
    const bytes = mailLikeText(5000, 7);
    const digest = sha256Hex(bytes);
    await writeSpool(dir, 3, [{ bytes: good }, { bytes, damage: true }]);
    volume = await open();
    const e = await expectLeft(volume.drain({ timeoutMs: 5000 }));
    expect(e._tag).toBe('BlobCorrupt');
    expect(e.key).toBe(digest);
    expect(volume.status().lastError?.key).toBe(digest);
    expect(await expectRight(volume.has(digest))).toBe(false);
    expect((await readAll(await expectRight(volume.get(sha256Hex(good))))).equals(good)).toBe(true);
    expect(await spoolFiles(dir)).toEqual([]);
    expect(await fsp.readdir(path.join(dir, 'corrupt'))).toEqual([expect.stringMatching(/^0000000003\.spool\./)]);
    // The same content put again is cached and uploaded afresh.
    expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(true);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect((await variant.open(await storedBlob(volume, store, digest)))?.equals(bytes)).toBe(true);
  });

  it('a large blob streams into a spool file of its own, and reads back from it and from its pack', async () => {
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024 });
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const big = pseudoRandomBytes(5 * 1024 * 1024 + 17, 12);
    const { digest, stored } = await expectRight(volume.put(streamOf(big, 100_000)));
    expect(stored).toBe(true);
    expect((await expectRight(volume.put(streamOf(big, 100_000)))).stored).toBe(false);
    expect(await spoolFiles(dir)).toHaveLength(1);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(big)).toBe(true);
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    expect(await spoolFiles(dir)).toEqual([]);
    expect((await expectRight(volume.locate(digest)))?.offset).toBe(0);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(big)).toBe(true);
    const other = pseudoRandomBytes(5 * 1024 * 1024, 13);
    expect((await expectLeft(volume.put(streamOf(other, 100_000), { expectedDigest: digest })))._tag).toBe('BlobCorrupt');
    expect(await fsp.readdir(path.join(dir, 'spool'))).toEqual([]);
  });

  it('list visits the union of cache and packs, each digest once, and not the blobs of a pack gone from the store', async () => {
    const inStore = [mailLikeText(100, 20), mailLikeText(200, 21)];
    for (const bytes of inStore) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const lost = mailLikeText(150, 24);
    await expectRight(volume.put(streamOf(lost)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const inCache = [mailLikeText(300, 22), mailLikeText(400, 23)];
    for (const bytes of inCache) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.close());
    // A blob in both places (uploaded, then its cache copy restored as after a crash).
    await writeSpool(dir, 50, [{ bytes: inStore[0] ?? Buffer.alloc(0) }]);
    volume = await open();
    // Someone removed the pack of `lost` behind our back; noise next to the packs is not a pack.
    store.objects.delete((await expectRight(volume.locate(sha256Hex(lost))))?.key ?? '');
    store.objects.set('server1/packs/ab/not-a-pack', { bytes: Buffer.from('x'), metadata: {}, lastModified: new Date() });
    const seen: Digest[] = [];
    const n = await expectRight(volume.list((d) => void seen.push(d)));
    expect(n).toBe(4);
    expect(new Set(seen)).toEqual(new Set([...inStore, ...inCache].map(sha256Hex)));
    expect(seen.length).toBe(4);
  });

  it('a get from the store verifies the digest, and a damaged pack is fetched again on the next read', async () => {
    const bytes = pseudoRandomBytes(20_000, 30);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const loc = await expectRight(volume.locate(digest));
    const o = store.objects.get(loc?.key ?? '');
    if (o === undefined || loc === undefined) throw new Error('not uploaded');
    const good = o.bytes;
    o.bytes = Buffer.from(good);
    o.bytes[loc.offset + 100] = (o.bytes[loc.offset + 100] ?? 0) ^ 1;
    const err = await readAll(await expectRight(volume.get(digest))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VolumeStreamError);
    expect((err as VolumeStreamError).volumeError._tag).toBe('BlobCorrupt');
    o.bytes = good; // a transfer error, say: the store's copy is fine
    await new Promise((r) => setTimeout(r, 20));
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
  });

  it('a delete during a pending upload removes the blob everywhere', async () => {
    store.fault = (op) => (op === 'put' ? unavailable('put') : undefined);
    const bytes = mailLikeText(2000, 40);
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.delete(digest));
    store.fault = () => undefined;
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(packKeys(store)).toEqual([]);
    expect(await expectRight(volume.has(digest))).toBe(false);
  });

  it('deletes shrink packs: an index object is rewritten, a mostly dead pack repacked, an empty one removed', async () => {
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024 });
    const group = (seed: number): Buffer[] => Array.from({ length: 8 }, (_, i) => mailLikeText(4000, seed + i));
    const keep = group(300);
    const halve = group(400);
    const empty = group(500);
    const packOf = async (blobs: Buffer[]): Promise<string> => {
      for (const b of blobs) await expectRight(volume.put(streamOf(b)));
      await expectRight(volume.drain({ timeoutMs: 5000 }));
      const keys = new Set(await Promise.all(blobs.map(async (b) => (await expectRight(volume.locate(sha256Hex(b))))?.key)));
      expect(keys.size).toBe(1);
      return [...keys][0] ?? '';
    };
    const [keepPack, halvePack, emptyPack] = [await packOf(keep), await packOf(halve), await packOf(empty)];
    const del = async (blobs: Buffer[]): Promise<void> => {
      for (const b of blobs) await expectRight(volume.delete(sha256Hex(b)));
    };
    await del(keep.slice(0, 2)); // 6 of 8 live: rewrite the index object
    await del(halve.slice(0, 6)); // 2 of 8 live: repack
    await del(empty); // none live: remove
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    const idOf = (k: string): string => k.slice(k.lastIndexOf('/') + 1);
    expect(store.objects.has(keepPack)).toBe(true);
    const rewritten = JSON.parse(String(await variant.open(store.objects.get(`server1/index/${idOf(keepPack)}`)?.bytes))) as { entries: string[][] };
    expect(new Set(rewritten.entries.map((e) => e[0]))).toEqual(new Set(keep.slice(2).map(sha256Hex)));
    for (const gone of [halvePack, emptyPack]) {
      expect(store.objects.has(gone)).toBe(false);
      expect(store.objects.has(`server1/index/${idOf(gone)}`)).toBe(false);
    }
    for (const b of [...keep.slice(2), ...halve.slice(6)]) expect((await readAll(await expectRight(volume.get(sha256Hex(b))))).equals(b)).toBe(true);
    for (const b of [...keep.slice(0, 2), ...halve.slice(0, 6), ...empty]) {
      expect(await expectRight(volume.has(sha256Hex(b)))).toBe(false);
      expect((await expectLeft(volume.get(sha256Hex(b))))._tag).toBe('BlobNotFound');
    }
    expect(packKeys(store)).toHaveLength(2); // keep's, and the new one of halve's survivors
    expect(indexKeys(store)).toHaveLength(2);
  });

  it('a read whose prefetch hint went stale (its pack repacked since) finds the blob through the index', async () => {
    await expectRight(volume.close());
    volume = await open({ packSize: 64 * 1024, readCacheBytes: 1024 }); // keeps no pack: every read goes to the store
    // 9 MiB of other blobs fill the spool file that holds the blobs put before, which is then
    // released once all is uploaded: their reads (and the prefetch) go to the store.
    const spoolAway = async (): Promise<void> => {
      for (let i = 0; i < 580; i++) await expectRight(volume.put(streamOf(randomBytes(16 * 1024))));
      await expectRight(volume.drain({ timeoutMs: 5000 }));
    };
    const blobs = Array.from({ length: 8 }, (_, i) => mailLikeText(4000, 700 + i));
    for (const b of blobs) await expectRight(volume.put(streamOf(b)));
    await expectRight(volume.drain({ timeoutMs: 5000 })); // a pack of their own
    await spoolAway();
    const oldPack = (await expectRight(volume.locate(sha256Hex(blobs[7] ?? Buffer.alloc(0)))))?.key ?? '';
    volume.prefetch?.(blobs.map(sha256Hex));
    const oldPackGets = (): number => store.calls.filter((c) => c.op === 'get' && c.key === oldPack).length;
    for (let i = 0; i < 100 && oldPackGets() === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(oldPackGets()).toBe(1); // prefetched (and, with this cache, not kept)
    for (const b of blobs.slice(0, 6)) await expectRight(volume.delete(sha256Hex(b))); // 2 of 8 live: repacked
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await spoolAway();
    expect(store.objects.has(oldPack)).toBe(false);
    const getsBefore = oldPackGets();
    for (const b of blobs.slice(6)) expect((await readAll(await expectRight(volume.get(sha256Hex(b))))).equals(b)).toBe(true);
    // The hints named a pack the index no longer has: each read asked the index again, without
    // a request for the removed pack.
    expect(oldPackGets()).toBe(getsBefore);
  }, 30_000); // ~2 s alone: 5 s is too short on a busy 2-core CI machine

  it('a new machine (empty cache directory) finds every blob through the bucket\'s index objects', async () => {
    const contents = Array.from({ length: 12 }, (_, i) => mailLikeText(1500 + i * 300, 600 + i));
    for (const bytes of contents) await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await expectRight(volume.delete(sha256Hex(contents[0] ?? Buffer.alloc(0))));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await expectRight(volume.close());
    volume = await open({}, freshDir());
    const live = contents.slice(1);
    for (const bytes of live) {
      expect(await expectRight(volume.has(sha256Hex(bytes)))).toBe(true);
      expect((await readAll(await expectRight(volume.get(sha256Hex(bytes))))).equals(bytes)).toBe(true);
    }
    expect(await expectRight(volume.has(sha256Hex(contents[0] ?? Buffer.alloc(0))))).toBe(false);
    const seen: Digest[] = [];
    await expectRight(volume.list((d) => void seen.push(d)));
    expect(new Set(seen)).toEqual(new Set(live.map(sha256Hex)));
    // Content already in the bucket is not uploaded again.
    const puts = store.calls.filter((c) => c.op === 'put').length;
    expect((await expectRight(volume.put(streamOf(live[3] ?? Buffer.alloc(0))))).stored).toBe(false);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(store.calls.filter((c) => c.op === 'put').length).toBe(puts);
  });

  it('a cache directory of another volume does not lend it its index', async () => {
    const bytes = mailLikeText(2500, 700);
    await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    await expectRight(volume.close());
    volume = await open({ prefix: 'server2' });
    expect(await expectRight(volume.has(sha256Hex(bytes)))).toBe(false);
    expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(true);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect([...store.objects.keys()].filter((k) => k.startsWith('server2/packs/'))).toHaveLength(1);
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
    const e = await expectLeft(makeS3VolumeWith(bad, store, variant.key));
    expect(e._tag).toBe('VolumeIOError');
    const text = String((e.cause as Error).message);
    expect(text).toContain('port');
    expect(text).toContain('secretKey');
    expect(text).not.toContain('nine thousand');
    expect(text).not.toContain('42');
    const small = await expectLeft(makeS3VolumeWith({ ...baseConfig(dir), partSize: 1024 }, store, variant.key));
    expect(String((small.cause as Error).message)).toContain('partSize');
    const tiny = await expectLeft(makeS3VolumeWith({ ...baseConfig(dir), packSize: 1024 }, store, variant.key));
    expect(String((tiny.cause as Error).message)).toContain('packSize');
  });
});
