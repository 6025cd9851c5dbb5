import { writeToFileThroughGet } from './put-file';
import { describeVolumeContract, expectRight, makeMemoryVolume, readAll, streamOf, type MemoryVolume } from '../testing';

describeVolumeContract<MemoryVolume>('memory', {
  make: async () => makeMemoryVolume(),
  corrupt: async (volume, digest) => {
    const flipped = volume.tamper(digest, (bytes) => {
      const at = Math.floor(bytes.length / 2);
      bytes[at] = (bytes[at] ?? 0) ^ 0x40;
      return bytes;
    });
    if (!flipped) throw new Error(`no blob ${digest} to corrupt`);
  },
});

// The generic writeToFile (through get), as a volume without a faster way would offer it.
describeVolumeContract<MemoryVolume>('memory with writeToFileThroughGet', {
  make: async () => {
    const volume = makeMemoryVolume();
    return Object.assign(volume, { writeToFile: writeToFileThroughGet(volume.get.bind(volume)) });
  },
  corrupt: async (volume, digest) => {
    if (!volume.tamper(digest, (bytes) => Buffer.concat([bytes, Buffer.from('!')]))) throw new Error(`no blob ${digest} to corrupt`);
  },
});

describe('makeMemoryVolume', () => {
  it('a truncated blob fails its get stream', async () => {
    const volume = makeMemoryVolume();
    const bytes = Buffer.from('x'.repeat(1000));
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    volume.tamper(digest, (stored) => stored.subarray(0, 10));
    await expect(readAll(await expectRight(volume.get(digest)))).rejects.toMatchObject({ volumeError: { _tag: 'BlobCorrupt' } });
  });

  it('a dedup put refreshes modifiedAt', async () => {
    const volume = makeMemoryVolume({ name: 'm1' });
    const bytes = Buffer.from('hello');
    const { digest } = await expectRight(volume.put(streamOf(bytes)));
    const before = (await expectRight(volume.stat(digest))).modifiedAt ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await expectRight(volume.put(streamOf(bytes)));
    expect((await expectRight(volume.stat(digest))).modifiedAt).toBeGreaterThan(before);
    expect(volume.name).toBe('m1');
  });
});
