import type { VolumeError } from '@zxbackup/volume-contract';

/** A failure of the caller's content stream, kept apart from our own file-system errors. */
export class SourceStreamError extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.name = 'SourceStreamError';
  }
}

export const errnoOf = (cause: unknown): string | undefined =>
  typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;

// The path, the mount or its permissions are gone: retrying the same call will not help until
// an operator remounts or fixes the path (ENOTCONN: dead FUSE endpoint; ESTALE: NFS handle).
const UNAVAILABLE = new Set(['ENOENT', 'ENOTDIR', 'ESTALE', 'ENOTCONN', 'ENODEV', 'ENXIO', 'EROFS', 'EACCES', 'EPERM']);
const FULL = new Set(['ENOSPC', 'EDQUOT']);

/**
 * Maps a failure of a file-system call to our tags. ENOENT means "volume gone" here: callers
 * that can meet a legitimately missing blob test for it before calling this.
 */
export const fromFsError = (op: string, cause: unknown, key?: string): VolumeError => {
  if (cause instanceof SourceStreamError) return { _tag: 'VolumeIOError', op, key, cause: cause.cause };
  const code = errnoOf(cause);
  if (code !== undefined && FULL.has(code)) return { _tag: 'VolumeFull', op, key, cause };
  if (code !== undefined && UNAVAILABLE.has(code)) return { _tag: 'VolumeUnavailable', op, key, cause };
  return { _tag: 'VolumeIOError', op, key, cause };
};
