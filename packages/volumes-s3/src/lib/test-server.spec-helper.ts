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
