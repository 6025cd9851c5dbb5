import * as fs from 'node:fs';
import { promisify } from 'node:util';

/*
 * The main thread's file-system calls (the streamed paths, stat, a flush's fsyncs) use raw
 * descriptors and the callback API: in Node 20 a `FileHandle` costs about twice the CPU per call
 * (its own object, a promise per operation, a GC-tracked close). The hottest paths run on the
 * I/O workers (io-worker.ts).
 */
export const openFd = promisify(fs.open) as (path: string, flags: string) => Promise<number>;
export const closeFd = promisify(fs.close) as (fd: number) => Promise<void>;
const fsyncFd = promisify(fs.fsync) as (fd: number) => Promise<void>;
export const fstatFd = promisify(fs.fstat) as (fd: number) => Promise<fs.Stats>;
export const utimesPath = promisify(fs.utimes) as (path: string, atime: Date, mtime: Date) => Promise<void>;
export const renamePath = promisify(fs.rename) as (from: string, to: string) => Promise<void>;
export const unlinkPath = promisify(fs.unlink) as (path: string) => Promise<void>;

const writevRaw = (fd: number, buffers: Buffer[], position: number): Promise<number> =>
  new Promise((resolve, reject) => fs.writev(fd, buffers, position, (error, bytesWritten) => (error === null ? resolve(bytesWritten) : reject(error))));
const readRaw = (fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> =>
  new Promise((resolve, reject) => fs.read(fd, buffer, offset, length, position, (error, bytesRead) => (error === null ? resolve(bytesRead) : reject(error))));

/** Writes all of `buffers` at `position` with as few calls as the kernel allows (short writes continue). */
export const writevFully = async (fd: number, buffers: readonly Buffer[], position: number): Promise<void> => {
  let rest = buffers.filter((b) => b.length > 0);
  let at = position;
  while (rest.length > 0) {
    const written = await writevRaw(fd, rest, at);
    if (written === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    at += written;
    rest = unwritten(rest, written);
  }
};

/** What is left of `buffers` after a (possibly short) vectored write of `written` bytes. */
export const unwritten = (buffers: readonly Buffer[], written: number): Buffer[] => {
  let skip = written;
  const next: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return next;
};

/** Reads exactly `length` bytes at `position`, or fewer when the file is shorter. */
export const readFdUpTo = async (fd: number, length: number, position: number): Promise<Buffer> => {
  const out = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const bytesRead = await readRaw(fd, out, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return out.subarray(0, done);
};

/** fsync of a path: a temp file whose descriptor was not kept, or a directory. */
export const fsyncPath = async (target: string): Promise<void> => {
  const fd = await openFd(target, 'r');
  try {
    await fsyncFd(fd);
  } catch (error) {
    await closeFd(fd).catch(() => undefined); // the fsync error is the one that matters
    throw error;
  }
  await closeFd(fd);
};
