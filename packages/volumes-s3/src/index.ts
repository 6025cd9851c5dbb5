/**
 * @zxbackup/volumes-s3 — a `BlobVolume` on an S3-compatible bucket (minio client) with a local
 * write cache and a background uploader, plus the small bucket and metadata-archive helpers
 * the S3 backup needs, and the optional client-side encryption (AES-256-GCM, streaming) of
 * every object it writes. Owns the `minio` SDK; imports only `@zxbackup/volume-contract`.
 */
export { makeS3Volume } from './lib/s3-volume';
export type { S3Volume, S3VolumeStatus } from './lib/s3-volume';
export {
  S3VolumeConfig,
  S3StoreConfig,
  EncryptionConfig,
  RetryPolicy,
  decodeS3VolumeConfig,
  decodeS3StoreConfig,
  DEFAULT_PART_SIZE,
  MIN_PART_SIZE,
} from './lib/config';
export type { S3Error } from './lib/errors';
export {
  EncryptionFailure,
  describeEncryptionError,
  encryptionErrorOf,
  loadKeyFile,
  generateKeyFile,
  parseKeyFile,
  keyFromBytes,
  encryptStream,
  decryptStream,
  encryptedSize,
  plaintextSize,
  CHUNK_SIZE as ENCRYPTION_CHUNK_SIZE,
  HEADER_SIZE as ENCRYPTION_HEADER_SIZE,
} from './lib/encryption';
export type { EncryptionError, EncryptionKey, DecryptOptions } from './lib/encryption';
export { makeEncryptedObjectStore } from './lib/encrypted-object-store';
export type { ObjectStore, ObjectInfo, ListedObject } from './lib/object-store';
export {
  ensureBucket,
  listBuckets,
  accountArchiveKey,
  uploadArchive,
  listArchives,
  downloadArchive,
  removeArchive,
} from './lib/archives';
export type { BucketInfo, ArchiveInfo } from './lib/archives';
