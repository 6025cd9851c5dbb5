import * as path from 'node:path';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import { describeEncryptionError, encryptionErrorOf, generateKeyFile, loadKeyFile, type EncryptionError } from '@zxbackup/volumes-s3';
import { appError, type AppError } from './errors';

/*
 * The client-side encryption of an S3 volume (blobs and metadata archives) as the runtime keeps
 * it: `volume.json` holds the key FILE's absolute path and the key's fingerprint, never the key.
 * Without the key file the backup cannot be read: the operator keeps a copy off the server.
 */

export const EncryptionSettings = t.type({
  /** Absolute path of the key file (one line of base64, mode 0600). */
  keyFile: t.string,
  /** The key's fingerprint: a replaced key file is refused before anything is read. */
  keyId: t.string,
});
export type EncryptionSettings = t.TypeOf<typeof EncryptionSettings>;

/** An encryption failure as a command error: a wrong or unusable key is the operator's to fix. */
export const fromEncryptionError = (e: EncryptionError): AppError =>
  appError(e._tag === 'CiphertextCorrupt' ? 'Failed' : 'Usage', describeEncryptionError(e));

/** The `AppError` for `e` when an encryption failure is inside it. */
export const encryptionAppError = (e: unknown): AppError | undefined => {
  const enc = encryptionErrorOf(e);
  return enc === undefined ? undefined : fromEncryptionError(enc);
};

/** Loads `file` (validating it) and returns what `volume.json` records. */
export const readEncryptionKeyFile = (file: string): TE.TaskEither<AppError, EncryptionSettings> => {
  const keyFile = path.resolve(file);
  return pipe(
    loadKeyFile(keyFile),
    TE.mapLeft(fromEncryptionError),
    TE.map((key) => ({ keyFile, keyId: key.id })),
  );
};

/** `zxbackup generateEncryptionKey <file>`: a new random key, mode 0600; an existing file is never overwritten. */
export const createEncryptionKeyFile = (file: string): TE.TaskEither<AppError, EncryptionSettings> => {
  const keyFile = path.resolve(file);
  return pipe(
    generateKeyFile(keyFile),
    TE.mapLeft(fromEncryptionError),
    TE.map((key) => ({ keyFile, keyId: key.id })),
  );
};

/** The fingerprint in the header of an encrypted object's first bytes; `undefined` for anything else. */
export const sealedKeyId = (firstBytes: Buffer): string | undefined =>
  firstBytes.length >= 16 && firstBytes.subarray(0, 4).toString('latin1') === 'ZXBE' ? firstBytes.subarray(8, 16).toString('hex') : undefined;
