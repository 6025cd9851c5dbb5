import { pipeline, type Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
import type { EncryptionConfig } from './config';
import {
  EncryptionFailure,
  decryptStream,
  encryptStream,
  encryptedSize,
  encryptionErrorOf,
  loadKeyFile,
  plaintextSize,
  type EncryptionError,
  type EncryptionKey,
} from './encryption';
import type { S3Error } from './errors';
import type { ListedObject, ObjectStore } from './object-store';

/** An encryption failure as an object-store error: `VolumeIOError`, the `EncryptionFailure` its cause. */
export const encryptionS3Error = (op: string, key: string | undefined, e: EncryptionError): S3Error => ({
  _tag: 'VolumeIOError',
  op,
  ...(key === undefined ? {} : { key }),
  cause: new EncryptionFailure(e),
});

const sizeOf = (op: string, key: string, stored: number): E.Either<S3Error, number> => {
  const size = plaintextSize(stored);
  return size === undefined
    ? E.left(
        encryptionS3Error(op, key, {
          _tag: 'CiphertextCorrupt',
          op,
          key,
          reason: `its size (${stored} bytes) is impossible for an encrypted object: it is not encrypted, or truncated`,
        }),
      )
    : E.right(size);
};

/**
 * Encrypts every object `put` into `inner` and decrypts every `get` (see `encryption.ts`); `stat`
 * and `list` report plaintext sizes; user metadata pass unchanged (the `sha256` the uploader
 * checks stays the plaintext's digest). `get` reads the header before it answers, so a wrong
 * key or an unencrypted object is a Left (`VolumeIOError` caused by an `EncryptionFailure`);
 * a damaged chunk fails the stream with an `EncryptionFailure` when it is reached.
 */
export const makeEncryptedObjectStore = (inner: ObjectStore, key: EncryptionKey): ObjectStore => {
  const get = (k: string): TE.TaskEither<S3Error, Readable> =>
    pipe(
      inner.get(k),
      TE.flatMap(
        (body) => () =>
          new Promise<E.Either<S3Error, Readable>>((resolve) => {
            const plain = decryptStream(key, { name: k, onHeader: () => resolve(E.right(plain)) });
            // Once the header was read, later failures reach the consumer through `plain`.
            pipeline(body, plain, (err) => {
              if (err === undefined || err === null) return resolve(E.right(plain)); // an object shorter than a read: already answered
              const enc = encryptionErrorOf(err);
              resolve(E.left(enc !== undefined ? encryptionS3Error('get', k, enc) : { _tag: 'VolumeUnavailable', op: 'get', key: k, cause: err }));
            });
          }),
      ),
    );

  // A listing is of keys: an object this wrapper did not write (its size impossible for the
  // format) keeps its stored size here, and fails where it is read (`stat`, `get`).
  const list = (prefix: string, visit: (o: ListedObject) => void | Promise<void>): TE.TaskEither<S3Error, number> =>
    inner.list(prefix, (o) => visit({ ...o, size: plaintextSize(o.size) ?? o.size }));

  return {
    stat: (k) =>
      pipe(
        inner.stat(k),
        TE.flatMap((info) =>
          info === undefined ? TE.right(undefined) : pipe(TE.fromEither(sizeOf('stat', k, info.size)), TE.map((size) => ({ ...info, size }))),
        ),
      ),
    put: (k, body, size, metadata) => {
      const sealed = encryptStream(key);
      // A failing body fails `sealed`, which the inner upload reads: the put fails.
      pipeline(body, sealed, () => undefined);
      return inner.put(k, sealed, encryptedSize(size), metadata);
    },
    get,
    remove: (k) => inner.remove(k),
    list,
  };
};

/** `inner`, or `inner` wrapped with the configured key (loaded from its file, its id checked). */
export const withEncryption = (
  inner: ObjectStore,
  encryption: EncryptionConfig | undefined,
): TE.TaskEither<EncryptionError, ObjectStore> =>
  encryption === undefined
    ? TE.right(inner)
    : pipe(
        loadKeyFile(encryption.keyFile),
        TE.flatMap((key) =>
          encryption.keyId !== undefined && encryption.keyId !== key.id
            ? TE.left<EncryptionError, EncryptionKey>({
                _tag: 'KeyFileError',
                op: 'loadKey',
                key: encryption.keyFile,
                reason: `holds the key ${key.id}, but this volume is encrypted with the key ${encryption.keyId}: restore the right key file`,
              })
            : TE.right(key),
        ),
        TE.map((key) => makeEncryptedObjectStore(inner, key)),
      );

/** How a failed read of blob `d` from the store is reported: a damaged ciphertext is `BlobCorrupt`. */
export const storeReadError = (d: Digest, e: unknown): VolumeError => {
  const enc = encryptionErrorOf(e);
  if (enc === undefined) return { _tag: 'VolumeUnavailable', op: 'get', key: d, cause: e };
  return enc._tag === 'CiphertextCorrupt' ? { _tag: 'BlobCorrupt', op: 'get', key: d, cause: e } : { _tag: 'VolumeIOError', op: 'get', key: d, cause: e };
};
