// Against the real S3 server: eval "$(tools/services/s3-server.sh start)" first.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { Client } from 'minio';
import type { Digest } from '@zxbackup/volume-contract';
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
import { ensureBucket, listBuckets } from './archives';
import type { S3StoreConfig, S3VolumeConfig } from './config';
import type { S3Error } from './errors';
import { makeMinioStore } from './minio-store';
import type { ObjectStore } from './object-store';
import { makeS3Volume, makeS3VolumeWith, type S3Volume } from './s3-volume';
import { corruptStoredBlob, storedBlob, testServer } from './test-server.spec-helper';

const MiB = 1024 * 1024;
const store: S3StoreConfig = testServer('zxb-volumes-s3-int', '');
const run = `run-${Date.now()}-${randomBytes(3).toString('hex')}`;
const client = new Client({ ...store, pathStyle: true });
const tempDirs: string[] = [];
const freshDir = (): string => {
  const dir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-int-'));
  tempDirs.push(dir);
  return dir;
};
let prefixes = 0;
const freshPrefix = (): string => `${run}/p${++prefixes}/`;
const configFor = (prefix: string, cacheDir = freshDir(), more: Partial<S3VolumeConfig> = {}): S3VolumeConfig => ({
  ...store,
  prefix,
  cacheDir,
  retry: { initialDelayMs: 100, maxDelayMs: 1000 },
  ...more,
});
const open = (c: S3VolumeConfig): Promise<S3Volume> => expectRight(makeS3Volume(c));

const stat = (key: string) => client.statObject(store.bucket, key);
const listKeys = async (prefix: string): Promise<string[]> => {
  const keys: string[] = [];
  for await (const o of client.listObjectsV2(store.bucket, prefix, true)) if (o.name) keys.push(o.name);
  return keys.sort();
};

beforeAll(async () => {
  const reachable = await listBuckets(store)();
  if (E.isLeft(reachable))
    throw new Error(
      `the S3 server at ${store.endPoint}:${store.port} is not usable (${reachable.left._tag}: ${String(reachable.left.cause)}). ` +
        'Start it first: eval "$(tools/services/s3-server.sh start)"',
    );
  const made = await ensureBucket(store)();
  if (E.isLeft(made)) throw new Error(`cannot create bucket ${store.bucket}: ${String(made.left.cause)}`);
});

afterAll(async () => {
  const keys = await listKeys(`${run}/`);
  if (keys.length > 0) await client.removeObjects(store.bucket, keys);
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

describeVolumeContract<S3Volume>('s3 volume on the S3 server', {
  timeoutMs: 60_000,
  make: () => open(configFor(freshPrefix())),
  corrupt: async (volume, digest) => {
    await expectRight(volume.drain({ timeoutMs: 30_000 }));
    expect(volume.pending().blobs).toBe(0); // nothing left in the cache to shadow the store
    // Same size, same index: only the content check of `get` can notice.
    await corruptStoredBlob(client, store.bucket, volume, digest);
  },
});

describe('S3 volume with its write cache, on the S3 server', () => {
  it('put → in the cache → drain → in the bucket with its digest, cache empty', async () => {
    const cacheDir = freshDir();
    const prefix = freshPrefix();
    const volume = await open(configFor(prefix, cacheDir));
    const bytes = mailLikeText(300_000, 1);
    const { digest, stored } = await expectRight(volume.put(streamOf(bytes), { size: bytes.length }));
    expect(stored).toBe(true);
    // Checked synchronously: an upload needs several round trips before it can drop the file.
    const spool = (): string[] => readdirSync(path.join(cacheDir, 'spool'));
    expect(spool()).toHaveLength(1);
    await expectRight(volume.flush());
    await expectRight(volume.drain({ timeoutMs: 30_000 }));
    expect(spool()).toEqual([]);
    expect(volume.pending()).toEqual({ blobs: 0, bytes: 0 });
    const inPack = await storedBlob(client, store.bucket, volume, digest);
    expect(inPack.key.startsWith(`${prefix}packs/`)).toBe(true);
    expect(inPack.bytes.equals(bytes)).toBe(true);
    expect((await listKeys(`${prefix}index/`)).length).toBe(1);
    // Known to the store now: a second put stores nothing.
    expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(false);
    expect(volume.pending().blobs).toBe(0);
    await expectRight(volume.close());
  });

  it('a spool file damaged after the put: the upload worker leaves that blob out of its pack, drain names it', async () => {
    const cacheDir = freshDir();
    const prefix = freshPrefix();
    const volume = await open(configFor(prefix, cacheDir));
    const good = mailLikeText(20_000, 21);
    const bad = mailLikeText(30_000, 22);
    await expectRight(volume.put(streamOf(good)));
    const { digest } = await expectRight(volume.put(streamOf(bad)));
    // At once (a pack waits 250 ms for more blobs): one byte of the second record flipped on disk.
    const [name] = readdirSync(path.join(cacheDir, 'spool'));
    const file = path.join(cacheDir, 'spool', name ?? '');
    const onDisk = readFileSync(file);
    onDisk[onDisk.length - 100] = (onDisk[onDisk.length - 100] ?? 0) ^ 0x40;
    writeFileSync(file, onDisk);
    expect(await expectLeft(volume.drain({ timeoutMs: 30_000 }))).toMatchObject({ _tag: 'BlobCorrupt', key: digest });
    expect(await expectRight(volume.has(digest))).toBe(false);
    const inPack = await storedBlob(client, store.bucket, volume, sha256Hex(good));
    expect(inPack.bytes.equals(good)).toBe(true);
    expect((await stat(inPack.key)).size).toBe(good.length); // the good blob alone in its pack
    expect(readdirSync(path.join(cacheDir, 'corrupt'))).toEqual([expect.stringMatching(new RegExp(`^${name}\\.`))]);
    await expectRight(volume.close());
  });

  it('a new instance with an empty cache reads everything back from the bucket', async () => {
    const prefix = freshPrefix();
    const writer = await open(configFor(prefix));
    const contents = Array.from({ length: 25 }, (_, i) => (i % 3 === 0 ? pseudoRandomBytes(5000 + i * 3000, i) : mailLikeText(100 + i * 4000, i)));
    for (const bytes of contents) await expectRight(writer.put(streamOf(bytes)));
    await expectRight(writer.drain({ timeoutMs: 60_000 }));
    await expectRight(writer.close());

    const reader = await open(configFor(prefix, freshDir()));
    const seen: Digest[] = [];
    expect(await expectRight(reader.list((d) => void seen.push(d)))).toBe(contents.length);
    expect(new Set(seen)).toEqual(new Set(contents.map(sha256Hex)));
    for (const bytes of contents) {
      const d = sha256Hex(bytes);
      expect(await expectRight(reader.has(d))).toBe(true);
      expect((await expectRight(reader.stat(d))).size).toBe(bytes.length);
      expect((await readAll(await expectRight(reader.get(d)))).equals(bytes)).toBe(true);
    }
    await expectRight(reader.close());
  });

  it('a restore into files: each announced pack is downloaded once, on the download worker, which writes every file', async () => {
    const prefix = freshPrefix();
    const packSize = 64 * 1024;
    const writer = await open(configFor(prefix, freshDir(), { packSize }));
    const contents = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? pseudoRandomBytes(2000 + i * 700, 300 + i) : mailLikeText(1500 + i * 900, 300 + i)));
    for (const bytes of contents) await expectRight(writer.put(streamOf(bytes)));
    await expectRight(writer.drain({ timeoutMs: 60_000 }));
    await expectRight(writer.close());

    // A new machine, whose store counts what the volume asks of it.
    const config = configFor(prefix, freshDir(), { packSize });
    const minio = makeMinioStore(config, { uploadTimeoutMs: () => 60_000 });
    const asked: string[] = [];
    const counted: ObjectStore = {
      ...minio,
      get: (key) => (asked.push(`get ${key}`), minio.get(key)),
      getOffThread: (key) => (asked.push(`getOffThread ${key}`), (minio.getOffThread as NonNullable<ObjectStore['getOffThread']>)(key)),
      downloadToFiles: (key) => (asked.push(`files ${key}`), (minio.downloadToFiles as NonNullable<ObjectStore['downloadToFiles']>)(key)),
    };
    const reader = await expectRight(makeS3VolumeWith(config, counted));
    const writeToFile = reader.writeToFile?.bind(reader);
    if (writeToFile === undefined) throw new Error('an unencrypted S3 volume writes files');
    const dir = freshDir();
    // Shuffled, with one message twice, as a restore's list is.
    const list = [...contents.map((_, i) => (i * 17) % 40), 5].map((i) => sha256Hex(contents[i] as Buffer));
    const order = (await reader.readOrder?.(list)) ?? [];
    const ordered = order.map((i) => list[i] as Digest);
    reader.warmUp?.(list.slice(0, 8), { into: 'files' });
    reader.prefetch?.(ordered, { into: 'files' });
    const mtimeMs = Date.UTC(2025, 0, 2, 3, 4, 5);
    await Promise.all(ordered.map(async (d, k) => expectRight(writeToFile(d, { path: path.join(dir, `m${k}`), mode: 0o600, mtimeMs }))));
    for (const [k, d] of ordered.entries()) expect(sha256Hex(readFileSync(path.join(dir, `m${k}`)))).toBe(d);
    const packReads = asked.filter((a) => a.includes('/packs/'));
    const packs = new Set(packReads.map((a) => a.split(' ')[1]));
    expect(packs.size).toBeGreaterThan(2);
    // Each pack once, into files: no read of a pack another way.
    expect(packReads.filter((a) => a.startsWith('files ')).length).toBe(packs.size);
    expect(packReads.filter((a) => !a.startsWith('files '))).toEqual([]);
    await expectRight(reader.close());
  });

  it('two prefixes in one bucket never see each other’s blobs', async () => {
    const [p1, p2] = [freshPrefix(), freshPrefix()];
    const v1 = await open(configFor(p1));
    const v2 = await open(configFor(p2));
    const shared = mailLikeText(7000, 50);
    const only1 = [mailLikeText(1000, 51), pseudoRandomBytes(2000, 52)];
    const only2 = [mailLikeText(3000, 53)];
    for (const b of [shared, ...only1]) await expectRight(v1.put(streamOf(b)));
    for (const b of [shared, ...only2]) expect((await expectRight(v2.put(streamOf(b)))).stored).toBe(true);
    await expectRight(v1.drain({ timeoutMs: 30_000 }));
    await expectRight(v2.drain({ timeoutMs: 30_000 }));
    const listed = async (v: S3Volume): Promise<Set<Digest>> => {
      const s = new Set<Digest>();
      await expectRight(v.list((d) => void s.add(d)));
      return s;
    };
    expect(await listed(v1)).toEqual(new Set([shared, ...only1].map(sha256Hex)));
    expect(await listed(v2)).toEqual(new Set([shared, ...only2].map(sha256Hex)));
    const lone = only1[0] ?? Buffer.alloc(0);
    expect(await expectRight(v2.has(sha256Hex(lone)))).toBe(false);
    expect((await expectLeft(v2.get(sha256Hex(lone))))._tag).toBe('BlobNotFound');
    // A delete under one prefix leaves the other's copy alone.
    await expectRight(v1.delete(sha256Hex(shared)));
    expect(await expectRight(v1.has(sha256Hex(shared)))).toBe(false);
    expect((await readAll(await expectRight(v2.get(sha256Hex(shared))))).equals(shared)).toBe(true);
    await expectRight(v1.close());
    await expectRight(v2.close());
  });

  it('uploads a large blob in parts (partSize 5 MiB, 12 MiB blob) and reads it back', async () => {
    const prefix = freshPrefix();
    const volume = await open(configFor(prefix, freshDir(), { partSize: 5 * MiB }));
    const bytes = pseudoRandomBytes(12 * MiB + 4321, 77);
    const { digest } = await expectRight(volume.put(streamOf(bytes, 256 * 1024), { size: bytes.length }));
    await expectRight(volume.drain({ timeoutMs: 60_000 }));
    const at = await expectRight(volume.locate(digest));
    expect(at?.offset).toBe(0); // a pack of its own
    const st = await client.statObject(store.bucket, at?.key ?? '');
    expect(st.size).toBe(bytes.length);
    expect(st.etag).toMatch(/-3$/); // md5-of-md5s of 3 parts: it really went multipart
    await expectRight(volume.close());
    const reader = await open(configFor(prefix, freshDir(), { partSize: 5 * MiB }));
    expect((await readAll(await expectRight(reader.get(digest)))).equals(bytes)).toBe(true);
    await expectRight(reader.close());
  });

  it('wrong credentials: uploads fail, the status says why, and no secret shows', async () => {
    const secret = 'not-the-secret-7f3a';
    const volume = await open(configFor(freshPrefix(), freshDir(), { secretKey: secret }));
    await expectRight(volume.put(Readable.from([Buffer.from('credential test')])));
    const e = await expectLeft(volume.drain({ timeoutMs: 1500 }));
    expect(e._tag).toBe('VolumeUnavailable'); // drain timed out
    const status = volume.status();
    expect(status.state).toBe('degraded');
    expect(status.lastError?._tag).toBe('VolumeIOError');
    const text = `${String(status.lastError?.cause)} ${JSON.stringify(status)} ${String(e.cause)}`;
    expect(text).not.toContain(secret);
    expect(text).toMatch(/SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/);
    await expectRight(volume.close());
  });
});

describe('minio store on the S3 server: listing through presigned requests', () => {
  const listed = async (s: ReturnType<typeof makeMinioStore>, prefix: string): Promise<Array<{ key: string; size: number }>> => {
    const seen: Array<{ key: string; size: number }> = [];
    const r = await s.list(prefix, (o) => void seen.push({ key: o.key, size: o.size }))();
    if (E.isLeft(r)) throw new Error(`list failed: ${r.left._tag} ${String(r.left.cause)}`);
    expect(r.right).toBe(seen.length);
    return seen;
  };

  it('visits every key under a prefix once, page after page, as the SDK lists them, also keys with characters to encode', async () => {
    const prefix = `${freshPrefix()}a b+c&d/`;
    const s = makeMinioStore({ ...store, prefix: '' }, { uploadTimeoutMs: () => 60_000, listPageKeys: 3 });
    const keys = [...Array.from({ length: 8 }, (_, i) => `${prefix}k${i}`), `${prefix}sub/x=y`, `${prefix}0012`];
    for (const [i, key] of keys.entries()) {
      const r = await s.put(key, streamOf(Buffer.alloc(i + 1, 1)), i + 1, {})();
      if (E.isLeft(r)) throw new Error(`put failed: ${r.left._tag}`);
    }
    const ours = await listed(s, prefix);
    expect(ours.map((o) => o.key).sort()).toEqual([...keys].sort());
    expect(ours.find((o) => o.key === `${prefix}k4`)?.size).toBe(5);
    // The SDK's listing of the same prefix (a virtual-hosted configuration goes through it).
    const sdk: string[] = [];
    for await (const o of client.listObjectsV2(store.bucket, prefix, true)) if (o.name) sdk.push(o.name);
    expect(ours.map((o) => o.key).sort()).toEqual(sdk.sort());
    expect(await listed(s, `${prefix}nothing-here/`)).toEqual([]);
  });

  it('wrong credentials: the listing fails with the store\'s answer, and no secret shows', async () => {
    const secret = 'not-the-secret-77a1';
    const r = await makeMinioStore({ ...store, prefix: '', secretKey: secret }, { uploadTimeoutMs: () => 60_000 }).list('', () => undefined)();
    if (E.isRight(r)) throw new Error('expected a failure');
    expect(String(r.left.cause)).toMatch(/SignatureDoesNotMatch|AccessDenied/);
    expect(`${String(r.left.cause)} ${JSON.stringify(r.left)}`).not.toContain(secret);
  });
});

describe('minio store on the S3 server: a GET off the main thread', () => {
  const minioStore = (secretKey = store.secretKey) => makeMinioStore({ ...store, prefix: '', secretKey }, { uploadTimeoutMs: () => 60_000 });
  const right = async <A>(te: TE.TaskEither<S3Error, A>): Promise<A> => {
    const r = await te();
    if (E.isLeft(r)) throw new Error(`expected Right, got ${r.left._tag}: ${String(r.left.cause)}`);
    return r.right;
  };
  const left = async <A>(te: TE.TaskEither<S3Error, A>): Promise<S3Error> => {
    const r = await te();
    if (E.isRight(r)) throw new Error('expected Left, got Right');
    return r.left;
  };

  it('gives the same bytes as a plain GET, and a missing key is ObjectNotFound, as with get', async () => {
    const s = minioStore();
    const key = `${freshPrefix()}object`;
    const bytes = pseudoRandomBytes(3 * MiB + 17, 5);
    await right(s.put(key, streamOf(bytes, 256 * 1024), bytes.length, {}));
    const getOffThread = s.getOffThread;
    if (getOffThread === undefined) throw new Error('the minio store has no off-thread GET');
    const offThread = await readAll(await right(getOffThread(key)));
    const plain = await readAll(await right(s.get(key)));
    expect(offThread.equals(bytes)).toBe(true);
    expect(plain.equals(bytes)).toBe(true);
    expect((await left(getOffThread(`${key}-missing`)))._tag).toBe('ObjectNotFound');
    expect((await left(s.get(`${key}-missing`)))._tag).toBe('ObjectNotFound');
  });

  it('wrong credentials: the off-thread GET fails as the plain GET does, and no secret shows', async () => {
    const secret = 'not-the-secret-5e1b';
    const key = `${freshPrefix()}object`;
    await right(minioStore().put(key, streamOf(Buffer.from('x'), 1), 1, {}));
    const s = minioStore(secret);
    const e = await left((s.getOffThread ?? s.get)(key));
    expect(e._tag).toBe('VolumeIOError');
    expect(String(e.cause)).toMatch(/SignatureDoesNotMatch|AccessDenied/);
    expect(`${String(e.cause)} ${JSON.stringify(e)}`).not.toContain(secret);
  });
});
