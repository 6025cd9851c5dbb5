import type { Digest } from './digest';

/**
 * Failures of a volume. The `_tag`s are the stable contract every implementation maps to;
 * `cause` keeps the underlying error for logs, and never contains credentials.
 */
export type VolumeError =
  | { readonly _tag: 'BlobNotFound'; readonly op: string; readonly key: Digest; readonly cause?: unknown }
  | { readonly _tag: 'BlobCorrupt'; readonly op: string; readonly key: Digest; readonly cause: unknown }
  | { readonly _tag: 'VolumeUnavailable'; readonly op: string; readonly key?: string; readonly cause: unknown }
  | { readonly _tag: 'VolumeFull'; readonly op: string; readonly key?: string; readonly cause: unknown }
  | { readonly _tag: 'VolumeIOError'; readonly op: string; readonly key?: string; readonly cause: unknown }
  /** `putFile`'s file could not be read: a problem of the caller's file, not of the volume. */
  | { readonly _tag: 'SourceUnreadable'; readonly op: string; readonly key: string; readonly code?: string; readonly cause: unknown };

export type VolumeErrorTag = VolumeError['_tag'];

/** A stream returned by `get` fails with this when the content does not match its digest. */
export class VolumeStreamError extends Error {
  constructor(readonly volumeError: VolumeError) {
    super(describeVolumeError(volumeError));
    this.name = 'VolumeStreamError';
  }
}

const causeText = (cause: unknown): string =>
  cause instanceof Error ? cause.message : cause === undefined ? '' : String(cause);

/** One line for people: what failed, on which blob, and why. */
export const describeVolumeError = (e: VolumeError): string => {
  const where = e.key === undefined ? '' : ` ${e.key}`;
  const why = causeText(e.cause);
  return `${e._tag} during ${e.op}${where}${why ? `: ${why}` : ''}`;
};
