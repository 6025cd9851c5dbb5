import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type { VolumeError } from '@zxbackup/volume-contract';
import { makeMemoryObjectStore, type MemoryObjectStore } from './memory-object-store';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';
import { makePackReader, type PackPlan, type PackReader } from './pack-reader';

const BLOB_BYTES = 4096;
const BLOBS_PER_PACK = 8;

/** Packs of random blobs put straight into the store, with every blob's place. */
const makePacks = (store: MemoryObjectStore, count: number): Array<{ id: PackId; blobs: Array<BlobLocation & { bytes: Buffer }> }> =>
  Array.from({ length: count }, (_, p) => {
    const id = `pack${p}` as PackId;
    const blobs = Array.from({ length: BLOBS_PER_PACK }, (_, i) => {
      const bytes = randomBytes(BLOB_BYTES);
      return { pack: id, digest: createHash('sha256').update(bytes).digest('hex'), offset: i * BLOB_BYTES, length: BLOB_BYTES, size: BLOB_BYTES, bytes } as BlobLocation & { bytes: Buffer };
    });
    store.objects.set(`packs/${id}`, { bytes: Buffer.concat(blobs.map((b) => b.bytes)), metadata: {}, lastModified: new Date() });
    return { id, blobs };
  });

const gets = (store: MemoryObjectStore, id: PackId): number => store.calls.filter((c) => c.op === 'get' && c.key === `packs/${id}`).length;
const until = async (ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
};
const readBytes = async (reader: PackReader, loc: BlobLocation): Promise<Buffer> => {
  const got = await reader.read(loc, BLOB_BYTES * BLOBS_PER_PACK)();
  if (E.isLeft(got)) throw new Error(got.left._tag);
  const value: Readable | Buffer[] = got.right;
  if (!Array.isArray(value)) throw new Error('a stream for a small pack');
  return Buffer.concat(value);
};

describe('pack reader', () => {
  let dir: string;
  let reader: PackReader | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'zxb-pack-reader-'));
  });
  afterEach(async () => {
    await reader?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = async (store: MemoryObjectStore, options: { capacityBytes: number; staleMs?: number }): Promise<PackReader> => {
    const made = await makePackReader({
      store,
      keyOf: (id) => `packs/${id}`,
      legacyDir: path.join(dir, 'packs'),
      capacityBytes: options.capacityBytes,
      wholePackMax: 1024 * 1024,
      storeError: (e, loc): VolumeError => ({ _tag: 'VolumeIOError', op: 'get', key: loc.digest, cause: e }),
      ...(options.staleMs === undefined ? {} : { staleMs: options.staleMs }),
    })();
    if (E.isLeft(made)) throw new Error(made.left._tag);
    return made.right;
  };

  it('gives up announced reads that never come: their streams free their slots and their blobs the memory', async () => {
    const store = makeMemoryObjectStore();
    store.chunkBytes = 1000;
    const packs = makePacks(store, 4);
    reader = await open(store, { capacityBytes: 2 * BLOB_BYTES, staleMs: 100 });
    const plan = (p: (typeof packs)[number]): PackPlan => ({ pack: p.id, size: BLOB_BYTES * BLOBS_PER_PACK, blobs: p.blobs });
    // A restore announces three packs (as many as stream at once), then stops reading: the
    // streams fill the memory allowed and pause.
    reader.prefetch(packs.slice(0, 3).map(plan));
    await until(() => packs.slice(0, 3).every((p) => gets(store, p.id) === 1));
    await new Promise((r) => setTimeout(r, 400)); // older than staleMs: given up
    // The next restore's pack streams, and its blobs are read from the stream alone.
    const next = packs[3] as (typeof packs)[number];
    reader.prefetch([plan(next)]);
    for (const b of next.blobs) expect((await readBytes(reader, b)).equals(b.bytes)).toBe(true);
    expect(gets(store, next.id)).toBe(1);
    // A late read of a given-up blob still gets it, by reading its pack whole.
    const late = packs[0]?.blobs[5] as BlobLocation & { bytes: Buffer };
    expect((await readBytes(reader, late)).equals(late.bytes)).toBe(true);
    expect(gets(store, late.pack)).toBe(2);
  });

  /** The bodies the store handed out, per key, to see which were dropped (destroyed). */
  const recordBodies = (store: MemoryObjectStore): Map<string, Readable[]> => {
    const bodies = new Map<string, Readable[]>();
    const get = store.get.bind(store);
    store.get = (key) => async () => {
      const got = await get(key)();
      if (E.isRight(got)) bodies.set(key, [...(bodies.get(key) ?? []), got.right]);
      return got;
    };
    return bodies;
  };

  it('open starts a pack ahead of its plan: the plan streams that download (one GET) and takes its blobs out of it', async () => {
    const store = makeMemoryObjectStore();
    store.chunkBytes = 1000;
    const packs = makePacks(store, 2);
    const bodies = recordBodies(store);
    reader = await open(store, { capacityBytes: 64 * BLOB_BYTES });
    reader.open(packs.map((p) => ({ pack: p.id, size: BLOB_BYTES * BLOBS_PER_PACK })));
    await until(() => packs.every((p) => gets(store, p.id) === 1));
    // Opened, but nothing is taken out before the plans: no blob is read yet.
    for (const p of packs) expect((bodies.get(`packs/${p.id}`)?.[0] as Readable).readableDidRead).toBe(false);
    reader.prefetch(packs.map((p) => ({ pack: p.id, size: BLOB_BYTES * BLOBS_PER_PACK, blobs: p.blobs })));
    for (const p of packs) for (const b of p.blobs) expect((await readBytes(reader, b)).equals(b.bytes)).toBe(true);
    for (const p of packs) expect(gets(store, p.id)).toBe(1);
  });

  it('opens at most as many packs as stream at once, none too big to keep, and drops those no plan claims in time', async () => {
    const store = makeMemoryObjectStore();
    const packs = makePacks(store, 5);
    const bodies = recordBodies(store);
    reader = await open(store, { capacityBytes: 64 * BLOB_BYTES, staleMs: 100 });
    reader.open([{ pack: packs[0]?.id as PackId, size: 2 * 1024 * 1024 }, ...packs.slice(1).map((p) => ({ pack: p.id, size: BLOB_BYTES * BLOBS_PER_PACK }))]);
    await until(() => bodies.size === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect([...bodies.keys()].sort()).toEqual(packs.slice(1, 4).map((p) => `packs/${p.id}`));
    await until(() => [...bodies.values()].every((b) => b[0]?.destroyed === true));
    expect([...bodies.values()].map((b) => b[0]?.destroyed)).toEqual([true, true, true]);
    // A plan that comes after all downloads its pack again, and reads its blobs.
    const late = packs[1] as (typeof packs)[number];
    reader.prefetch([{ pack: late.id, size: BLOB_BYTES * BLOBS_PER_PACK, blobs: late.blobs }]);
    for (const b of late.blobs) expect((await readBytes(reader, b)).equals(b.bytes)).toBe(true);
    expect(gets(store, late.id)).toBe(2);
  });

  it('close drops the packs opened ahead', async () => {
    const store = makeMemoryObjectStore();
    const packs = makePacks(store, 2);
    const bodies = recordBodies(store);
    const opened = await open(store, { capacityBytes: 64 * BLOB_BYTES });
    opened.open(packs.map((p) => ({ pack: p.id, size: BLOB_BYTES * BLOBS_PER_PACK })));
    await until(() => bodies.size === 2);
    await opened.close();
    await until(() => [...bodies.values()].every((b) => b[0]?.destroyed === true));
    expect([...bodies.values()].map((b) => b[0]?.destroyed)).toEqual([true, true]);
  });

  it('keeps announced reads that are being made, however long they take', async () => {
    const store = makeMemoryObjectStore();
    store.chunkBytes = 1000;
    const [pack] = makePacks(store, 1);
    if (pack === undefined) throw new Error('no pack');
    reader = await open(store, { capacityBytes: 64 * BLOB_BYTES, staleMs: 100 });
    reader.prefetch([{ pack: pack.id, size: BLOB_BYTES * BLOBS_PER_PACK, blobs: pack.blobs }]);
    for (const b of pack.blobs) {
      expect((await readBytes(reader, b)).equals(b.bytes)).toBe(true);
      await new Promise((r) => setTimeout(r, 30)); // reads keep coming, each well within staleMs
    }
    expect(gets(store, pack.id)).toBe(1);
  });
});
