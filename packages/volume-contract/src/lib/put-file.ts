import { createReadStream, promises as fsp } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { BlobFile, BlobVolume, PutFileOptions, PutFileResult } from './blob-volume';
import type { Digest } from './digest';
import { VolumeStreamError, type VolumeError } from './errors';
import { headLength, type HeadEnd } from './head';
import { openSourceSync } from './source-file';

/** A file given to `putFile` could not be read (it vanished, or its disk failed). */
export const sourceUnreadable = (file: string, cause: unknown): VolumeError => {
  const code = typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string' ? cause.code : undefined;
  return { _tag: 'SourceUnreadable', op: 'put', key: file, ...(code === undefined ? {} : { code }), cause };
};

/** Passes bytes through, keeping a copy of the first `limit` of them. */
class HeadKeeper extends Transform {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.keptBytes < this.limit) {
      const take = chunk.subarray(0, this.limit - this.keptBytes);
      this.kept.push(Buffer.from(take));
      this.keptBytes += take.length;
    }
    callback(null, chunk);
  }

  head(end: HeadEnd | undefined): Buffer {
    const kept = Buffer.concat(this.kept);
    return kept.subarray(0, headLength(kept, this.limit, end));
  }
}

/**
 * `putFile` for a volume that has no faster way: the file streamed into its `put`. Volumes
 * that can read a file themselves (the local volume's I/O workers) implement it natively.
 */
export const putFileThroughStream =
  (put: BlobVolume['put']) =>
  (file: string, options: PutFileOptions = {}): TE.TaskEither<VolumeError, PutFileResult> =>
  async () => {
    let fd: number;
    try {
      fd = openSourceSync(file);
    } catch (e) {
      return E.left(sourceUnreadable(file, e));
    }
    const input = createReadStream(file, { fd });
    const keeper = new HeadKeeper(options.headBytes ?? 0);
    let readError: unknown;
    input.on('error', (error) => {
      readError = error;
      keeper.destroy(error);
    });
    input.pipe(keeper);
    const result = await put(keeper, options)();
    if (readError !== undefined) return E.left(sourceUnreadable(file, readError));
    return E.isLeft(result) ? result : E.right({ ...result.right, head: keeper.head(options.headEnd) });
  };

/**
 * `readWhole` through a volume's `get`: the stream's chunks as they come, a failure of the
 * stream (a `VolumeStreamError`) as its Left. For volumes with no faster way to hand over a
 * whole blob, and for a volume's own slow paths.
 */
export const readWholeThroughStream =
  (get: BlobVolume['get']) =>
  (digest: Digest): TE.TaskEither<VolumeError, ReadonlyArray<Buffer>> =>
  async () => {
    const opened = await get(digest)();
    if (E.isLeft(opened)) return opened;
    const parts: Buffer[] = [];
    try {
      for await (const chunk of opened.right) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
      return E.right(parts);
    } catch (e) {
      return E.left(e instanceof VolumeStreamError ? e.volumeError : { _tag: 'VolumeIOError', op: 'get', key: digest, cause: e });
    }
  };

/**
 * `writeToFile` through `get`: the blob streamed into a new file (created exclusively), with its
 * owner and mtime. A failure (the blob's or the file's) removes the file again.
 */
export const writeToFileThroughGet =
  (get: BlobVolume['get']) =>
  (digest: Digest, file: BlobFile): TE.TaskEither<VolumeError, void> =>
  async () => {
    const opened = await get(digest)();
    if (E.isLeft(opened)) return opened;
    const body = opened.right;
    let handle: fsp.FileHandle | undefined;
    let step: 'open' | 'read' | 'write' = 'open';
    try {
      handle = await fsp.open(file.path, 'wx', file.mode);
      step = 'read';
      for await (const chunk of body) {
        step = 'write';
        await handle.write(chunk as Uint8Array);
        step = 'read';
      }
      step = 'write';
      if (file.owner !== undefined) await handle.chown(file.owner.uid, file.owner.gid);
      const when = new Date(file.mtimeMs);
      await handle.utimes(when, when);
      const done = handle;
      handle = undefined;
      await done.close();
      return E.right(undefined);
    } catch (e) {
      body.destroy();
      if (handle !== undefined) {
        await handle.close().catch(() => undefined); // the first failure is the one reported
        await fsp.rm(file.path, { force: true }).catch(() => undefined);
      }
      if (e instanceof VolumeStreamError) return E.left(e.volumeError);
      if (step === 'read') return E.left({ _tag: 'VolumeIOError', op: 'get', key: digest, cause: e });
      return E.left({ _tag: 'VolumeIOError', op: 'writeFile', key: file.path, cause: e });
    }
  };
