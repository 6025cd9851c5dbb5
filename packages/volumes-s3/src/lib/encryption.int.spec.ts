// Client-side encryption against the real S3 server: eval "$(tools/services/s3-server.sh start)" first.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { Client } from 'minio';
import { describeVolumeContract, expectRight, mailLikeText, pseudoRandomBytes, readAll, streamOf } from '@zxbackup/volume-contract/testing';
import { downloadArchive, ensureBucket, listArchives, listBuckets, uploadArchive } from './archives';
import type { S3StoreConfig, S3VolumeConfig } from './config';
import { encryptedSize, encryptionErrorOf, generateKeyFile } from './encryption';
import { makeS3Volume, type S3Volume } from './s3-volume';
import { corruptStoredBlob, storedBlob, testServer } from './test-server.spec-helper';

const MiB = 1024 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'zxb-s3-enc-int-'));
const keyFile = path.join(dir, 'zxbackup.key');
const otherKeyFile = path.join(dir, 'other.key');
const base: S3StoreConfig = { ...testServer('zxb-volumes-s3-int', ''), partSize: 5 * MiB };
const run = `enc-${Date.now()}-${randomBytes(3).toString('hex')}`;
const client = new Client({ ...base, pathStyle: true });
let n = 0;
const freshPrefix = (): string => `${run}/p${++n}/`;
const sealed = (prefix: string, file = keyFile): S3StoreConfig => ({ ...base, prefix, encryption: { keyFile: file } });
const volumeConfig = (prefix: string): S3VolumeConfig => ({
  ...sealed(prefix),
  cacheDir: path.join(dir, `cache-${++n}`),
  retry: { initialDelayMs: 100, maxDelayMs: 1000 },
});
const rawBytes = async (key: string): Promise<Buffer> => readAll(await client.getObject(base.bucket, key));

const right = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};

beforeAll(async () => {
  const reachable = await listBuckets(base)();
  if (E.isLeft(reachable)) throw new Error(`the S3 server is not usable (${reachable.left._tag}). Start it first: eval "$(tools/services/s3-server.sh start)"`);
  await right(ensureBucket(base));
  await right(generateKeyFile(keyFile));
  await right(generateKeyFile(otherKeyFile));
});

afterAll(async () => {
  const keys: string[] = [];
  for await (const o of client.listObjectsV2(base.bucket, `${run}/`, true)) if (o.name) keys.push(o.name);
  if (keys.length > 0) await client.removeObjects(base.bucket, keys);
  rmSync(dir, { recursive: true, force: true });
});

describeVolumeContract<S3Volume>('encrypted s3 volume on the S3 server', {
  timeoutMs: 60_000,
  make: () => expectRight(makeS3Volume(volumeConfig(freshPrefix()))),
  corrupt: async (volume, digest) => {
    await expectRight(volume.drain({ timeoutMs: 30_000 }));
    await corruptStoredBlob(client, base.bucket, volume, digest, (n) => n - 100); // one bit of the last chunk
  },
});

describe('encryption on the S3 server', () => {
  it('a multipart-sized blob is stored encrypted, with the announced size; it reads back whole', async () => {
    const prefix = freshPrefix();
    const volume = await expectRight(makeS3Volume(volumeConfig(prefix)));
    const marker = Buffer.from('ZXB-MARKER-IN-A-LARGE-ATTACHMENT');
    const bytes = Buffer.concat([pseudoRandomBytes(6 * MiB, 1), marker, mailLikeText(6 * MiB, 2), marker]);
    const { digest } = await expectRight(volume.put(streamOf(bytes), { size: bytes.length }));
    await expectRight(volume.drain({ timeoutMs: 60_000 }));
    const stored = await storedBlob(client, base.bucket, volume, digest);
    expect(stored.offset).toBe(0); // a pack of its own
    expect(stored.pack.length).toBe(encryptedSize(bytes.length));
    const raw = stored.pack;
    expect(raw.includes(marker)).toBe(false);
    expect(raw.subarray(0, 4).toString('latin1')).toBe('ZXBE');
    expect((await expectRight(volume.stat(digest))).size).toBe(bytes.length);
    expect((await readAll(await expectRight(volume.get(digest)))).equals(bytes)).toBe(true);
    await expectRight(volume.close());
  }, 120_000);

  it('metadata archives go up encrypted, list with their plaintext size, and need the right key', async () => {
    const prefix = freshPrefix();
    const archive = mailLikeText(300_000, 3); // stands for a .tar.gz
    const key = 'accounts/alice@example.test/20260210T120000000Z.tar.gz';
    await right(uploadArchive(sealed(prefix), key, streamOf(archive), archive.length));
    expect(await right(listArchives(sealed(prefix), 'accounts/'))).toEqual([expect.objectContaining({ key, size: archive.length })]);
    const raw = await rawBytes(`${prefix}${key}`);
    expect(raw.length).toBe(encryptedSize(archive.length));
    expect(raw.includes(archive.subarray(0, 64))).toBe(false);
    expect((await readAll(await right(downloadArchive(sealed(prefix), key)))).equals(archive)).toBe(true);

    const wrong = await downloadArchive(sealed(prefix, otherKeyFile), key)();
    expect(E.isLeft(wrong) && wrong.left._tag).toBe('VolumeIOError');
    expect(E.isLeft(wrong) ? encryptionErrorOf(wrong.left)?._tag : undefined).toBe('WrongKey');
    const plain = await downloadArchive({ ...base, prefix }, key)();
    expect(E.isRight(plain) && (await readAll(plain.right)).equals(raw)).toBe(true); // without the key: the ciphertext
  });
});
