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
