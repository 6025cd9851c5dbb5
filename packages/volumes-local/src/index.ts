/**
 * @zxbackup/volumes-local — the blob volume on a local directory or an NFS/FUSE mount:
 * `<root>/<xx>/<digest>` files with a small header (raw or brotli), written through temp files
 * and renames, made durable by group commit (`flush`). Implements `BlobVolume` from
 * @zxbackup/volume-contract and imports nothing else of ours.
 */
export { makeLocalVolume, type LocalVolume, type LocalVolumeOptions } from './lib/local-volume';
export { stopIoWorkers } from './lib/io-pool';
