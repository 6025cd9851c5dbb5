/**
 * Failures of the transaction log. The `_tag`s are the contract; `message` is for people and
 * names the file, the offset and what to do next.
 */
export type TxLogError =
  /** Another live process (or another handle in this one) holds the directory's lock file. */
  | { readonly _tag: 'LogLocked'; readonly op: string; readonly key: string; readonly message: string; readonly holderPid?: number }
  /** Bytes on disk are not what we wrote: bad CRC or framing before the tail, gaps in the sequence. */
  | { readonly _tag: 'LogCorrupt'; readonly op: string; readonly key: string; readonly offset?: number; readonly message: string }
  /** A persisted value (record payload, checkpoint, high-water mark) failed its codec. */
  | { readonly _tag: 'LogDecodeError'; readonly op: string; readonly key: string; readonly offset?: number; readonly message: string }
  /** The file system refused; after a failed write or fsync the log must be closed and reopened. */
  | { readonly _tag: 'LogIOError'; readonly op: string; readonly key?: string; readonly message: string; readonly cause: unknown }
  /** Used after `close()`. */
  | { readonly _tag: 'LogClosed'; readonly op: string; readonly message: string }
  /** Replay asked for records that compaction already removed. */
  | { readonly _tag: 'LogTruncated'; readonly op: string; readonly key: string; readonly message: string }
  /** The caller's replay visitor threw or rejected; replay stopped at `position`. */
  | { readonly _tag: 'LogVisitError'; readonly op: string; readonly position: number; readonly message: string; readonly cause: unknown };

export type TxLogErrorTag = TxLogError['_tag'];

const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : String(cause);

export const ioError = (op: string, key: string | undefined, cause: unknown): TxLogError => ({
  _tag: 'LogIOError',
  op,
  ...(key === undefined ? {} : { key }),
  message: `${op}${key === undefined ? '' : ` ${key}`}: ${describe(cause)}`,
  cause,
});

export const corrupt = (op: string, key: string, offset: number | undefined, why: string): TxLogError => ({
  _tag: 'LogCorrupt',
  op,
  key,
  ...(offset === undefined ? {} : { offset }),
  message: `${key}${offset === undefined ? '' : ` at byte ${offset}`}: ${why}`,
});

export const decodeError = (op: string, key: string, offset: number | undefined, why: string): TxLogError => ({
  _tag: 'LogDecodeError',
  op,
  key,
  ...(offset === undefined ? {} : { offset }),
  message: `${key}${offset === undefined ? '' : ` at byte ${offset}`}: ${why}`,
});

export const closed = (op: string): TxLogError => ({
  _tag: 'LogClosed',
  op,
  message: `${op}: already closed`,
});
