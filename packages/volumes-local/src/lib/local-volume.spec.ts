import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { brotliCompressSync } from 'node:zlib';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
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
import { makeLocalVolume, type LocalVolume, type LocalVolumeOptions } from '../index';
import { HEADER_SIZE } from './format';
import { tempName, writerMarkName } from './temp-files';
import { tempFilesOf, writerMarksOf } from './temp-listing.fixture';

const scratch = (): Promise<string> => fs.mkdtemp(path.join(os.tmpdir(), 'zxb-volumes-local-'));

const blobPath = (volume: LocalVolume, digest: Digest): string => path.join(volume.root, digest.slice(-2), digest);

const flipByte = async (file: string): Promise<void> => {
  const bytes = await fs.readFile(file);
  const at = HEADER_SIZE + Math.floor((bytes.length - HEADER_SIZE) / 2);
  bytes[at] = (bytes[at] ?? 0) ^ 0x55;
  await fs.writeFile(file, bytes);
};

const truncateHalf = async (file: string): Promise<void> => {
  const { size } = await fs.stat(file);
  await fs.truncate(file, HEADER_SIZE + Math.floor((size - HEADER_SIZE) / 2));
};

const fixture = (options: Omit<LocalVolumeOptions, 'root'>, corrupt: (file: string) => Promise<void>) => ({
  make: async () => expectRight(makeLocalVolume({ root: await scratch(), ...options })),
  cleanup: async (volume: LocalVolume) => fs.rm(volume.root, { recursive: true, force: true }),
  corrupt: async (volume: LocalVolume, digest: Digest) => corrupt(blobPath(volume, digest)),
});

describeVolumeContract('local (auto compression, group commit, flipped byte)', fixture({}, flipByte));
describeVolumeContract('local (no compression, no sync, truncated file)', fixture({ compression: 'never', syncMode: 'none' }, truncateHalf));
describeVolumeContract('local (always compressed, group commit, truncated file)', fixture({ compression: 'always' }, truncateHalf));

const streamError = async (volume: LocalVolume, digest: Digest): Promise<VolumeError> => {
  try {
    await readAll(await expectRight(volume.get(digest)));
  } catch (error) {
    return (error as { volumeError: VolumeError }).volumeError;
  }
  throw new Error('expected the get stream to fail');
};

describe('makeLocalVolume', () => {
  let root: string;
  let volume: LocalVolume;

  beforeEach(async () => {
    root = await scratch();
    volume = await expectRight(makeLocalVolume({ root }));
  });

  afterEach(async () => {
    await volume.close()();
    await fs.rm(root, { recursive: true, force: true });
  });

  describe('opening', () => {
    it('a missing root is VolumeUnavailable', async () => {
      expect((await expectLeft(makeLocalVolume({ root: path.join(root, 'nope') })))._tag).toBe('VolumeUnavailable');
    });

    it('a root that is a file is VolumeUnavailable', async () => {
      await fs.writeFile(path.join(root, 'file'), 'x');
      expect((await expectLeft(makeLocalVolume({ root: path.join(root, 'file') })))._tag).toBe('VolumeUnavailable');
    });

    it('names itself after its root and reports its capabilities', async () => {
      expect(volume.name).toBe(`local:${path.resolve(root)}`);
      expect(volume.supports).toEqual({ durable: true, remote: false });
      const scratchVolume = await expectRight(makeLocalVolume({ root, syncMode: 'none' }));
      expect(scratchVolume.supports.durable).toBe(false);
    });
  });

  describe('layout and group commit', () => {
    it('stores <root>/<xx>/<digest> only once flushed; until then the blob is readable from its temp file', async () => {
      const bytes = mailLikeText(50_000, 1);
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      await expect(fs.stat(blobPath(volume, digest))).rejects.toMatchObject({ code: 'ENOENT' });
      // Its digest was known before its temp file was made: that is in its shard.
      expect(await tempFilesOf(root)).toEqual([expect.stringMatching(new RegExp(`^${digest.slice(-2)}/\\d+-.*\\.tmp$`))]);
      expect(await expectRight(volume.has(digest))).toBe(true);
      expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
      expect((await expectRight(volume.stat(digest))).size).toBe(bytes.length);

      await expectRight(volume.flush());
      const onDisk = await fs.readFile(blobPath(volume, digest));
      expect(onDisk.subarray(0, 4).toString('latin1')).toBe('ZXBV');
      expect(await tempFilesOf(root)).toEqual([]);
      expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
    });

    it('with syncMode none the blob is in place as soon as put resolves', async () => {
      const quick = await expectRight(makeLocalVolume({ root, syncMode: 'none' }));
      const { digest } = await expectRight(quick.put(streamOf(Buffer.from('in place'))));
      expect((await fs.stat(blobPath(quick, digest))).isFile()).toBe(true);
    });

    it('close flushes what is pending, and a closed volume refuses work', async () => {
      const { digest } = await expectRight(volume.put(streamOf(Buffer.from('closing'))));
      await expectRight(volume.close());
      expect((await fs.stat(blobPath(volume, digest))).isFile()).toBe(true);
      expect((await expectLeft(volume.has(digest)))._tag).toBe('VolumeUnavailable');
    });

    it('deletes racing a flush leave exactly the survivors', async () => {
      const contents = Array.from({ length: 40 }, (_, i) => mailLikeText(2000 + i * 100, i));
      const digests = [];
      for (const bytes of contents) digests.push((await expectRight(volume.put(streamOf(bytes)))).digest);
      const doomed = digests.filter((_, i) => i % 3 === 0);
      await Promise.all([expectRight(volume.flush()), ...doomed.map((d) => expectRight(volume.delete(d)))]);
      await expectRight(volume.flush());
      const seen: Digest[] = [];
      await expectRight(volume.list((d) => void seen.push(d)));
      expect(new Set(seen)).toEqual(new Set(digests.filter((d) => !doomed.includes(d))));
      expect(await tempFilesOf(root)).toEqual([]);
    });

    it('a dedup put refreshes the mtime, so a purge grace period counts from the last put', async () => {
      const bytes = Buffer.from('seen again');
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      await expectRight(volume.flush());
      const old = new Date(Date.now() - 10 * 24 * 3600 * 1000);
      await fs.utimes(blobPath(volume, digest), old, old);
      expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(false);
      expect((await expectRight(volume.stat(digest))).modifiedAt).toBeGreaterThan(Date.now() - 60_000);
    });
  });

  describe('temp files', () => {
    const deadPid = (): number => {
      const child = spawnSync(process.execPath, ['-e', '0']);
      return child.pid ?? 999_999;
    };

    it('are invisible to list, has and get, and stale ones are removed on open and by cleanupTemp', async () => {
      const tmp = path.join(root, '.tmp');
      const digestLike = sha256Hex(Buffer.from('a temp file named like a digest'));
      const deadWriter = tempName().replace(/^\d+-/, `${deadPid()}-`);
      const foreignFresh = '1234-abcd-some-other-host.tmp';
      const foreignOld = '5678-abcd-some-other-host.tmp';
      for (const name of [digestLike, deadWriter, foreignFresh, foreignOld]) await fs.writeFile(path.join(tmp, name), 'partial');
      const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
      await fs.utimes(path.join(tmp, foreignOld), old, old);
      await fs.utimes(path.join(tmp, digestLike), old, old);

      expect(await expectRight(volume.list(() => undefined))).toBe(0);
      expect(await expectRight(volume.has(digestLike))).toBe(false);
      expect((await expectLeft(volume.get(digestLike)))._tag).toBe('BlobNotFound');

      const { digest: live } = await expectRight(volume.put(streamOf(Buffer.from('pending, must survive cleanup'))));
      expect(await expectRight(volume.cleanupTemp())).toBe(3);
      const left = await fs.readdir(tmp);
      expect(left).toContain(foreignFresh);
      expect(left).toHaveLength(2);
      expect(await expectRight(volume.has(live))).toBe(true);

      await fs.writeFile(path.join(tmp, deadWriter), 'partial again');
      const reopened = await expectRight(makeLocalVolume({ root }));
      expect(await fs.readdir(tmp)).not.toContain(deadWriter);
      await expectRight(reopened.close());
    });

    it('in the shards are swept when a writer left its mark and is gone, and only then', async () => {
      const dead = deadPid();
      const shard = path.join(root, 'ab');
      await fs.mkdir(shard);
      const deadTemp = tempName().replace(/^\d+-/, `${dead}-`);
      const liveTemp = tempName(); // this process: alive
      const foreignFresh = '1234-abcd-some-other-host.tmp';
      const foreignOld = '5678-abcd-some-other-host.tmp';
      const notATemp = 'notes.txt';
      for (const name of [deadTemp, liveTemp, foreignFresh, foreignOld, notATemp]) await fs.writeFile(path.join(shard, name), 'partial');
      const old = new Date(Date.now() - 3 * 24 * 3600 * 1000);
      for (const name of [foreignOld, notATemp]) await fs.utimes(path.join(shard, name), old, old);

      // No mark of a gone writer: the shards are not read at all.
      expect(await expectRight(volume.cleanupTemp())).toBe(0);
      const liveMark = writerMarkName();
      await fs.writeFile(path.join(root, '.tmp', liveMark), '');
      expect(await expectRight(volume.cleanupTemp())).toBe(0);
      expect(await fs.readdir(shard)).toHaveLength(5);

      const deadMark = writerMarkName().replace(/^\d+-/, `${dead}-`);
      await fs.writeFile(path.join(root, '.tmp', deadMark), '');
      const reopened = await expectRight(makeLocalVolume({ root }));
      expect((await fs.readdir(shard)).sort()).toEqual([foreignFresh, liveTemp, notATemp].sort());
      expect(await writerMarksOf(root)).toEqual([liveMark]);
      expect(await expectRight(reopened.list(() => undefined))).toBe(0);
      await expectRight(reopened.close());
    });

    it('a writer marks the volume before its first temp file in a shard and unmarks it on close', async () => {
      const source = path.join(root, 'message.eml');
      await fs.writeFile(source, mailLikeText(5_000, 31));
      const reader = await expectRight(makeLocalVolume({ root }));
      expect(await expectRight(reader.has(sha256Hex(Buffer.from('x'))))).toBe(false);
      expect(await writerMarksOf(root)).toEqual([]);
      const { digest } = await expectRight(volume.putFile(source));
      const marks = await writerMarksOf(root);
      expect(marks).toHaveLength(1);
      // The reader's cleanup leaves a live writer's mark and pending temp file alone.
      expect(await expectRight(reader.cleanupTemp())).toBe(0);
      expect(await writerMarksOf(root)).toEqual(marks);
      await expectRight(volume.close());
      expect(await writerMarksOf(root)).toEqual([]);
      expect(await tempFilesOf(root)).toEqual([]);
      expect((await fs.stat(blobPath(volume, digest))).isFile()).toBe(true);
      await expectRight(reader.close());
    });
  });

  describe('compression', () => {
    const storedRatio = async (v: LocalVolume, bytes: Buffer): Promise<number> => {
      const { digest } = await expectRight(v.put(streamOf(bytes)));
      await expectRight(v.flush());
      const onDisk = (await fs.stat(blobPath(v, digest))).size;
      expect((await expectRight(v.stat(digest))).storedSize).toBe(onDisk);
      expect((await readAll(await expectRight(v.get(digest)))).equals(bytes)).toBe(true);
      return onDisk / bytes.length;
    };
    const base64Attachment = (size: number): Buffer =>
      Buffer.from(pseudoRandomBytes(size, 5).toString('base64').replace(/(.{76})/g, '$1\r\n')).subarray(0, size);

    it.each([
      ['small mail text', mailLikeText(20_000, 2), 0.5],
      ['medium mail text (held whole, compressed by an I/O worker)', mailLikeText(600_000, 9), 0.5],
      ['large mail text (streamed)', mailLikeText(2_000_000, 3), 0.5],
    ])('auto compresses %s', async (_label, bytes, atMost) => {
      expect(await storedRatio(volume, bytes)).toBeLessThan(atMost);
    });

    it.each([
      ['small random bytes', pseudoRandomBytes(20_000, 4)],
      ['large random bytes (streamed)', pseudoRandomBytes(2_000_000, 5)],
      ['brotli-compressed data', brotliCompressSync(mailLikeText(600_000, 6))],
      ['a base64 attachment (only ~24% to gain: not worth the CPU)', base64Attachment(500_000)],
    ])('auto stores %s raw: exactly the header more', async (_label, bytes) => {
      expect(await storedRatio(volume, bytes)).toBe((bytes.length + HEADER_SIZE) / bytes.length);
    });

    it('always compresses even a base64 attachment', async () => {
      const always = await expectRight(makeLocalVolume({ root, compression: 'always' }));
      expect(await storedRatio(always, base64Attachment(300_000))).toBeLessThan(0.8);
    });

    it('never and always do what they say', async () => {
      const text = mailLikeText(100_000, 7);
      const never = await expectRight(makeLocalVolume({ root, compression: 'never' }));
      expect(await storedRatio(never, text)).toBe((text.length + HEADER_SIZE) / text.length);
      await expectRight(volume.delete(sha256Hex(text)));
      const always = await expectRight(makeLocalVolume({ root, compression: 'always' }));
      const random = pseudoRandomBytes(100_000, 8);
      const { digest } = await expectRight(always.put(streamOf(random)));
      await expectRight(always.flush());
      expect((await fs.readFile(blobPath(always, digest)))[5]).toBe(1);
      expect((await readAll(await expectRight(always.get(digest)))).equals(random)).toBe(true);
    });
  });

  describe('putFile', () => {
    const write = async (name: string, bytes: Buffer): Promise<string> => {
      const file = path.join(root, name);
      await fs.writeFile(file, bytes);
      return file;
    };

    it.each([
      ['a small message', mailLikeText(20_000, 21)],
      ['an empty file', Buffer.alloc(0)],
      ['a file larger than a worker holds whole (streamed)', pseudoRandomBytes(5 * 1024 * 1024, 22)],
    ])('stores %s as put would, readable and durable after a flush', async (_label, bytes) => {
      const file = await write('message.eml', bytes);
      const result = await expectRight(volume.putFile(file));
      expect(result).toEqual({ digest: sha256Hex(bytes), size: bytes.length, stored: true, head: Buffer.alloc(0) });
      expect((await readAll(await expectRight(volume.get(result.digest)))).equals(bytes)).toBe(true);
      await expectRight(volume.flush());
      expect((await fs.stat(blobPath(volume, result.digest))).isFile()).toBe(true);
      expect((await readAll(await expectRight(volume.get(result.digest)))).equals(bytes)).toBe(true);
      // The same content again, by file or by stream: deduplicated.
      expect((await expectRight(volume.putFile(file))).stored).toBe(false);
      expect((await expectRight(volume.put(streamOf(bytes)))).stored).toBe(false);
    });

    it('the same new content put twice before a flush is stored once', async () => {
      const bytes = mailLikeText(30_000, 23);
      const [a, b] = await Promise.all([volume.putFile(await write('a.eml', bytes))(), volume.putFile(await write('b.eml', bytes))()]);
      expect([a, b].map((r) => (r._tag === 'Right' ? r.right.stored : 'failed')).sort()).toEqual([false, true]);
      expect(await tempFilesOf(root)).toHaveLength(1);
    });

    it('a file that cannot be read is SourceUnreadable naming it, not the volume gone', async () => {
      const missingFile = path.join(root, 'gone.eml');
      expect(await expectLeft(volume.putFile(missingFile))).toMatchObject({ _tag: 'SourceUnreadable', key: missingFile, code: 'ENOENT' });
      const directory = await fs.mkdtemp(path.join(root, 'dir-'));
      expect(await expectLeft(volume.putFile(directory))).toMatchObject({ _tag: 'SourceUnreadable', key: directory, code: 'EISDIR' });
      expect(await tempFilesOf(root)).toEqual([]);
    });

    it("leaves the source's access time alone (relatime would set it on this first read)", async () => {
      const file = await write('unread.eml', mailLikeText(10_000, 26));
      const { mtime } = await fs.stat(file);
      const before = new Date(mtime.getTime() - 3_600_000);
      await fs.utimes(file, before, mtime);
      await expectRight(volume.putFile(file));
      // An hour before mtime, as set (atimeMs is a float of nanoseconds: equal within a millisecond).
      expect(Math.abs((await fs.stat(file)).atimeMs - before.getTime())).toBeLessThan(1);
    });

    it('returns the first bytes asked for, also for a deduplicated blob', async () => {
      const bytes = mailLikeText(50_000, 25);
      const file = await write('m.eml', bytes);
      expect((await expectRight(volume.putFile(file, { headBytes: 100 }))).head.equals(bytes.subarray(0, 100))).toBe(true);
      expect((await expectRight(volume.putFile(file, { headBytes: 200 }))).head.equals(bytes.subarray(0, 200))).toBe(true);
      expect((await expectRight(volume.putFile(file))).head.length).toBe(0);
    });

    it('an expected digest that does not match is BlobCorrupt and stores nothing', async () => {
      const file = await write('m.eml', mailLikeText(10_000, 24));
      const error = await expectLeft(volume.putFile(file, { expectedDigest: sha256Hex(Buffer.from('other')) }));
      expect(error).toMatchObject({ _tag: 'BlobCorrupt', op: 'put', key: sha256Hex(Buffer.from('other')) });
      expect(await tempFilesOf(root)).toEqual([]);
    });
  });

  describe('corruption is BlobCorrupt in the get stream', () => {
    const cases: Array<[string, Buffer, (file: string) => Promise<void>]> = [
      ['small compressed, truncated', mailLikeText(30_000, 9), truncateHalf],
      ['small raw, truncated', pseudoRandomBytes(30_000, 10), truncateHalf],
      ['large compressed, truncated', mailLikeText(6_000_000, 11), truncateHalf],
      ['large raw, truncated', pseudoRandomBytes(3_000_000, 12), truncateHalf],
      ['large compressed, flipped byte', mailLikeText(6_000_000, 13), flipByte],
      ['large raw, flipped byte', pseudoRandomBytes(3_000_000, 14), flipByte],
      ['raw, one byte appended', pseudoRandomBytes(30_000, 15), (file) => fs.appendFile(file, 'x')],
      ['damaged header', mailLikeText(30_000, 16), async (file) => {
        const bytes = await fs.readFile(file);
        bytes[4] = 99;
        await fs.writeFile(file, bytes);
      }],
      ['empty file', mailLikeText(30_000, 17), (file) => fs.truncate(file, 0)],
    ];
    it.each(cases)('%s', async (_label, bytes, damage) => {
      const { digest } = await expectRight(volume.put(streamOf(bytes)));
      await expectRight(volume.flush());
      await damage(blobPath(volume, digest));
      const error = await streamError(volume, digest);
      expect(error._tag).toBe('BlobCorrupt');
      expect(error.key).toBe(digest);
    });

    it('stat of a damaged header is BlobCorrupt', async () => {
      const { digest } = await expectRight(volume.put(streamOf(Buffer.from('header'))));
      await expectRight(volume.flush());
      await fs.writeFile(blobPath(volume, digest), 'garbage, no header');
      expect((await expectLeft(volume.stat(digest)))._tag).toBe('BlobCorrupt');
    });
  });

  describe('the volume gone', () => {
    it('is VolumeUnavailable for put, get, has, list and flush, not BlobNotFound', async () => {
      const { digest } = await expectRight(volume.put(streamOf(Buffer.from('soon gone'))));
      await expectRight(volume.flush());
      await fs.rm(root, { recursive: true });
      expect((await expectLeft(volume.put(streamOf(Buffer.from('new')))))._tag).toBe('VolumeUnavailable');
      expect((await expectLeft(volume.put(streamOf(pseudoRandomBytes(500_000)))))._tag).toBe('VolumeUnavailable');
      expect((await expectLeft(volume.get(digest)))._tag).toBe('VolumeUnavailable');
      expect((await expectLeft(volume.has(digest)))._tag).toBe('VolumeUnavailable');
      expect((await expectLeft(volume.list(() => undefined)))._tag).toBe('VolumeUnavailable');
      await fs.mkdir(root);
      expect((await expectLeft(volume.put(streamOf(Buffer.from('bare mount point')))))._tag).toBe('VolumeUnavailable');
      const elsewhere = await scratch();
      await fs.writeFile(path.join(elsewhere, 'm.eml'), 'a message for a bare mount point');
      expect((await expectLeft(volume.putFile(path.join(elsewhere, 'm.eml'))))._tag).toBe('VolumeUnavailable');
      await fs.rm(elsewhere, { recursive: true });
      expect(await fs.readdir(root)).toEqual([]);
    });
  });
});

// ENOSPC needs a small file system; mounting a 1 MB tmpfs needs root. Decided once, and a
// skipped test is reported as skipped by jest, never dropped silently.
const canMountTmpfs = ((): boolean => {
  if (process.getuid?.() !== 0 || process.platform !== 'linux') return false;
  const probe = path.join(os.tmpdir(), `zxb-mount-probe-${process.pid}`);
  try {
    execFileSync('mkdir', ['-p', probe]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('rm', ['-rf', probe]);
  }
})();

(canMountTmpfs ? describe : describe.skip)('a full disk (1 MB tmpfs, needs root)', () => {
  let mountPoint: string;
  beforeEach(async () => {
    mountPoint = await scratch();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
  });
  afterEach(async () => {
    execFileSync('umount', [mountPoint]);
    await fs.rm(mountPoint, { recursive: true });
  });

  it.each([
    ['a streamed put (3 MB)', 3_000_000],
    ['a put read whole (60 KB)', 60_000],
  ])('%s is VolumeFull and leaves no temp file', async (_label, size) => {
    const volume = await expectRight(makeLocalVolume({ root: mountPoint, compression: 'never' }));
    await fs.writeFile(path.join(mountPoint, 'filler'), Buffer.alloc(1024 * 1024 - 40_000));
    const error = await expectLeft(volume.put(streamOf(pseudoRandomBytes(size, 3))));
    expect(error._tag).toBe('VolumeFull');
    expect(await tempFilesOf(mountPoint)).toEqual([]);
    expect(await expectRight(volume.list(() => undefined))).toBe(0);
  });
});
