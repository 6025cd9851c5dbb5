import type { Digest, VolumeError } from '@zxbackup/volume-contract';

/**
 * Failures of an object-store call. `VolumeUnavailable` and `VolumeIOError` mean the same as in
 * `VolumeError`; `ObjectNotFound` is a missing key (the volume turns it into `BlobNotFound`).
 */
export type S3Error =
  | { readonly _tag: 'ObjectNotFound'; readonly op: string; readonly key: string; readonly cause?: unknown }
  | { readonly _tag: 'VolumeUnavailable'; readonly op: string; readonly key?: string; readonly cause: unknown }
  | { readonly _tag: 'VolumeIOError'; readonly op: string; readonly key?: string; readonly cause: unknown };

// The store cannot be reached or is overloaded: worth retrying later.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EPIPE',
  'UploadTimeout',
  'ServiceUnavailable',
  'SlowDown',
  'RequestTimeout',
]);
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound']);

const field = (e: unknown, name: string): unknown =>
  typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[name] : undefined;

const codesOf = (e: unknown): string[] => {
  const own = [field(e, 'code'), field(e, 'errno')].filter((c): c is string => typeof c === 'string');
  // Node reports a refused connection to a dual-stack name as an AggregateError of attempts.
  const inner = field(e, 'errors');
  return Array.isArray(inner) ? [...own, ...inner.flatMap(codesOf)] : own;
};

/** An Error carrying only the SDK error's code, status and message, with every secret blanked. */
export const sanitizeCause = (e: unknown, secrets: readonly string[]): Error => {
  let message = e instanceof Error ? e.message : String(e);
  for (const s of secrets) if (s.length > 0) message = message.split(s).join('***');
  const code = codesOf(e)[0];
  const statusCode = field(e, 'statusCode') ?? field(field(e, 'response'), 'statusCode');
  return Object.assign(new Error(code && !message.includes(code) ? `${code}: ${message}` : message), {
    ...(code === undefined ? {} : { code }),
    ...(typeof statusCode === 'number' ? { statusCode } : {}),
  });
};

/**
 * A non-200 answer to a request we sent ourselves (presigned, not through minio): the S3 error
 * document's `<Code>` (what `toS3Error` maps: NoSuchKey, SlowDown, ...) and `<Message>`, as minio
 * reports them.
 */
export const storeAnswerError = (statusCode: number, body: string): Error => {
  const code = /<Code>([^<]*)<\/Code>/.exec(body)?.[1] ?? `HTTP${statusCode}`;
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1] ?? `the store answered ${statusCode}`;
  return Object.assign(new Error(message), { code, statusCode });
};

/** The one place an SDK failure becomes one of our tags. */
export const toS3Error = (op: string, key: string | undefined, e: unknown, secrets: readonly string[]): S3Error => {
  const cause = sanitizeCause(e, secrets);
  const codes = codesOf(e);
  const status = field(cause, 'statusCode');
  if (codes.some((c) => NOT_FOUND_CODES.has(c)) && key !== undefined) return { _tag: 'ObjectNotFound', op, key, cause };
  // minio's own retry wrapper replaces a 5xx with a plain "Retryable HTTP status: 503" Error.
  const unavailable =
    codes.some((c) => UNAVAILABLE_CODES.has(c)) ||
    status === 502 ||
    status === 503 ||
    status === 504 ||
    /Retryable HTTP status: 50[234]/.test(cause.message);
  const at = key === undefined ? {} : { key };
  return unavailable ? { _tag: 'VolumeUnavailable', op, ...at, cause } : { _tag: 'VolumeIOError', op, ...at, cause };
};

/** A store failure on a blob, as a volume reports it. */
export const toVolumeError = (e: S3Error, digest: Digest): VolumeError =>
  e._tag === 'ObjectNotFound'
    ? { _tag: 'BlobNotFound', op: e.op, key: digest, cause: e.cause }
    : { ...e, key: digest };

/**
 * A store failure on an object the volume itself wrote (a pack, an index object): a missing
 * one is an I/O failure of the volume, not a missing blob.
 */
export const objectFailure = (e: S3Error, key: string): VolumeError =>
  e._tag === 'ObjectNotFound' ? { _tag: 'VolumeIOError', op: e.op, key, cause: e.cause } : { ...e, key };

/** What a rejected promise carried: a `VolumeError` as it is, anything else as a `VolumeIOError` of `op`. */
export const asVolumeError =
  (op: string, key?: string) =>
  (e: unknown): VolumeError =>
    typeof e === 'object' && e !== null && '_tag' in e ? (e as VolumeError) : { _tag: 'VolumeIOError', op, ...(key === undefined ? {} : { key }), cause: e };

/** Local cache failures: a full disk is `VolumeFull`, the rest `VolumeIOError`. */
export const fsError = (op: string, key: string | undefined, e: unknown): VolumeError => {
  const code = field(e, 'code');
  const at = key === undefined ? {} : { key };
  return code === 'ENOSPC' || code === 'EDQUOT'
    ? { _tag: 'VolumeFull', op, ...at, cause: e }
    : { _tag: 'VolumeIOError', op, ...at, cause: e };
};
