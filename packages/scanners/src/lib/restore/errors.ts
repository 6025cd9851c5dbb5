import type { StoreError } from '@zxbackup/item-store';
import type { VolumeError } from '@zxbackup/volume-contract';
import type { SourceError } from '../source';

/**
 * Failures of a restore. Layer failures are wrapped with the restore step (`op`) and what it
 * was working on (`key`); refusals carry a message for people. The `_tag`s are the contract.
 */
export type RestoreError =
  | { readonly _tag: 'RestoreStoreError'; readonly op: string; readonly key?: string; readonly cause: StoreError }
  | { readonly _tag: 'RestoreVolumeError'; readonly op: string; readonly key?: string; readonly cause: VolumeError }
  | { readonly _tag: 'RestoreTargetError'; readonly op: string; readonly key?: string; readonly cause: SourceError }
  /** The destination account already holds folders or messages: a restore never merges into it. */
  | { readonly _tag: 'TargetNotEmpty'; readonly op: string; readonly key: string; readonly message: string }
  | { readonly _tag: 'AccountNotFound'; readonly op: string; readonly key: string; readonly message: string }
  /** No such item, or it did not exist at the instant asked for. */
  | { readonly _tag: 'ItemNotFound'; readonly op: string; readonly key: string; readonly message: string }
  /** An item kind the target cannot take (a contact into a mail store). */
  | { readonly _tag: 'UnsupportedItem'; readonly op: string; readonly key: string; readonly message: string }
  | { readonly _tag: 'RestoreInternalError'; readonly op: string; readonly key?: string; readonly cause: unknown };

export type RestoreErrorTag = RestoreError['_tag'];

const withKey = (key: string | undefined): { key?: string } => (key === undefined ? {} : { key });

export const restoreError = {
  store: (op: string, key?: string) => (cause: StoreError): RestoreError => ({ _tag: 'RestoreStoreError', op, ...withKey(key), cause }),
  volume: (op: string, key?: string) => (cause: VolumeError): RestoreError => ({ _tag: 'RestoreVolumeError', op, ...withKey(key), cause }),
  target: (op: string, key?: string) => (cause: SourceError): RestoreError => ({ _tag: 'RestoreTargetError', op, ...withKey(key), cause }),
  internal: (op: string, key?: string) => (cause: unknown): RestoreError => ({ _tag: 'RestoreInternalError', op, ...withKey(key), cause }),
  refusal: (tag: 'TargetNotEmpty' | 'AccountNotFound' | 'ItemNotFound' | 'UnsupportedItem', op: string, key: string, message: string): RestoreError => ({
    _tag: tag,
    op,
    key,
    message,
  }),
};

/** Raised inside the restore code and turned into the Left at the exported function's boundary. */
export class RestoreAbort {
  constructor(readonly error: RestoreError) {}
}
