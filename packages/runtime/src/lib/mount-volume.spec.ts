import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Digest } from '@zxbackup/volume-contract';
import { describeVolumeContract, expectLeft, expectRight, mailLikeText, pseudoRandomBytes, readAll, streamOf } from '@zxbackup/volume-contract/testing';
import { makeMountVolume, type MountVolume, type MountVolumeStatus } from './mount-volume';

const scratch = (): Promise<string> => fs.mkdtemp(path.join(os.tmpdir(), 'zxb-mount-volume-'));

interface Dirs {
  readonly base: string;
  readonly mount: string;
  readonly cache: string;
}

const dirsOf = new WeakMap<MountVolume, Dirs>();

const open = async (dirs: Dirs, retryMs = 20): Promise<MountVolume> => {
  const v = await expectRight(
    makeMountVolume({ mountItemsDir: path.join(dirs.mount, 'items'), cacheDir: dirs.cache, retry: { initialDelayMs: retryMs, maxDelayMs: retryMs * 4 }, syncMode: 'none' }),
  );
  dirsOf.set(v, dirs);
  return v;
};

const freshDirs = async (): Promise<Dirs> => {
  const base = await scratch();
  const dirs = { base, mount: path.join(base, 'mnt'), cache: path.join(base, 'bp', 'cache', 'mount') };
  await fs.mkdir(path.join(dirs.mount, 'items'), { recursive: true });
  return dirs;
};

const filesUnder = async (dir: string): Promise<string[]> => {
  const out: string[] = [];
  for (const shard of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    for (const f of await fs.readdir(path.join(dir, shard))) out.push(f);
  }
  return out.sort();
};

describeVolumeContract('external Local (mount + local cache)', {
  make: async () => open(await freshDirs()),
  cleanup: async (v) => {
    const d = dirsOf.get(v);
    if (d) await fs.rm(d.base, { recursive: true, force: true });
  },
  corrupt: async (v, digest: Digest) => {
    await expectRight(v.drain({ timeoutMs: 10_000 }));
    const d = dirsOf.get(v) as Dirs;
    const file = path.join(d.mount, 'items', digest.slice(-2), digest);
    const bytes = await fs.readFile(file);
    const at = bytes.length - 1;
    bytes[at] = (bytes[at] ?? 0) ^ 0x55;
    await fs.writeFile(file, bytes);
  },
});

describe('makeMountVolume', () => {
  let dirs: Dirs;
  let volume: MountVolume | undefined;

  beforeEach(async () => {
    dirs = await freshDirs();
  });
  afterEach(async () => {
    if (volume) await expectRight(volume.close());
    volume = undefined;
    await fs.rm(dirs.base, { recursive: true, force: true });
  });

  it('moves blobs to the mount and empties the cache', async () => {
    volume = await open(dirs);
    const a = await expectRight(volume.put(streamOf(mailLikeText(40_000, 1))));
    const b = await expectRight(volume.put(streamOf(pseudoRandomBytes(9_000, 2))));
    await expectRight(volume.flush());
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    expect(await filesUnder(path.join(dirs.mount, 'items'))).toEqual([a.digest, b.digest].sort());
    expect(await filesUnder(dirs.cache)).toEqual([]);
    expect(volume.status()).toMatchObject({ state: 'ok', pending: 0 });
  });

  it('deduplicates against the mount: content already there is not stored again', async () => {
    volume = await open(dirs);
    const bytes = mailLikeText(12_000, 3);
    const first = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    const second = await expectRight(volume.put(streamOf(bytes)));
    expect(first.stored).toBe(true);
    expect(second.stored).toBe(false);
    expect(await filesUnder(dirs.cache)).toEqual([]);
  });

  it('goes on while the mount is gone, and moves everything once it is back', async () => {
    volume = await open(dirs);
    const statuses: MountVolumeStatus[] = [];
    volume.onStatus((s) => statuses.push(s));
    const before = await expectRight(volume.put(streamOf(mailLikeText(5_000, 4))));
    await expectRight(volume.drain({ timeoutMs: 10_000 }));

    // The share goes away: its mount point is left without `items/`.
    const away = path.join(dirs.base, 'mnt-away');
    await fs.rename(dirs.mount, away);
    await fs.mkdir(dirs.mount);

    const during = [mailLikeText(30_000, 5), pseudoRandomBytes(20_000, 6), mailLikeText(1_000, 7)];
    const puts = [];
    for (const bytes of during) puts.push(await expectRight(volume.put(streamOf(bytes))));
    await expectRight(volume.flush());
    // Cached blobs stay readable; the unreachable mount is reported, not hidden.
    const [firstPut] = puts;
    if (firstPut === undefined) throw new Error('no put');
    expect((await readAll(await expectRight(volume.get(firstPut.digest)))).equals(during[0] as Buffer)).toBe(true);
    expectTag(await expectLeft(volume.get(before.digest)), 'VolumeUnavailable');
    expectTag(await expectLeft(volume.drain({ timeoutMs: 200 })), 'VolumeUnavailable');
    expect(volume.status()).toMatchObject({ state: 'unreachable', pending: 3 });
    expect(await filesUnder(dirs.cache)).toEqual(puts.map((p) => p.digest).sort());
    // Nothing was written onto the bare mount point.
    expect(await fs.readdir(dirs.mount)).toEqual([]);

    // The share is back.
    await fs.rmdir(dirs.mount);
    await fs.rename(away, dirs.mount);
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    expect(await filesUnder(path.join(dirs.mount, 'items'))).toEqual([before.digest, ...puts.map((p) => p.digest)].sort());
    expect(await filesUnder(dirs.cache)).toEqual([]);
    expect(statuses.map((s) => s.state)).toContain('unreachable');
    expect(volume.status().state).toBe('ok');
    for (const [i, p] of puts.entries()) expect((await readAll(await expectRight(volume.get(p.digest)))).equals(during[i] as Buffer)).toBe(true);
  });

  it('a blob cached while the mount was gone is moved by the next session', async () => {
    await fs.rename(path.join(dirs.mount, 'items'), path.join(dirs.base, 'items-away'));
    volume = await open(dirs);
    const bytes = mailLikeText(8_000, 8);
    const p = await expectRight(volume.put(streamOf(bytes)));
    await expectRight(volume.close());
    volume = undefined;
    expect(await filesUnder(dirs.cache)).toEqual([p.digest]);

    await fs.rename(path.join(dirs.base, 'items-away'), path.join(dirs.mount, 'items'));
    volume = await open(dirs);
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    expect(await filesUnder(path.join(dirs.mount, 'items'))).toEqual([p.digest]);
    expect(await filesUnder(dirs.cache)).toEqual([]);
  });

  it('close moves what is cached while the mount answers', async () => {
    volume = await open(dirs, 60_000);
    const p = await expectRight(volume.put(streamOf(mailLikeText(3_000, 9))));
    await expectRight(volume.close());
    volume = undefined;
    expect(await filesUnder(path.join(dirs.mount, 'items'))).toEqual([p.digest]);
    expect(await filesUnder(dirs.cache)).toEqual([]);
  });

  it('delete removes the blob from the cache and the mount', async () => {
    volume = await open(dirs);
    const a = await expectRight(volume.put(streamOf(mailLikeText(3_000, 10))));
    await expectRight(volume.drain({ timeoutMs: 10_000 }));
    await expectRight(volume.delete(a.digest));
    expect(await expectRight(volume.has(a.digest))).toBe(false);
    expect(await filesUnder(path.join(dirs.mount, 'items'))).toEqual([]);
  });
});

const expectTag = (e: { _tag: string }, tag: string): void => expect(e._tag).toBe(tag);
