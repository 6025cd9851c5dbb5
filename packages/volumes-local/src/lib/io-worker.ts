/*
 * An I/O worker of the local volume (see io-pool.ts for why they exist). It runs one request at
 * a time with synchronous file-system calls: each call is a plain syscall on this thread, where
 * on the main thread it would be a round trip through libuv's threadpool (measured on a 2-core
 * VM: reading 1 GB of 20,000 cached files costs 0.45 s synchronously and ~2.5 s through the
 * pool). Hashing and (de)compression run here too, off the main thread.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { brotliDecompressSync } from 'node:zlib';
import * as E from 'fp-ts/Either';
import { headLength, openSourceSync } from '@zxbackup/volume-contract/worker';
import { chooseCodec, compressSync } from './codec-choice';
import { unwritten } from './fd-io';
import { decodeHeader, encodeHeader, HEADER_SIZE } from './format';
import { toWireError, type GetReply, type GetRequest, type IoReply, type IoRequest, type IoResponse, type PutReply, type PutRequest, type RenameReply, type RenameRequest } from './io-protocol';
import { TEMP_DIR } from './temp-files';

const shardOf = (root: string, digest: string): string => `${root}/${digest.slice(-2)}`;

// Reused for every file a put reads: a fresh buffer per blob would cost page faults and, in a
// multi-threaded process, TLB shoot-downs when it is freed.
let scratch = Buffer.allocUnsafeSlow(1024 * 1024);


/** Reads a whole source file (to its end) into the scratch buffer, or undefined when too large. */
const readSource = (file: string, maxBytes: number): Buffer | undefined => {
  let fd: number;
  try {
    fd = openSourceSync(file);
  } catch (error) {
    throw Object.assign(error as Error, { inSource: true });
  }
  try {
    const { size } = fs.fstatSync(fd);
    if (size > maxBytes) return undefined;
    // One byte more than the size, so that the end of the file is seen in the same read.
    if (scratch.length < size + 1) scratch = Buffer.allocUnsafeSlow(size + 1);
    let done = 0;
    for (;;) {
      if (done === scratch.length) {
        // The file grew since the fstat.
        if (done > maxBytes) return undefined;
        const bigger = Buffer.allocUnsafeSlow(scratch.length * 2);
        scratch.copy(bigger);
        scratch = bigger;
      }
      const wanted = scratch.length - done;
      const n = fs.readSync(fd, scratch, done, wanted, done);
      if (n === 0) break;
      done += n;
      // A regular file reads short only at its end: with at least the size fstat gave, that
      // was the whole file, without one more read to see zero bytes.
      if (n < wanted && done >= size) break;
    }
    return done > maxBytes ? undefined : scratch.subarray(0, done);
  } catch (error) {
    throw Object.assign(error as Error, { inSource: true });
  } finally {
    fs.closeSync(fd);
  }
};

const writeAll = (fd: number, buffers: Buffer[]): void => {
  let rest = buffers.filter((b) => b.length > 0);
  let at = 0;
  while (rest.length > 0) {
    const written = fs.writevSync(fd, rest, at);
    if (written === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    at += written;
    rest = unwritten(rest, written);
  }
};

/** Refreshes an existing blob's mtime (a purge's grace period counts from it); false if absent. */
const touchIfStored = (file: string): boolean => {
  // A stat that answers "absent" without throwing: most blobs are new, and a thrown ENOENT costs
  // a stack trace each.
  if (fs.statSync(file, { throwIfNoEntry: false }) === undefined) return false;
  const now = new Date();
  try {
    fs.utimesSync(file, now, now);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false; // deleted in between
    throw error;
  }
};

/**
 * Creates a new temp file in a shard, creating the shard when it is missing. Never recursive,
 * and only while `<root>/.tmp` is there: a missing root or `.tmp` means the volume is not
 * mounted, and a bare mount point is never written to.
 */
const createInShard = (root: string, shard: string, tempPath: string): { fd: number; createdShard: boolean } => {
  try {
    return { fd: fs.openSync(tempPath, 'wx'), createdShard: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  fs.statSync(`${root}/${TEMP_DIR}`);
  let createdShard = false;
  try {
    fs.mkdirSync(shard);
    createdShard = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return { fd: fs.openSync(tempPath, 'wx'), createdShard };
};

const put = (request: PutRequest): PutReply => {
  const raw = readSource(request.file, request.maxWholeBytes);
  if (raw === undefined) return { kind: 'too-large' };
  const digest = createHash('sha256').update(raw).digest('hex');
  if (request.expectedDigest !== undefined && request.expectedDigest !== digest) return { kind: 'wrong-digest', digest };
  // A copy: `raw` is the scratch buffer, reused by the next request.
  const head = Uint8Array.prototype.slice.call(raw, 0, headLength(raw, request.headBytes, request.headEnd));
  const shard = shardOf(request.root, digest);
  if (touchIfStored(`${shard}/${digest}`)) return { kind: 'exists', digest, size: raw.length, head };
  const choice = chooseCodec(raw, request.compression, true);
  const body = choice.codec === 'brotli' ? (choice.compressed ?? compressSync(raw)) : raw;
  // In the shard (see temp-files.ts): the commit is then a rename within one directory.
  const tempPath = `${shard}/${request.tempName}`;
  const { fd, createdShard } = createInShard(request.root, shard, tempPath);
  try {
    writeAll(fd, [encodeHeader({ codec: choice.codec, size: raw.length }), body]);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(tempPath, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  return { kind: 'written', digest, size: raw.length, storedBytes: HEADER_SIZE + body.length, head, tempPath, createdShard };
};

const openFirst = (paths: readonly string[]): number | undefined => {
  for (const file of paths) {
    try {
      return fs.openSync(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return undefined;
};

/** Reads up to `length` bytes at `position` into the start of `into`; returns how many there were. */
const readAt = (fd: number, into: Buffer, length: number, position: number): number => {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, into, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
};

const headerScratch = Buffer.allocUnsafeSlow(HEADER_SIZE);

/**
 * A whole blob, verified. The bytes handed back are a buffer of their own (moved to the caller,
 * never copied): a raw body is read straight into one; a compressed body is read into the
 * reused scratch buffer and decompressed into one output buffer of the header's size (zlib's
 * default 16 KB chunks would be concatenated, a copy). Reusing the scratch also spares the page
 * faults of a fresh buffer per blob. A body larger than `maxWholeBytes` once decompressed is
 * `too-large` too, so a worker never holds more than that of one blob.
 */
const get = (request: GetRequest): GetReply => {
  const fd = openFirst(request.paths);
  if (fd === undefined) return { kind: 'missing' };
  let raw: Buffer;
  let expectedSize: number;
  try {
    const { size } = fs.fstatSync(fd);
    if (size > request.maxWholeBytes) return { kind: 'too-large' };
    const header = decodeHeader(headerScratch.subarray(0, readAt(fd, headerScratch, HEADER_SIZE, 0)));
    if (E.isLeft(header)) return { kind: 'corrupt', reason: header.left };
    expectedSize = header.right.size;
    if (expectedSize > request.maxWholeBytes) return { kind: 'too-large' };
    const bodySize = Math.max(0, size - HEADER_SIZE);
    if (header.right.codec === 'raw') {
      const body = Buffer.allocUnsafeSlow(bodySize);
      const n = readAt(fd, body, bodySize, HEADER_SIZE);
      raw = n === bodySize ? body : body.subarray(0, n);
    } else {
      if (scratch.length < bodySize) scratch = Buffer.allocUnsafeSlow(bodySize);
      const n = readAt(fd, scratch, bodySize, HEADER_SIZE);
      try {
        raw = brotliDecompressSync(scratch.subarray(0, n), { chunkSize: Math.max(64, expectedSize) });
      } catch (error) {
        return { kind: 'corrupt', reason: `cannot decompress: ${toWireError(error).message}` };
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  if (raw.length !== expectedSize) return { kind: 'corrupt', reason: `expected ${expectedSize} bytes, read ${raw.length} (truncated?)` };
  const actual = createHash('sha256').update(raw).digest('hex');
  if (actual !== request.digest) return { kind: 'corrupt', reason: `content hashes to ${actual}` };
  return { kind: 'verified', bytes: transferable(raw) };
};

/** A buffer that owns its whole ArrayBuffer, so it can be transferred without copying. */
const transferable = (bytes: Buffer): Uint8Array => {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes;
  const own = new Uint8Array(bytes.byteLength);
  own.set(bytes);
  return own;
};

const rename = (request: RenameRequest): RenameReply => {
  const createdDirs: string[] = [];
  const failures = request.moves.map(({ from, to }) => {
    try {
      try {
        fs.renameSync(from, to);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !fs.existsSync(from)) throw error;
        // The shard is new. Never recursive: recreating a vanished root would write onto the
        // bare mount point.
        const dir = to.slice(0, to.lastIndexOf('/'));
        try {
          fs.mkdirSync(dir);
          createdDirs.push(dir);
        } catch (mkdirError) {
          if ((mkdirError as NodeJS.ErrnoException).code !== 'EEXIST') throw mkdirError;
        }
        fs.renameSync(from, to);
      }
      return undefined;
    } catch (error) {
      return toWireError(error);
    }
  });
  return { kind: 'renamed', failures, createdDirs };
};

const handle = (request: IoRequest): IoReply => {
  switch (request.op) {
    case 'put':
      return put(request);
    case 'get':
      return get(request);
    case 'rename':
      return rename(request);
  }
};

const respond = (request: IoRequest): IoResponse => {
  try {
    return { id: request.id, ok: true, reply: handle(request) };
  } catch (error) {
    return { id: request.id, ok: false, error: { ...toWireError(error), ...((error as { inSource?: boolean }).inSource === true ? { inSource: true } : {}) } };
  }
};

const port = parentPort;
if (port === null) throw new Error('io-worker.ts runs only as a worker thread (see io-pool.ts)');
// Requests come in batches and their responses go back as one message: a message costs a
// cross-thread wake-up, more than a small blob's file-system calls.
port.on('message', (requests: readonly IoRequest[]) => {
  const responses = requests.map(respond);
  const transfer: ArrayBuffer[] = [];
  for (const response of responses) {
    if (!response.ok) continue;
    const reply = response.reply;
    // Moved, not copied: each is a buffer of its own (a slice, or a fresh decompression).
    if (reply.kind === 'verified') transfer.push(reply.bytes.buffer as ArrayBuffer);
    else if ((reply.kind === 'written' || reply.kind === 'exists') && reply.head.byteLength > 0) transfer.push(reply.head.buffer as ArrayBuffer);
  }
  port.postMessage(responses, transfer);
});
