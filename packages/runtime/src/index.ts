/**
 * @zxbackup/runtime — the composition shared by the CLI and the service: it opens a backup
 * path for reading or writing (lock, metadata store, transaction ids, blob volume), builds the
 * source and restore target from their URIs, validates configuration attributes, parses
 * dates, and runs long tasks as persisted operations. It may import every package but no app.
 */
export * from './lib/errors';
export * from './lib/attributes';
export * from './lib/dates';
export * from './lib/source-uri';
export * from './lib/session';
export * from './lib/operation-runner';
export * from './lib/connectors';
export {
  VolumeSettings,
  BucketConfiguration,
  VOLUME_FILE,
  BUCKETS_FILE_ENV,
  DEFAULT_BUCKETS_FILE,
  bucketsFilePath,
  readVolumeSettings,
  listBucketSummaries,
  openConfiguredVolume,
  describeVolume,
  type BucketSummary,
  type BucketOptions,
} from './lib/volume-config';
export {
  EncryptionSettings,
  createEncryptionKeyFile,
  readEncryptionKeyFile,
} from './lib/encryption-keys';
export { makeMountVolume, type MountVolume, type MountVolumeStatus, type MountVolumeOptions } from './lib/mount-volume';
export { uploadMetadataArchives, ARCHIVES_KEPT_PER_ACCOUNT, type MetadataUploadSummary, type MetadataUploadOptions } from './lib/metadata-archives';
export { setBackupVolume, type VolumeTargetSpec, type SetVolumeSummary } from './lib/volume-setup';
export { planVolumeMigration, executeVolumeMigrationPlan, type VolumeMigrationPlan, type VolumeMigrationResult } from './lib/volume-migration';
export { retrieveMetadataFromArchive, type RetrieveSummary, type RetrieveOptions } from './lib/disaster-recovery';
export * from './lib/scans';
export * from './lib/maintenance';
export * from './lib/notifications';
