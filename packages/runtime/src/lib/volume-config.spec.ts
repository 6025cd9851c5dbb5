import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { AppError } from './errors';
import {
  listBucketSummaries,
  normalizePrefix,
  parseStoreUrl,
  readBuckets,
  readVolumeSettings,
  releaseBucketUse,
  resolveBucket,
  saveBucket,
  writeVolumeSettings,
} from './volume-config';

const right = async <A>(te: TE.TaskEither<AppError, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${r.left._tag}: ${r.left.message}`);
  return r.right;
};
const left = async <A>(te: TE.TaskEither<AppError, A>): Promise<AppError> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected Left');
  return r.left;
};

const FULL = { bucketName: 'backup', accessKey: 'AKIA1', secret: 's3cr3t-value', region: 'eu-west-1', url: 'http://127.0.0.1:9000' };

describe('volume configuration', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-volume-config-'));
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('normalizes prefixes and refuses ones that would nest in the layout', () => {
    expect(normalizePrefix('server1')).toEqual(E.right('server1/'));
    expect(normalizePrefix('/a/b/')).toEqual(E.right('a/b/'));
    expect(normalizePrefix('')).toEqual(E.right(''));
    expect(E.isLeft(normalizePrefix('items'))).toBe(true);
    expect(E.isLeft(normalizePrefix('accounts/x'))).toBe(true);
    expect(E.isLeft(normalizePrefix('a/../b'))).toBe(true);
  });

  it('parses endpoint URLs', () => {
    expect(parseStoreUrl('http://127.0.0.1:9000')).toEqual(E.right({ endPoint: '127.0.0.1', port: 9000, useSSL: false }));
    expect(parseStoreUrl('https://s3.example.com')).toEqual(E.right({ endPoint: 's3.example.com', port: 443, useSSL: true }));
    expect(parseStoreUrl('s3api.myvendor.com')).toEqual(E.right({ endPoint: 's3api.myvendor.com', port: 443, useSSL: true }));
    expect(E.isLeft(parseStoreUrl('ftp://x'))).toBe(true);
    expect(E.isLeft(parseStoreUrl('http://u:p@host'))).toBe(true);
    expect(E.isLeft(parseStoreUrl('http://host/bucket'))).toBe(true);
  });

  it('the volume file: local by default, round trip, mode 0600, unknown format refused', async () => {
    expect(await right(readVolumeSettings(dir))).toEqual({ type: 'local' });
    await right(writeVolumeSettings(dir, { type: 's3', bucketConfigurationId: 'abc', prefix: 'p/' }));
    expect(await right(readVolumeSettings(dir))).toEqual({ type: 's3', bucketConfigurationId: 'abc', prefix: 'p/' });
    expect((await fs.stat(path.join(dir, 'volume.json'))).mode & 0o777).toBe(0o600);
    await fs.writeFile(path.join(dir, 'volume.json'), JSON.stringify({ format: 9, volume: { type: 'local' } }));
    expect((await left(readVolumeSettings(dir)))._tag).toBe('Failed');
    await fs.writeFile(path.join(dir, 'volume.json'), JSON.stringify({ format: 1, volume: { type: 'ftp' } }));
    expect((await left(readVolumeSettings(dir)))._tag).toBe('Failed');
  });

  it('bucket configurations: stored once, reused by id and by values, never listed with secrets', async () => {
    const file = path.join(dir, 'etc', 'buckets.json');
    const first = await right(resolveBucket(file, FULL, 1000));
    expect(first.stored).toBe(false);
    await right(saveBucket(file, first.bucket, { prefix: 'server1/', serverId: 's1', backupPath: '/b1' }));
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);

    const again = await right(resolveBucket(file, FULL, 2000));
    expect(again).toEqual({ bucket: { ...first.bucket, uses: [{ prefix: 'server1/', serverId: 's1', backupPath: '/b1' }] }, stored: true });
    const byId = await right(resolveBucket(file, { bucketConfigurationId: first.bucket.id }, 3000));
    expect(byId.bucket.id).toBe(first.bucket.id);
    await right(saveBucket(file, byId.bucket, { prefix: 'server2/', serverId: 's2', backupPath: '/b2' }));

    const listed = await right(listBucketSummaries(file));
    expect(listed).toHaveLength(1);
    expect(listed[0]?.prefixes.map((p) => p.prefix)).toEqual(['server1/', 'server2/']);
    expect(JSON.stringify(listed)).not.toContain(FULL.secret);
    expect(JSON.stringify(listed)).not.toContain(FULL.accessKey);

    await right(releaseBucketUse(file, first.bucket.id, '/b1'));
    expect((await right(readBuckets(file)))[0]?.uses.map((u) => u.serverId)).toEqual(['s2']);
  });

  it('bucket options: missing ones, unknown ids and clashing ids are usage errors without secrets', async () => {
    const file = path.join(dir, 'buckets.json');
    const missing = await left(resolveBucket(file, { ...FULL, region: undefined }, 0));
    expect(missing._tag).toBe('Usage');
    expect(missing.message).toContain('--region');
    expect((await left(resolveBucket(file, {}, 0)))._tag).toBe('Usage');
    expect((await left(resolveBucket(file, { bucketConfigurationId: 'nope' }, 0)))._tag).toBe('NotFound');

    const named = await right(resolveBucket(file, { ...FULL, bucketConfigurationId: 'main' }, 0));
    expect(named.bucket.id).toBe('main');
    await right(saveBucket(file, named.bucket));
    const clash = await left(resolveBucket(file, { ...FULL, secret: 'other-secret', bucketConfigurationId: 'main' }, 0));
    expect(clash._tag).toBe('Usage');
    expect(clash.message).not.toContain('other-secret');
    expect((await left(resolveBucket(file, { ...FULL, url: 'ftp://x' }, 0)))._tag).toBe('Usage');
  });

  it('a damaged bucket file is an error that does not echo its content', async () => {
    const file = path.join(dir, 'buckets.json');
    await fs.writeFile(file, '{"format":1,"buckets":[{"id":"x","secretKey":"leak-me"}]}');
    const e = await left(readBuckets(file));
    expect(e._tag).toBe('Failed');
    expect(e.message).not.toContain('leak-me');
  });
});
