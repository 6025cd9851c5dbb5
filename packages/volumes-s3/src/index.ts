/**
 * @zxbackup/volumes-s3 — a `BlobVolume` on an S3-compatible bucket (minio client) with a local
 * write cache and a background uploader, plus the small bucket and metadata-archive helpers
 * the S3 backup needs. Owns the `minio` SDK; imports only `@zxbackup/volume-contract`.
 */
export { makeS3Volume } from './lib/s3-volume';
export type { S3Volume, S3VolumeStatus } from './lib/s3-volume';
export {
  S3VolumeConfig,
  S3StoreConfig,
  RetryPolicy,
  decodeS3VolumeConfig,
  decodeS3StoreConfig,
  DEFAULT_PART_SIZE,
  MIN_PART_SIZE,
} from './lib/config';
export type { S3Error } from './lib/errors';
export {
  ensureBucket,
  listBuckets,
  accountArchiveKey,
  uploadArchive,
  listArchives,
  downloadArchive,
} from './lib/archives';
export type { BucketInfo, ArchiveInfo } from './lib/archives';
