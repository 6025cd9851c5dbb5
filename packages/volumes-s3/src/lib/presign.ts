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

const objectPath = (bucket: string, key: string): string => `/${encodeSegment(bucket)}/${key.split('/').map(encodeSegment).join('/')}`;

const hostOf = (store: SigningStore): string => (store.port === (store.useSSL ? 443 : 80) ? store.endPoint : `${store.endPoint}:${store.port}`);

/** Signs `path` (with its query) for `method`, in the query string. */
const sign = (store: SigningStore, method: 'GET' | 'PUT', path: string): string => {
  const host = hostOf(store);
  const signed = aws4.sign(
    { host, path, method, service: 's3', region: store.region, signQuery: true },
    { accessKeyId: store.accessKey, secretAccessKey: store.secretKey },
  );
  return `${store.useSSL ? 'https' : 'http'}://${host}${signed.path ?? path}`;
};

/**
 * A presigned bucket-level GET with these query parameters (a ListObjectsV2 page), path-style
 * only like `presignedGetUrl`: listing the bucket's index objects is what a new machine does
 * first, and through the SDK it meant loading it (~0.15 s) for one request.
 */
export const presignedBucketUrl = (store: SigningStore, bucket: string, query: Readonly<Record<string, string>>, expiresSeconds: number): string | undefined => {
  if (!store.pathStyle) return undefined;
  const params = Object.entries({ ...query, 'X-Amz-Expires': String(expiresSeconds) })
    .map(([k, v]) => `${encodeSegment(k)}=${encodeSegment(v)}`)
    .join('&');
  return sign(store, 'GET', `/${encodeSegment(bucket)}?${params}`);
};

/**
 * A presigned GET URL (SigV4, signed in the query string, valid for `expiresSeconds`), made with
 * `aws4`: a restore's packs are fetched through such URLs, and the minio SDK's own presigning
 * would mean loading the whole SDK (~0.15-0.4 s of a restore's start, on its critical path) for
 * four HMACs. Path-style only (`/bucket/key`), which every S3-compatible server accepts; a
 * store configured for virtual-hosted requests is signed by minio instead (`undefined` here).
 */
export const presignedGetUrl = (store: SigningStore, bucket: string, key: string, expiresSeconds: number): string | undefined => {
  if (!store.pathStyle) return undefined;
  return sign(store, 'GET', `${objectPath(bucket, key)}?X-Amz-Expires=${expiresSeconds}`);
};

/**
 * A presigned PUT URL (SigV4 in the query string, payload unsigned, as minio's
 * `presignedPutObject`): the upload worker sends packs through it, with their Content-MD5,
 * which the store checks. Path-style only, like `presignedGetUrl`.
 */
export const presignedPutUrl = (store: SigningStore, bucket: string, key: string, expiresSeconds: number): string | undefined => {
  if (!store.pathStyle) return undefined;
  return sign(store, 'PUT', `${objectPath(bucket, key)}?X-Amz-Expires=${expiresSeconds}`);
};
