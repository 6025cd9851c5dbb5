/**
 * @zxbackup/volume-contract — the one storage interface for blobs (`BlobVolume`), its error
 * tags and digest type. Volumes (local, S3) implement it; scanners, restore and retention use
 * it. Imports nothing of ours. Test helpers (in-memory volume, contract suite) are exported
 * from `@zxbackup/volume-contract/testing`.
 */
export type { BlobVolume, BlobFile, ReadHints, PutResult, PutOptions, PutFileOptions, PutFileResult, BlobStat, VolumeSupports } from './lib/blob-volume';
export { headLength, type HeadEnd } from './lib/head';
export { openSource, openSourceSync } from './lib/source-file';
export { putFileThroughStream, readWholeThroughStream, sourceUnreadable, writeToFileThroughGet } from './lib/put-file';
export { Digest, digestShard } from './lib/digest';
export type { VolumeError, VolumeErrorTag } from './lib/errors';
export { VolumeStreamError, describeVolumeError } from './lib/errors';
