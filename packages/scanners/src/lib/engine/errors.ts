import type { StoreError } from '@zxbackup/item-store';
import type { TxLogError } from '@zxbackup/transaction-log';
import type { VolumeError } from '@zxbackup/volume-contract';
import type { SourceError } from '../source';

/**
 * Failures of the SmartScan / Account Scan / Real Time Scanner. Each wraps the failure of the
 * layer below (`cause`) with the engine step that hit it (`op`) and, when known, the account or
 * item (`key`). The `_tag`s are the contract.
 */
export type EngineError =
  | { readonly _tag: 'EngineStoreError'; readonly op: string; readonly key?: string; readonly cause: StoreError }
  | { readonly _tag: 'EngineVolumeError'; readonly op: string; readonly key?: string; readonly cause: VolumeError }
  | { readonly _tag: 'EngineSourceError'; readonly op: string; readonly key?: string; readonly cause: SourceError }
  | { readonly _tag: 'EngineTxLogError'; readonly op: string; readonly key?: string; readonly cause: TxLogError | unknown }
  /** A bug or an unexpected throw inside the engine or a callback it was given. */
  | { readonly _tag: 'EngineInternalError'; readonly op: string; readonly key?: string; readonly cause: unknown };

export type EngineErrorTag = EngineError['_tag'];

const withKey = (key: string | undefined): { key?: string } => (key === undefined ? {} : { key });

export const engineError = {
  store: (op: string, key?: string) => (cause: StoreError): EngineError => ({ _tag: 'EngineStoreError', op, ...withKey(key), cause }),
  volume: (op: string, key?: string) => (cause: VolumeError): EngineError => ({ _tag: 'EngineVolumeError', op, ...withKey(key), cause }),
  source: (op: string, key?: string) => (cause: SourceError): EngineError => ({ _tag: 'EngineSourceError', op, ...withKey(key), cause }),
  txLog: (op: string, key?: string) => (cause: unknown): EngineError => ({ _tag: 'EngineTxLogError', op, ...withKey(key), cause }),
  internal: (op: string, key?: string) => (cause: unknown): EngineError => ({ _tag: 'EngineInternalError', op, ...withKey(key), cause }),
};

const causeText = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message;
  if (typeof cause === 'object' && cause !== null) {
    const c = cause as { _tag?: unknown; message?: unknown; op?: unknown };
    if (typeof c.message === 'string') return `${String(c._tag ?? 'Error')}: ${c.message}`;
    if (typeof c._tag === 'string') return `${c._tag} during ${String(c.op ?? '?')}`;
  }
  return String(cause);
};

/** One line for people: which step failed, on what, and why. */
export const describeEngineError = (e: EngineError): string =>
  `${e._tag} during ${e.op}${e.key === undefined ? '' : ` (${e.key})`}: ${causeText(e.cause)}`;

/**
 * Thrown inside an `onEvent` callback to abort a source scan; turned back into the Left (or the
 * stop) at the boundary of the account scan. Never escapes the engine.
 */
export class Abort {
  constructor(readonly reason: { readonly error: EngineError } | { readonly stopped: true }) {}
}
