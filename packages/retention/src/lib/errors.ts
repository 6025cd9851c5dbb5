import type { StoreError } from '@zxbackup/item-store';
import { describeVolumeError, type VolumeError } from '@zxbackup/volume-contract';

/**
 * Failures of retention, purge and coherency check. The `_tag`s are the contract; `message`
 * is for people. Problems found by a coherency check are not errors: they are the report.
 */
export type RetentionError =
  /** A retention attribute does not hold a whole number of days (`key` names the attribute). */
  | { readonly _tag: 'InvalidPolicy'; readonly op: string; readonly key: string; readonly message: string }
  /** The metadata store failed; `cause` is its error. */
  | { readonly _tag: 'StoreFailed'; readonly op: string; readonly key?: string; readonly message: string; readonly cause: StoreError }
  /** The blob volume failed; `cause` is its error. */
  | { readonly _tag: 'VolumeFailed'; readonly op: string; readonly key?: string; readonly message: string; readonly cause: VolumeError }
  /** A blob could not be copied to quarantine; it was left in place. */
  | { readonly _tag: 'QuarantineFailed'; readonly op: string; readonly key: string; readonly message: string; readonly cause?: unknown };

export type RetentionErrorTag = RetentionError['_tag'];

export const storeFailed =
  (op: string, key?: string) =>
  (cause: StoreError): RetentionError => ({
    _tag: 'StoreFailed',
    op,
    ...(key === undefined ? {} : { key }),
    message: `metadata store failed during ${op}${key === undefined ? '' : ` (${key})`}: ${cause.message}`,
    cause,
  });

export const volumeFailed =
  (op: string, key?: string) =>
  (cause: VolumeError): RetentionError => ({
    _tag: 'VolumeFailed',
    op,
    ...(key === undefined ? {} : { key }),
    message: `blob volume failed during ${op}: ${describeVolumeError(cause)}`,
    cause,
  });

export const causeText = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === 'object' && cause !== null && 'message' in cause ? String((cause as { message: unknown }).message) : String(cause);
