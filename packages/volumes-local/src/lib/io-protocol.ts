/*
 * The messages between the volume (main thread) and its I/O workers (io-worker.ts). Both sides
 * are this package's own code, built together: the shapes are checked by the compiler, not
 * decoded at run time.
 */
import type { HeadEnd } from '@zxbackup/volume-contract';
import type { CompressionMode } from './codec-choice';

/** A file-system error as it crosses the thread boundary (an Error loses its `code` there). */
export interface WireError {
  readonly message: string;
  readonly code?: string;
  readonly syscall?: string;
  readonly path?: string;
  /** The failure was reading the caller's source file, not the volume. */
  readonly inSource?: boolean;
}

export interface PutRequest {
  readonly op: 'put';
  readonly id: number;
  /** The file to read (at most `maxWholeBytes`). */
  readonly file: string;
  /** Where the blob goes when it is new: `<root>/<xx>/<digest>` is checked first. */
  readonly root: string;
  /**
   * The temp file's name: it is created in the blob's shard, `<root>/<xx>/<tempName>` (the shard
   * is created when missing, as long as `<root>/.tmp` shows the volume is mounted).
   */
  readonly tempName: string;
  readonly compression: CompressionMode;
  readonly maxWholeBytes: number;
  /** When given and the content hashes differently, nothing is written. */
  readonly expectedDigest?: string;
  /** Return a copy of the content's first bytes, up to this many. */
  readonly headBytes: number;
  /** Where the head may end sooner (`PutFileOptions.headEnd`). */
  readonly headEnd?: HeadEnd;
}

export type PutReply =
  /** The file is larger than `maxWholeBytes`: the caller streams it instead. */
  | { readonly kind: 'too-large' }
  /** The content does not hash to `expectedDigest`; nothing was written. */
  | { readonly kind: 'wrong-digest'; readonly digest: string }
  /** The blob is already in its shard (its mtime was refreshed); nothing was written. */
  | { readonly kind: 'exists'; readonly digest: string; readonly size: number; readonly head: Uint8Array }
  /**
   * The blob was written, complete, to `tempPath` in its shard (not fsynced, descriptor closed);
   * `createdShard`: the shard directory was created for it (its parent's entry must be synced).
   */
  | {
      readonly kind: 'written';
      readonly digest: string;
      readonly size: number;
      readonly storedBytes: number;
      readonly head: Uint8Array;
      readonly tempPath: string;
      readonly createdShard: boolean;
    };

export interface GetRequest {
  readonly op: 'get';
  readonly id: number;
  readonly digest: string;
  /** Tried in order (a pending temp file, then the shard); ENOENT on all is `missing`. */
  readonly paths: readonly string[];
  readonly maxWholeBytes: number;
}

export type GetReply =
  | { readonly kind: 'missing' }
  /** The file is larger than `maxWholeBytes`: the caller streams it instead. */
  | { readonly kind: 'too-large' }
  | { readonly kind: 'corrupt'; readonly reason: string }
  /** The raw content, verified against the digest and the header's size. */
  | { readonly kind: 'verified'; readonly bytes: Uint8Array };

export interface RenameRequest {
  readonly op: 'rename';
  readonly id: number;
  readonly moves: ReadonlyArray<{ readonly from: string; readonly to: string }>;
}

export interface RenameReply {
  readonly kind: 'renamed';
  /** One per move, in order: undefined when it worked. */
  readonly failures: ReadonlyArray<WireError | undefined>;
  /** Shard directories the worker had to create (their parent's entry must be synced). */
  readonly createdDirs: readonly string[];
}

export type IoRequest = PutRequest | GetRequest | RenameRequest;
export type IoReply = PutReply | GetReply | RenameReply;

export type IoResponse = { readonly id: number; readonly ok: true; readonly reply: IoReply } | { readonly id: number; readonly ok: false; readonly error: WireError };

export const toWireError = (error: unknown): WireError => {
  if (typeof error !== 'object' || error === null) return { message: String(error) };
  const e = error as { message?: unknown; code?: unknown; syscall?: unknown; path?: unknown };
  return {
    message: typeof e.message === 'string' ? e.message : String(error),
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    ...(typeof e.syscall === 'string' ? { syscall: e.syscall } : {}),
    ...(typeof e.path === 'string' ? { path: e.path } : {}),
  };
};

