import { createHash } from 'node:crypto';
import { Transform, pipeline, type Readable } from 'node:stream';
import { VolumeStreamError, type Digest, type VolumeError } from '@zxbackup/volume-contract';

/**
 * Pipes `source` through a SHA-256 check: the returned stream fails with a `VolumeStreamError`
 * (`BlobCorrupt`) at its end when the bytes do not hash to `digest`, and with
 * `VolumeStreamError(mapSourceError(e))` when the source fails.
 */
export const verifiedStream = (
  source: Readable,
  digest: Digest,
  op: string,
  mapSourceError: (e: unknown) => VolumeError,
): Readable => {
  const hash = createHash('sha256');
  let size = 0;
  const verifier = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      const actual = hash.digest('hex');
      if (actual === digest) cb();
      else
        cb(
          new VolumeStreamError({
            _tag: 'BlobCorrupt',
            op,
            key: digest,
            cause: new Error(`content of ${size} bytes hashes to ${actual}`),
          }),
        );
    },
  });
  const fail = (e: unknown): void => void verifier.destroy(e instanceof VolumeStreamError ? e : new VolumeStreamError(mapSourceError(e)));
  // A source that failed before we were called (a decrypting stream may fail on its first
  // chunk at once) emits no more 'error' events: report it all the same.
  if (source.errored !== null && source.errored !== undefined) {
    fail(source.errored);
    return verifier;
  }
  // Registered before pipeline's own listener, so the consumer sees our tagged error.
  source.once('error', fail);
  pipeline(source, verifier, () => undefined); // errors reach the consumer through `verifier`
  return verifier;
};

/** Counts and hashes what passes through (the digest of a put, computed while streaming). */
export const makeHasher = (): { readonly stream: Transform; readonly result: () => { digest: string; size: number } } => {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, result: () => ({ digest: hash.digest('hex'), size }) };
};
