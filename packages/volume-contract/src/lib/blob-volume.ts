import type { Readable } from 'node:stream';
import type * as TE from 'fp-ts/TaskEither';
import type { Digest } from './digest';
import type { VolumeError } from './errors';
import type { HeadEnd } from './head';

/** What a put did: the digest of the raw bytes, their size, and whether new bytes were stored. */
export interface PutResult {
  readonly digest: Digest;
  /** Size of the raw (uncompressed, unencrypted) content in bytes. */
  readonly size: number;
  /** false when the volume already held this content (deduplicated). */
  readonly stored: boolean;
}

export interface BlobStat {
  readonly digest: Digest;
  /** Size of the raw content in bytes. */
  readonly size: number;
  /** Bytes the volume uses for it (after compression / encryption), when the volume knows. */
  readonly storedSize?: number;
  /**
   * When the blob was last written (epoch ms), when the volume knows (file mtime, S3
   * LastModified). The Backup Purge never deletes a blob younger than its grace period and
   * keeps a blob whose age is unknown.
   */
  readonly modifiedAt?: number;
}

export interface PutOptions {
  /** Raw size when known in advance; S3 needs it to choose single or multipart upload. */
  readonly size?: number;
  /** When given, a put whose content hashes differently fails with `BlobCorrupt` and stores nothing. */
  readonly expectedDigest?: Digest;
}

export interface PutFileOptions extends PutOptions {
  /** Also return the content's first bytes, up to this many (a mail's header block). */
  readonly headBytes?: number;
  /** Where the head may end sooner (see `headLength`): `blankLine`, after a mail's header block. */
  readonly headEnd?: HeadEnd;
}

export interface PutFileResult extends PutResult {
  /** The content's first bytes: `headLength(content, headBytes, headEnd)` of them (none when no `headBytes` was asked for). */
  readonly head: Buffer;
}

/** What an implementation can do beyond the contract; callers branch on these, never on the class. */
export interface VolumeSupports {
  /** Blobs survive a process or machine crash once `flush` resolved. */
  readonly durable: boolean;
  /** Blobs live on another machine (an S3 bucket, an NFS/FUSE mount). */
  readonly remote: boolean;
}

/**
 * A content-addressed store of blobs (message bodies, attachments, documents), keyed by the
 * SHA-256 of the raw bytes. Every implementation runs `describeVolumeContract`.
 *
 * Contract:
 * - `put` MUST compute the digest of the raw bytes while streaming (never buffer a whole blob),
 *   MUST be idempotent (same content → same digest, `stored: false` the second time), and once it
 *   resolves the blob MUST be readable by `get`. It MUST NOT leave a partial blob visible under a
 *   digest when it fails (a killed process, a full disk, a broken stream).
 * - Durability: every blob whose `put` resolved before `flush()` was called MUST be durable when
 *   `flush()` resolves. Callers flush before committing metadata that references the blobs, so
 *   many puts share one sync (group commit).
 * - `putFile` is `put` of a local file's content. A file that cannot be read is
 *   `SourceUnreadable` (with the errno `code`, e.g. ENOENT when it vanished), never a volume
 *   failure. Volumes without a faster way use `putFileThroughStream`.
 * - `get` MUST verify the digest of what it returns: on mismatch the stream fails with a
 *   `VolumeStreamError` carrying `BlobCorrupt`. A missing blob is `BlobNotFound` (in the
 *   TaskEither, before any byte is streamed).
 * - `delete` of a missing blob is `BlobNotFound`. `has` never fails for a missing blob.
 * - `list` visits every stored digest exactly once, in no particular order, without holding
 *   the whole listing in memory; it resolves to the number visited.
 * - Error tags are the contract (see `VolumeError`); messages are for people.
 */
export interface BlobVolume {
  /** A short human label, e.g. `local:/srv/backup` or `s3:bucket/prefix`. */
  readonly name: string;
  readonly supports: VolumeSupports;
  put(content: Readable, options?: PutOptions): TE.TaskEither<VolumeError, PutResult>;
  putFile(file: string, options?: PutFileOptions): TE.TaskEither<VolumeError, PutFileResult>;
  has(digest: Digest): TE.TaskEither<VolumeError, boolean>;
  get(digest: Digest): TE.TaskEither<VolumeError, Readable>;
  stat(digest: Digest): TE.TaskEither<VolumeError, BlobStat>;
  delete(digest: Digest): TE.TaskEither<VolumeError, void>;
  list(visit: (digest: Digest) => void | Promise<void>): TE.TaskEither<VolumeError, number>;
  flush(): TE.TaskEither<VolumeError, void>;
  close(): TE.TaskEither<VolumeError, void>;
  /**
   * A hint: these blobs will be read soon, in this order (a restore knows its whole list). A
   * remote volume may start fetching them; reads behave the same with or without it. Never fails.
   */
  prefetch?(digests: readonly Digest[], hints?: ReadHints): void;
  /**
   * A hint ahead of `prefetch`: the first entries of a list whose whole `prefetch` follows soon
   * (a restore gives them while it is still walking the metadata for the rest). A remote volume
   * may open the downloads that hold them now, to have the first bytes when the list comes; it
   * reads nothing for them until then, and drops what the list does not claim. Reads behave the
   * same with or without it. Never fails.
   */
  warmUp?(digests: readonly Digest[], hints?: ReadHints): void;
  /**
   * The order in which to read these blobs fastest: a permutation of their indexes (a volume
   * that packs blobs together puts the blobs of one pack next to each other, so a bounded read
   * cache fetches each pack once). Without it, any order is as good. Never fails: what it cannot
   * place keeps its relative order.
   */
  readOrder?(digests: readonly Digest[]): Promise<readonly number[]>;
  /**
   * `get` for a blob the caller keeps whole anyway (a restore's read-ahead of a message): the
   * verified bytes, as the buffers the volume holds them in (never joined into one: that copy
   * costs more than it saves), without a stream per blob. The same failures as `get`, all in
   * the TaskEither: a corrupt blob is a Left `BlobCorrupt`. Meant for small blobs: the whole
   * blob is in memory.
   */
  readWhole?(digest: Digest): TE.TaskEither<VolumeError, ReadonlyArray<Buffer>>;
  /**
   * Writes the blob's verified bytes into a new file, where a volume can do it without handing
   * the bytes to the caller (a restore of thousands of messages: the volume's downloads go
   * straight into the files, and the caller's thread never touches a byte). The file is created
   * exclusively (an existing one is never touched) with the mode, owner and mtime asked for; it
   * is complete when this resolves, not durable (the caller syncs). On any failure no file is
   * left: a corrupt blob is `BlobCorrupt`, a missing one `BlobNotFound`, and a failure of the
   * file itself `VolumeIOError` with op `writeFile`, the path as key and the errno in its cause.
   * A list announced with `prefetch(digests, { into: 'files' })` is written fastest in its order.
   * Volumes without a faster way leave it out; `writeToFileThroughGet` does it through `get`.
   */
  writeToFile?(digest: Digest, file: BlobFile): TE.TaskEither<VolumeError, void>;
}

/** How the reads of a `prefetch` (or `warmUp`) list will come: `files` for `writeToFile`, else `get`/`readWhole`. */
export interface ReadHints {
  readonly into?: 'memory' | 'files';
}

/** A new file for `writeToFile`. */
export interface BlobFile {
  readonly path: string;
  readonly mode: number;
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** Its mtime and atime (epoch ms). */
  readonly mtimeMs: number;
}
