import { Worker } from 'node:worker_threads';

/** One new file, written whole: what a restore makes for each message in tmp/. */
export interface NewFile {
  readonly path: string;
  /** The content, in order; copied before `write` returns, so the caller keeps its buffers. */
  readonly chunks: ReadonlyArray<Uint8Array>;
  readonly mode: number;
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** The file's mtime (and atime): Dovecot reads a message's received date from it. */
  readonly mtimeMs: number;
}

/** A failure as the worker saw it: the fields of a Node file-system error, so callers map it as one. */
export class FileWriteError extends Error {
  readonly code: string | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  constructor(wire: WireError) {
    super(wire.message);
    this.name = 'FileWriteError';
    this.code = wire.code;
    this.syscall = wire.syscall;
    this.path = wire.path;
  }
}

interface WireError {
  readonly message: string;
  readonly code?: string;
  readonly syscall?: string;
  readonly path?: string;
}

interface Job {
  readonly id: number;
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  readonly mode: number;
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly mtimeMs: number;
}

type Reply = { readonly id: number; readonly error?: WireError };

/** The bytes in flight to the worker; a file may take up to half of it. */
const SLAB_BYTES = 8 * 1024 * 1024;
export const FILE_WRITER_MAX_BYTES = SLAB_BYTES / 2;

/*
 * Plain JavaScript, evaluated: no file to resolve, whether the package runs from dist or from
 * its sources. A file is created with O_EXCL (`wx`): an existing one is never touched, and a
 * file this worker created is removed again when a later step fails, so a failed write leaves
 * nothing behind. Jobs are done and answered in the order they came.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const slab = new Uint8Array(workerData.slab);
const writeWhole = (fd, offset, length) => {
  for (let done = 0; done < length; ) {
    const n = fs.writeSync(fd, slab, offset + done, length - done);
    if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO', syscall: 'write' });
    done += n;
  }
};
const wire = (e) => ({ message: String((e && e.message) || e), code: e && e.code, syscall: e && e.syscall, path: e && e.path });
parentPort.on('message', (jobs) => {
  const replies = [];
  for (const job of jobs) {
    let fd;
    try {
      fd = fs.openSync(job.path, 'wx', job.mode);
      writeWhole(fd, job.offset, job.length);
      if (job.owner !== undefined) fs.fchownSync(fd, job.owner.uid, job.owner.gid);
      const when = job.mtimeMs / 1000;
      fs.futimesSync(fd, when, when);
      const open = fd;
      fd = undefined;
      fs.closeSync(open);
      replies.push({ id: job.id });
    } catch (e) {
      if (fd !== undefined) {
        try { fs.closeSync(fd); } catch {}
        try { fs.rmSync(job.path, { force: true }); } catch {}
      }
      replies.push({ id: job.id, error: wire(e) });
    }
  }
  parentPort.postMessage(replies);
});
`;

/**
 * Creates small files on a worker thread with synchronous calls. Creating and writing a file
 * costs 0.05-0.35 ms of kernel time on these VMs (the most in the minutes after mass deletions);
 * on the main thread that was up to a quarter of a restore's time, during which nothing else
 * (downloads, metadata, the next message) could run. Off the thread, the creations overlap the
 * restore's other work on the second core.
 *
 * The bytes go through one shared buffer, used as a ring: `write` copies a file's content into
 * it and posts only its place. Moving or cloning a fresh buffer per file cost ~10x more here
 * (every new buffer's pages fault in on this VM, ~1.7 ms per MB). The files of one event-loop
 * turn go over in one message.
 *
 * One worker per process, started on first use; it keeps the process alive only while files
 * are in flight, and a worker that dies fails its files (EIO) and is replaced by the next write.
 */
export interface FileWriter {
  /** Creates `file.path` (which must not exist) with its content, mode, owner and mtime; at most FILE_WRITER_MAX_BYTES. */
  write(file: NewFile): Promise<void>;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
  /** The end of this file's bytes in the slab: the ring's tail moves there once it is done. */
  readonly end: number;
}

interface Running {
  readonly worker: Worker;
  readonly slab: Buffer;
  /** In the order the worker answers (the order of the jobs). */
  readonly waiting: Map<number, Waiter>;
  /** Jobs not posted yet: they wait while the worker works on a batch. */
  outbox: Job[];
  /** A batch is with the worker (or a post is scheduled). */
  busy: boolean;
  /** Where the next file's bytes go; where the oldest file in flight starts. */
  head: number;
  tail: number;
  /** Writers waiting for room in the slab. */
  roomWaiters: Array<() => void>;
}

let running: Running | undefined;
let nextId = 1;

const failAll = (r: Running, cause: string): void => {
  if (running === r) running = undefined;
  const error = new FileWriteError({ message: `the file writer thread stopped: ${cause}`, code: 'EIO' });
  for (const w of r.waiting.values()) w.reject(error);
  r.waiting.clear();
  for (const wake of r.roomWaiters.splice(0)) wake();
};

const start = (): Running => {
  const slab = Buffer.from(new SharedArrayBuffer(SLAB_BYTES));
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { slab: slab.buffer } });
  const r: Running = { worker, slab, waiting: new Map(), outbox: [], busy: false, head: 0, tail: 0, roomWaiters: [] };
  worker.unref();
  worker.on('message', (replies: readonly Reply[]) => {
    for (const reply of replies) {
      const waiter = r.waiting.get(reply.id);
      if (waiter === undefined) continue;
      r.waiting.delete(reply.id);
      r.tail = waiter.end;
      if (reply.error === undefined) waiter.resolve();
      else waiter.reject(new FileWriteError(reply.error));
    }
    if (r.waiting.size === 0) {
      r.head = 0;
      r.tail = 0;
      worker.unref();
    }
    r.busy = false;
    if (r.outbox.length > 0) post(r);
    for (const wake of r.roomWaiters.splice(0)) wake();
  });
  worker.on('error', (e) => failAll(r, e.message));
  worker.on('exit', (code) => failAll(r, `exit code ${code}`));
  return r;
};

/**
 * Where `length` bytes fit in the ring, or undefined while the files in flight hold the room.
 * The bytes in flight are [tail, head) or, wrapped, [tail, end of slab) + [0, head).
 */
const place = (r: Running, length: number): number | undefined => {
  if (r.waiting.size === 0) return 0;
  if (r.head >= r.tail) {
    if (r.slab.length - r.head >= length) return r.head;
    return r.tail > length ? 0 : undefined; // wrap; `>`: head must not catch up with tail
  }
  return r.tail - r.head > length ? r.head : undefined;
};

// One batch at a time: what arrives while the worker works goes over in one message when it
// answers. Each message wakes the worker thread, and on a busy 2-core machine every wake-up
// could preempt this thread: one message per file cost more than the copies.
const post = (r: Running): void => {
  const jobs = r.outbox;
  r.outbox = [];
  r.busy = true;
  r.worker.postMessage(jobs);
};

export const fileWriter: FileWriter = {
  write: async (file) => {
    const length = file.chunks.reduce((n, c) => n + c.length, 0);
    if (length > FILE_WRITER_MAX_BYTES) throw new RangeError(`fileWriter: ${file.path} has ${length} bytes, more than ${FILE_WRITER_MAX_BYTES}`);
    for (;;) {
      running ??= start();
      const r = running;
      const offset = place(r, length);
      if (offset === undefined) {
        await new Promise<void>((wake) => r.roomWaiters.push(wake));
        continue;
      }
      let at = offset;
      for (const c of file.chunks) at += (Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength)).copy(r.slab, at);
      r.head = at;
      const id = nextId++;
      if (r.waiting.size === 0) r.worker.ref();
      const done = new Promise<void>((resolve, reject) => r.waiting.set(id, { resolve, reject, end: at }));
      if (!r.busy) {
        r.busy = true;
        setImmediate(() => post(r));
      }
      r.outbox.push({ id, path: file.path, offset, length, mode: file.mode, ...(file.owner === undefined ? {} : { owner: file.owner }), mtimeMs: file.mtimeMs });
      return done;
    }
  },
};

/** Stops the worker now (tests): files in flight fail with EIO; the next write starts a new one. */
export const stopFileWriter = async (): Promise<void> => {
  const r = running;
  if (r === undefined) return;
  failAll(r, 'stopped');
  await r.worker.terminate();
};
