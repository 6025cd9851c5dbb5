import type { S3StoreConfig } from './config';

/**
 * The S3 server the integration specs talk to: `tools/services/s3-server.sh start` prints these
 * S3_* variables; the defaults are that script's.
 */
export const testServer = (bucket: string, prefix = ''): S3StoreConfig => {
  const env = (k: string, d: string): string => process.env[k] ?? d;
  return {
    endPoint: env('S3_ENDPOINT', '127.0.0.1'),
    port: Number(env('S3_PORT', '9000')),
    useSSL: env('S3_USE_SSL', 'false') === 'true',
    accessKey: env('S3_ACCESS_KEY', 'test:tester'),
    secretKey: env('S3_SECRET_KEY', 'testing'),
    region: env('S3_REGION', 'us-east-1'),
    bucket,
    prefix,
  };
};

/** The stored bytes of one uploaded blob, cut from its pack object on the server. */
export const storedBlob = async (
  client: import('minio').Client,
  bucket: string,
  volume: import('./s3-volume').S3Volume,
  digest: import('@zxbackup/volume-contract').Digest,
): Promise<{ key: string; offset: number; bytes: Buffer; pack: Buffer }> => {
  const r = await volume.locate(digest)();
  if (r._tag === 'Left' || r.right === undefined) throw new Error(`blob ${digest} is not in a pack`);
  const { key, offset, length } = r.right;
  const chunks: Buffer[] = [];
  for await (const c of await client.getObject(bucket, key)) chunks.push(c as Buffer);
  const pack = Buffer.concat(chunks);
  return { key, offset, bytes: pack.subarray(offset, offset + length), pack };
};

/** Flips one byte of a blob inside its pack object on the server (at `at` from the blob's start). */
export const corruptStoredBlob = async (
  client: import('minio').Client,
  bucket: string,
  volume: import('./s3-volume').S3Volume,
  digest: import('@zxbackup/volume-contract').Digest,
  at: (length: number) => number = (n) => Math.floor(n / 2),
): Promise<void> => {
  const { key, offset, bytes, pack } = await storedBlob(client, bucket, volume, digest);
  const i = offset + at(bytes.length);
  pack[i] = (pack[i] ?? 0) ^ 1;
  await client.putObject(bucket, key, pack, pack.length);
};
