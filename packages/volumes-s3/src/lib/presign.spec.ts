import { Client } from 'minio';
import { presignedBucketUrl, presignedGetUrl, presignedPutUrl, type SigningStore } from './presign';

// The same request signed by minio's presignedGetObject and by presignedGetUrl, at the same
// instant: the signature covers the method, host, path, query and scope, so equal signatures
// mean an equal request. (The real server accepting these URLs is in s3-volume.int.spec.ts.)
const store: SigningStore = {
  endPoint: '127.0.0.1',
  port: 9000,
  useSSL: false,
  accessKey: 'test:tester',
  secretKey: 's3cr3t/with+signs',
  region: 'us-east-1',
  pathStyle: true,
};
const at = new Date(Date.UTC(2026, 10, 26, 12, 34, 56));

const minioUrl = (s: SigningStore, bucket: string, key: string): Promise<string> =>
  new Client({ ...s, retryOptions: { disableRetry: true } }).presignedGetObject(bucket, key, 900, {}, at);

const parts = (url: string) => {
  const u = new URL(url);
  return { origin: u.origin, path: u.pathname, query: Object.fromEntries([...u.searchParams.entries()].sort(([a], [b]) => a.localeCompare(b))) };
};

// Both signers sign at the same (frozen) instant.
beforeEach(() => {
  jest.useFakeTimers({ now: at });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('presignedGetUrl', () => {
  it.each([
    ['a pack key', 'zxb-bench', 'px/packs/a7/0123456789abcdef0123456789abcdea7'],
    ['a key with characters to encode', 'b-1', "dir/a b+c=d&e(f)!'*~.txt"],
    ['another region and port', 'bucket.two', 'k'],
  ])('signs %s as minio does', async (_label, bucket, key) => {
    const s = _label === 'another region and port' ? { ...store, region: 'eu-west-3', port: 8443, useSSL: true } : store;
    const ours = presignedGetUrl(s, bucket, key, 900);
    expect(ours).toBeDefined();
    expect(parts(ours ?? '')).toEqual(parts(await minioUrl(s, bucket, key)));
  });

  it('leaves virtual-hosted stores to minio', () => {
    expect(presignedGetUrl({ ...store, pathStyle: false }, 'bucket', 'key', 900)).toBeUndefined();
  });

  it('drops the port only where it is the scheme default', () => {
    expect(presignedGetUrl({ ...store, port: 80 }, 'b-1', 'k', 60)).toMatch(/^http:\/\/127\.0\.0\.1\/b-1\/k\?/);
    expect(presignedGetUrl({ ...store, port: 443, useSSL: true }, 'b-1', 'k', 60)).toMatch(/^https:\/\/127\.0\.0\.1\/b-1\/k\?/);
    expect(presignedGetUrl(store, 'b-1', 'k', 60)).toMatch(/^http:\/\/127\.0\.0\.1:9000\/b-1\/k\?.*X-Amz-Expires=60/);
  });
});

describe('presignedBucketUrl', () => {
  it.each([
    ['a first page', { 'list-type': '2', prefix: 'srv1/index/' }],
    ['a next page of a prefix with characters to encode', { 'list-type': '2', prefix: "a b+c=d&e(f)!'*~/", 'continuation-token': '1/abc+def==' }],
  ])('signs %s as minio does', async (_label, query) => {
    const ours = presignedBucketUrl(store, 'b-1', query, 900);
    expect(ours).toBeDefined();
    const theirs = await new Client({ ...store, retryOptions: { disableRetry: true } }).presignedUrl('GET', 'b-1', '', 900, query, at);
    expect(parts(ours ?? '')).toEqual(parts(theirs));
  });

  it('leaves virtual-hosted stores to minio', () => {
    expect(presignedBucketUrl({ ...store, pathStyle: false }, 'bucket', { 'list-type': '2' }, 900)).toBeUndefined();
  });
});

describe('presignedPutUrl', () => {
  it.each([
    ['a pack key', 'zxb-bench', 'px/packs/a7/0123456789abcdef0123456789abcdea7'],
    ['a key with characters to encode', 'b-1', "dir/a b+c=d&e(f)!'*~.txt"],
  ])('signs %s as minio does', async (_label, bucket, key) => {
    const ours = presignedPutUrl(store, bucket, key, 900);
    expect(ours).toBeDefined();
    const theirs = await new Client({ ...store, retryOptions: { disableRetry: true } }).presignedUrl('PUT', bucket, key, 900, {}, at);
    expect(parts(ours ?? '')).toEqual(parts(theirs));
  });

  it('signs a PUT, not a GET of the same key', () => {
    expect(parts(presignedPutUrl(store, 'b-1', 'k', 900) ?? '').query['X-Amz-Signature']).not.toBe(
      parts(presignedGetUrl(store, 'b-1', 'k', 900) ?? '').query['X-Amz-Signature'],
    );
  });

  it('leaves virtual-hosted stores to minio', () => {
    expect(presignedPutUrl({ ...store, pathStyle: false }, 'bucket', 'key', 900)).toBeUndefined();
  });
});
