import * as aws4 from 'aws4';

/** Where the store is and who signs: what a presigned request needs. */
export interface SigningStore {
  readonly endPoint: string;
  readonly port: number;
  readonly useSSL: boolean;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  readonly pathStyle: boolean;
}

/** RFC 3986 encoding of one path segment of a key, as SigV4 wants it. */
const encodeSegment = (segment: string): string =>
  encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * A presigned GET URL (SigV4, signed in the query string, valid for `expiresSeconds`), made with
 * `aws4`: a restore's packs are fetched through such URLs, and the minio SDK's own presigning
 * would mean loading the whole SDK (~0.15-0.4 s of a restore's start, on its critical path) for
 * four HMACs. Path-style only (`/bucket/key`), which every S3-compatible server accepts; a
 * store configured for virtual-hosted requests is signed by minio instead (`undefined` here).
 */
export const presignedGetUrl = (store: SigningStore, bucket: string, key: string, expiresSeconds: number): string | undefined => {
  if (!store.pathStyle) return undefined;
  const host = store.port === (store.useSSL ? 443 : 80) ? store.endPoint : `${store.endPoint}:${store.port}`;
  const path = `/${encodeSegment(bucket)}/${key.split('/').map(encodeSegment).join('/')}?X-Amz-Expires=${expiresSeconds}`;
  const signed = aws4.sign(
    { host, path, method: 'GET', service: 's3', region: store.region, signQuery: true },
    { accessKeyId: store.accessKey, secretAccessKey: store.secretKey },
  );
  return `${store.useSSL ? 'https' : 'http'}://${host}${signed.path ?? path}`;
};
