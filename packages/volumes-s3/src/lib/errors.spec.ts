import { sha256Hex } from '@zxbackup/volume-contract/testing';
import { normalizePrefix } from './config';
import { toS3Error, toVolumeError } from './errors';

const secrets = ['test:tester', 's3cr3t'];
const sdkError = (props: Record<string, unknown>, message = 'boom'): Error => Object.assign(new Error(message), props);

describe('toS3Error', () => {
  it.each([
    ['ECONNREFUSED', sdkError({ code: 'ECONNREFUSED' }, 'connect ECONNREFUSED 127.0.0.1:9000')],
    ['ETIMEDOUT', sdkError({ code: 'ETIMEDOUT' })],
    ['an AggregateError of refused attempts', Object.assign(new AggregateError([sdkError({ code: 'ECONNREFUSED' })], 'x'), {})],
    ['ServiceUnavailable', sdkError({ code: 'ServiceUnavailable' })],
    ['HTTP 503', sdkError({ statusCode: 503 })],
    ['our upload watchdog', sdkError({ code: 'UploadTimeout' })],
  ])('%s is VolumeUnavailable', (_label, e) => {
    expect(toS3Error('put', 'k', e, secrets)._tag).toBe('VolumeUnavailable');
  });

  it.each(['NoSuchKey', 'NotFound'])('%s is ObjectNotFound, and BlobNotFound on a volume', (code) => {
    const e = toS3Error('get', 'k', sdkError({ code }), secrets);
    expect(e._tag).toBe('ObjectNotFound');
    const d = sha256Hex(Buffer.from('x'));
    expect(toVolumeError(e, d)).toMatchObject({ _tag: 'BlobNotFound', key: d });
  });

  it.each(['AccessDenied', 'SignatureDoesNotMatch', 'NoSuchBucket', 'InvalidAccessKeyId'])('%s is VolumeIOError', (code) => {
    expect(toS3Error('put', 'k', sdkError({ code }), secrets)._tag).toBe('VolumeIOError');
  });

  it('keeps no credential in the cause, and no other field of the SDK error', () => {
    const raw = sdkError({ code: 'InvalidAccessKeyId', accessKey: 'test:tester', amzRequestid: 'r1' }, 'The key test:tester with secret s3cr3t is unknown');
    const e = toS3Error('stat', 'k', raw, secrets);
    const cause = e.cause as Error & Record<string, unknown>;
    expect(cause.message).not.toContain('test:tester');
    expect(cause.message).not.toContain('s3cr3t');
    expect(cause.message).toContain('InvalidAccessKeyId');
    expect(cause['accessKey']).toBeUndefined();
    expect(JSON.stringify({ ...e, cause: { ...cause, message: cause.message } })).not.toMatch(/tester|s3cr3t/);
  });
});

describe('normalizePrefix', () => {
  it.each([
    ['', ''],
    ['/', ''],
    ['server1', 'server1/'],
    ['/server1/', 'server1/'],
    ['a/b', 'a/b/'],
  ])('%j → %j', (input, out) => expect(normalizePrefix(input)).toBe(out));
});
