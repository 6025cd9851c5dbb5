/**
 * @zxbackup/volume-contract/testing — helpers for specs, never for production code: an honest
 * in-memory `BlobVolume` and `describeVolumeContract`, the jest suite that every volume
 * implementation runs. Needs jest globals (import it from `*.spec.ts` files only).
 */
export { makeMemoryVolume, type MemoryVolume, type MemoryVolumeOptions } from './lib/memory-volume';
export {
  describeVolumeContract,
  type VolumeContractFixture,
  expectRight,
  expectLeft,
  readAll,
  streamOf,
  sha256Hex,
  pseudoRandomBytes,
  mailLikeText,
} from './lib/volume-contract-suite';
