import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { VolumeStreamError, type Digest, type VolumeError } from '@zxbackup/volume-contract';
import { brotliParams, compressSync } from './codec-choice';
import { errnoOf, fromFsError, SourceStreamError } from './fs-errors';

const STREAM_CHUNK = 128 * 1024;
// Node's async zlib costs ~0.3 ms of CPU per call in set-up and thread hand-offs, more than
// brotli needs for a whole 20 KB message (~0.03 ms). Small buffers are therefore compressed on
// the calling thread (at most ~1 ms of event-loop time); larger ones on the libuv pool.
const SYNC_CODEC_LIMIT = 256 * 1024;
const brotliCompressAsync = promisify(zlib.brotliCompress);

/** Compresses a blob held whole: on the calling thread when small, on the libuv pool otherwise. */
export const compress = (bytes: Buffer): Promise<Buffer> =>
  bytes.length <= SYNC_CODEC_LIMIT
    ? new Promise((resolve) => resolve(compressSync(bytes)))
    : brotliCompressAsync(bytes, { ...brotliParams(bytes.length), chunkSize: STREAM_CHUNK });

export const createCompressor = (sizeHint?: number): zlib.BrotliCompress => zlib.createBrotliCompress({ ...brotliParams(sizeHint), chunkSize: STREAM_CHUNK });
export const createDecompressor = (): zlib.BrotliDecompress => zlib.createBrotliDecompress({ chunkSize: STREAM_CHUNK });

export const toBuffer = (chunk: unknown): Buffer => {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new SourceStreamError(new TypeError(`a blob stream must yield bytes or strings, got ${typeof chunk}`));
};

/** Next chunk of the caller's stream, undefined at its end; its failures become `SourceStreamError`. */
export const nextChunk = async (source: AsyncIterator<unknown>): Promise<Buffer | undefined> => {
  let result: IteratorResult<unknown>;
  try {
    result = await source.next();
  } catch (error) {
    throw new SourceStreamError(error);
  }
  return result.done === true ? undefined : toBuffer(result.value);
};

/** Writes all of `bytes` at `position`, looping over short writes (a filling disk returns them). */
export const writeFully = async (handle: FileHandle, bytes: Buffer, position: number): Promise<void> => {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += bytesWritten;
  }
};

/** A Writable onto an open file from `position` on; batches queued chunks into one write. */
export class FileSink extends Writable {
  constructor(
    private readonly handle: FileHandle,
    private position: number,
  ) {
    super({ highWaterMark: 1024 * 1024 });
  }

  private append(bytes: Buffer, callback: (error?: Error | null) => void): void {
    writeFully(this.handle, bytes, this.position).then(() => {
      this.position += bytes.length;
      callback();
    }, callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.append(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.append(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }
}

const corrupt = (key: Digest, cause: unknown): VolumeError => ({ _tag: 'BlobCorrupt', op: 'get', key, cause });

/** A stream that fails at once: how `get` reports a blob found corrupt before streaming. */
export const failingStream = (error: VolumeError): Readable =>
  new Readable({
    read() {
      this.destroy(new VolumeStreamError(error));
    },
  });

/** A stream over bytes already verified in memory (a plain Readable: `Readable.from` costs more per blob). */
export const bytesStream = (bytes: Buffer): Readable => {
  const stream = new Readable({
    read() {
      // Everything is pushed below.
    },
  });
  if (bytes.length > 0) stream.push(bytes);
  stream.push(null);
  return stream;
};

/** Hashes and counts what passes; at the end fails with `BlobCorrupt` unless both match. */
class Verifier extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;

  constructor(
    private readonly digest: Digest,
    private readonly size: number,
  ) {
    super({ readableHighWaterMark: 1024 * 1024, writableHighWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.seen += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (this.seen !== this.size) {
      callback(new VolumeStreamError(corrupt(this.digest, `expected ${this.size} bytes, read ${this.seen} (truncated?)`)));
    } else if (actual !== this.digest) {
      callback(new VolumeStreamError(corrupt(this.digest, `content hashes to ${actual}`)));
    } else {
      callback();
    }
  }
}

/**
 * Streams the body of a blob file (from `start`), decompressing and verifying as it goes. Read
 * errors surface as `VolumeStreamError` with the mapped tag, decoder errors as `BlobCorrupt`.
 * Destroying the returned stream closes the file.
 */
export const verifiedFileStream = (fd: number, start: number, digest: Digest, size: number, compressed: boolean): Readable => {
  const file = createReadStream('', { fd, start, highWaterMark: 1024 * 1024, autoClose: true });
  const verifier = new Verifier(digest, size);
  const decoder = compressed ? createDecompressor() : undefined;
  file.on('error', (error) => verifier.destroy(new VolumeStreamError(fromFsError('get', error, digest))));
  decoder?.on('error', (error) => verifier.destroy(new VolumeStreamError(corrupt(digest, error))));
  verifier.on('close', () => {
    file.destroy();
    decoder?.destroy();
  });
  if (decoder === undefined) file.pipe(verifier);
  else file.pipe(decoder).pipe(verifier);
  return verifier;
};

export const isNotFound = (error: unknown): boolean => errnoOf(error) === 'ENOENT';
