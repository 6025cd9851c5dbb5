import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { digestShard, type Digest } from '@zxbackup/volume-contract';
import { expectRight, mailLikeText, sha256Hex, streamOf } from '@zxbackup/volume-contract/testing';
import { makeKnownObjects } from './known-objects';
import { makeMemoryObjectStore, unavailable, type MemoryObjectStore } from './memory-object-store';
import { makeS3VolumeWith, type S3Volume } from './s3-volume';

const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
const keyOf = (d: Digest): string => `server1/items/${digestShard(d)}/${d}`;
const open = (store: MemoryObjectStore): Promise<S3Volume> => {
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-known-'));
  tempDirs.push(cacheDir);
  return expectRight(
    makeS3VolumeWith(
      { endPoint: '127.0.0.1', port: 9000, useSSL: false, accessKey: 'k', secretKey: 's', region: 'us-east-1', bucket: 'unit', prefix: 'server1', cacheDir },
      store,
    ),
  );
};
const count = (store: MemoryObjectStore, op: string): number => store.calls.filter((c) => c.op === op).length;
const blobs = [1, 2, 3, 4, 5].map((seed) => mailLikeText(3000 + seed, seed));

describe('requests per blob', () => {
  it('a volume that started empty: one listing for all, one PUT per blob, and dedup without asking', async () => {
    const store = makeMemoryObjectStore();
    const volume = await open(store);
    for (const b of blobs) expect((await expectRight(volume.put(streamOf(b)))).stored).toBe(true);
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect({ list: count(store, 'list'), stat: count(store, 'stat'), put: count(store, 'put') }).toEqual({ list: 1, stat: 0, put: 5 });
    // Uploaded and gone from the cache: still known, so not stored (nor asked about) again.
    const again = await expectRight(volume.put(streamOf(blobs[0] ?? Buffer.alloc(0))));
    expect(again.stored).toBe(false);
    expect(store.calls.length).toBe(6);
    await expectRight(volume.close());
  });

  it('a volume that holds blobs already: each put asks the store, and finds what is there', async () => {
    const store = makeMemoryObjectStore();
    const first = await open(store);
    await expectRight(first.put(streamOf(blobs[0] ?? Buffer.alloc(0))));
    await expectRight(first.drain({ timeoutMs: 5000 }));
    await expectRight(first.close());
    expect(store.objects.has(keyOf(sha256Hex(blobs[0] ?? Buffer.alloc(0))))).toBe(true);
    store.calls.length = 0;
    const volume = await open(store);
    const results = [];
    for (const b of blobs) results.push(await expectRight(volume.put(streamOf(b))));
    await expectRight(volume.drain({ timeoutMs: 5000 }));
    expect(results.map((r) => r.stored)).toEqual([false, true, true, true, true]);
    expect({ stat: count(store, 'stat'), put: count(store, 'put') }).toEqual({ stat: 5, put: 4 });
    await expectRight(volume.close());
  });

  it('a listing that fails leaves the answer unknown: the put asks the store instead', async () => {
    const store = makeMemoryObjectStore();
    store.fault = (op) => (op === 'list' ? unavailable('list') : undefined);
    const known = makeKnownObjects(store, 'server1/items/', 10);
    expect(await known.holds(sha256Hex(Buffer.from('a')))).toBeUndefined();
    store.fault = () => undefined;
    expect(await known.holds(sha256Hex(Buffer.from('a')))).toBe(false); // asked again, now empty
  });

  it('past its cap the knowledge is dropped (bounded memory), and every put asks the store', async () => {
    const known = makeKnownObjects(makeMemoryObjectStore(), 'server1/items/', 2);
    const [a, b, c] = ['a', 'b', 'c'].map((s) => sha256Hex(Buffer.from(s)));
    if (a === undefined || b === undefined || c === undefined) throw new Error('BUG');
    known.confirmed(a);
    expect(await known.holds(a)).toBe(true);
    known.confirmed(b);
    known.confirmed(c);
    expect(await known.holds(a)).toBeUndefined();
    expect(await known.holds(sha256Hex(Buffer.from('d')))).toBeUndefined();
  });
});
