import { Readable } from 'node:stream';
import { makeWorkerHost } from './worker-host';
import { storeAnswerError } from './errors';

/*
 * Downloads on a worker thread: the receiving end of an HTTP body costs the thread that runs it
 * more than the bytes' own use. Node's HTTP client copies every body chunk out of the socket's
 * buffer into a fresh one (and each fresh buffer faults its memory in), so a restore reading
 * 70 MB of packs spent ~0.35 s of its main thread on the receiving alone, while the second core
 * was half idle. Here the worker receives, and the chunks it received are moved (transferred,
 * not copied) to the main thread, which gets them as a plain Readable.
 *
 * The requests come presigned (see presign.ts): the worker loads no SDK, and starts in ~0.1 s.
 * `warmDownloadWorker` starts it ahead, in parallel with whatever the main thread does before
 * its first read.
 *
 * The worker holds at most `WINDOW_BYTES` per download that the main thread has not consumed:
 * past that it stops reading the connection, as a paused stream does.
 */
const WINDOW_BYTES = 4 * 1024 * 1024;
// Acknowledgements go back in steps of this much: one message per received chunk would double
// the messages for nothing.
const ACK_STEP = WINDOW_BYTES / 4;
// Chunks (~64 KB each) the main thread's stream buffers before it holds back acknowledgements.
const STREAM_CHUNKS = 32;
// A worker with nothing to do stops after this long (another download starts a new one).
const IDLE_MS = 5000;

// Plain JavaScript, evaluated: no file to resolve, whether this package runs from dist or source.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const downloads = new Map();
const fileDownloads = new Map();
const send = (d) => {
  d.scheduled = false;
  if (d.pending.length === 0) return;
  const chunks = d.pending;
  d.pending = [];
  parentPort.postMessage({ id: d.id, chunks }, chunks);
};
const finish = (d, message) => {
  if (d.done) return;
  d.done = true;
  downloads.delete(d.id);
  send(d);
  parentPort.postMessage(Object.assign({ id: d.id }, message));
};
const failure = (e) => ({ error: { message: String((e && e.message) || e), code: e && e.code, statusCode: e && e.statusCode } });
// GETs url, for both kinds of download. An answer other than 200 goes to on.answer (its status
// and the start of its S3 error document, read on the main thread by storeAnswerError); a 200 to
// on.head, then each chunk to on.chunk, then on.end once the whole announced body came. Any
// failure (the URL, the connection, a body cut short) goes to on.fail. The request, or undefined
// for a bad URL.
const getBody = (url, on) => {
  let target;
  try {
    target = new URL(url);
  } catch (e) {
    on.fail(e);
    return undefined;
  }
  const request = (target.protocol === 'https:' ? https : http).get(target, { agent: agents[target.protocol] }, (res) => {
    if (res.statusCode !== 200) {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (t) => { if (text.length < 4096) text += t; });
      res.on('end', () => on.answer(res.statusCode, text));
      res.on('error', on.fail);
      return;
    }
    on.head(res);
    const expected = Number(res.headers['content-length']);
    let received = 0;
    res.on('data', (chunk) => {
      received += chunk.length;
      on.chunk(chunk);
    });
    res.on('end', () => {
      if (Number.isFinite(expected) && received !== expected) on.fail(Object.assign(new Error('the body ended after ' + received + ' of ' + expected + ' bytes'), { code: 'ECONNRESET' }));
      else on.end();
    });
    res.on('error', on.fail);
  });
  request.on('error', on.fail);
  return request;
};

// ---- downloads into files: blobs taken out of a pack, verified, each written into new files
let results = [];
let resultsScheduled = false;
const flushResults = () => {
  resultsScheduled = false;
  if (results.length === 0) return;
  const r = results;
  results = [];
  parentPort.postMessage({ results: r });
};
const answer = (r) => {
  results.push(r);
  if (!resultsScheduled) {
    resultsScheduled = true;
    setImmediate(flushResults);
  }
};
const wireError = (e) => ({ message: String((e && e.message) || e), code: e && e.code, syscall: e && e.syscall, path: e && e.path });
// Created exclusively; a file this thread created is removed again when a later step fails.
const writeFile = (file, parts) => {
  let fd;
  try {
    fd = fs.openSync(file.path, 'wx', file.mode);
    for (const part of parts) {
      for (let done = 0; done < part.length; ) {
        const n = fs.writeSync(fd, part, done, part.length - done);
        if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO', syscall: 'write' });
        done += n;
      }
    }
    if (file.owner) fs.fchownSync(fd, file.owner.uid, file.owner.gid);
    const when = file.mtimeMs / 1000;
    fs.futimesSync(fd, when, when);
    const open = fd;
    fd = undefined;
    fs.closeSync(open);
    return undefined;
  } catch (e) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch {}
      try { fs.rmSync(file.path, { force: true }); } catch {}
    }
    return wireError(e);
  }
};
const held = (f) => f.held + f.earlyBytes;
const pressure = (f) => {
  if (f.response === undefined || f.done) return;
  if (!f.paused && held(f) > f.window) {
    f.paused = true;
    f.response.pause();
  } else if (f.paused && held(f) <= f.window / 2) {
    f.paused = false;
    f.response.resume();
  }
};
const forget = (f) => {
  f.done = true;
  fileDownloads.delete(f.id);
  // A body received whole leaves its connection to the agent, for the next download.
  if (f.request && !f.received) f.request.destroy();
};
const finishFiles = (f, message) => {
  flushResults(); // the results of a download come before its end or failure
  parentPort.postMessage(Object.assign({ id: f.id }, message));
};
const failFiles = (f, e) => {
  if (f.done) return;
  forget(f);
  finishFiles(f, failure(e));
};
const runJob = (f, blob, job) => {
  blob.wanted--;
  if (blob.corrupt !== undefined) return answer({ id: f.id, key: job.key, corrupt: blob.corrupt });
  const error = writeFile(job.file, blob.parts);
  answer(error === undefined ? { id: f.id, key: job.key } : { id: f.id, key: job.key, error });
};
const release = (f, index, blob) => {
  if (blob.wanted > 0) return;
  f.ready.delete(index);
  f.held -= blob.length;
  pressure(f);
};
const settleFiles = (f) => {
  if (f.received && f.ready.size === 0 && f.jobs.size === 0) forget(f);
};
// A blob is complete: checked once, then written for the files asked so far; kept for those to come.
const complete = (f, index, parts) => {
  const planned = f.blobs[index];
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  const actual = hash.digest('hex');
  const blob = { parts, length: planned.length, wanted: planned.wanted, corrupt: actual === planned.digest ? undefined : actual };
  const jobs = f.jobs.get(index);
  f.jobs.delete(index);
  for (const job of jobs || []) runJob(f, blob, job);
  if (blob.wanted > 0) {
    f.ready.set(index, blob);
    f.held += blob.length;
  }
};
const take = (f, chunk) => {
  const end = f.position + chunk.length;
  while (f.next < f.blobs.length) {
    const b = f.blobs[f.next];
    if (b.offset >= end) break;
    const from = Math.max(b.offset, f.position);
    const to = Math.min(b.offset + b.length, end);
    if (to > from) f.parts.push(chunk.subarray(from - f.position, to - f.position));
    if (to < b.offset + b.length) break; // continues in the next chunk
    const parts = f.parts;
    f.parts = [];
    complete(f, f.next, parts);
    f.next++;
  }
  f.position = end;
};
// The whole body is here (the connection is free); what it holds is checked against the plan, now or when it comes.
const bodyEnded = (f) => {
  if (f.done) return;
  if (f.blobs !== undefined && f.next < f.blobs.length) return failFiles(f, Object.assign(new Error('the pack ended before blob ' + f.blobs[f.next].digest), { code: 'ECONNRESET' }));
  if (!f.received) {
    f.received = true;
    finishFiles(f, { end: true });
  }
  if (f.blobs !== undefined) settleFiles(f);
};
const startFiles = ({ id, url, window }) => {
  const f = { id, window, request: undefined, response: undefined, paused: false, done: false, ended: false, received: false,
    blobs: undefined, next: 0, parts: [], position: 0, early: [], earlyBytes: 0, ready: new Map(), jobs: new Map(), held: 0 };
  fileDownloads.set(id, f);
  f.request = getBody(url, {
    fail: (e) => failFiles(f, e),
    answer: (statusCode, body) => {
      if (f.done) return;
      forget(f);
      finishFiles(f, { answer: { statusCode, body } });
    },
    head: (res) => {
      f.response = res;
    },
    chunk: (chunk) => {
      if (f.done) return;
      if (f.blobs === undefined) {
        // No plan yet (opened ahead of it): kept as it came.
        f.early.push(chunk);
        f.earlyBytes += chunk.length;
      } else take(f, chunk);
      pressure(f);
    },
    end: () => {
      if (f.done) return;
      f.ended = true;
      bodyEnded(f);
    },
  });
};
const onFilesMessage = (m) => {
  const f = fileDownloads.get(m.id);
  if (m.op === 'file') {
    // A download gone (failed, cancelled) or a blob no longer kept: the main thread reads it another way.
    if (f === undefined) return answer({ id: m.id, key: m.key, lost: true });
    const ready = f.ready.get(m.blob);
    if (ready !== undefined) {
      runJob(f, ready, m);
      release(f, m.blob, ready);
      return settleFiles(f);
    }
    if (f.blobs !== undefined && m.blob < f.next) return answer({ id: m.id, key: m.key, lost: true });
    const jobs = f.jobs.get(m.blob) || [];
    jobs.push(m);
    f.jobs.set(m.blob, jobs);
    return;
  }
  if (f === undefined) return;
  if (m.op === 'plan') {
    f.blobs = m.blobs;
    const early = f.early;
    f.early = [];
    f.earlyBytes = 0;
    for (const chunk of early) take(f, chunk);
    pressure(f);
    if (f.ended) bodyEnded(f);
  } else if (m.op === 'cancel') forget(f);
};
const start = ({ id, url, window }) => {
  const d = { id, window, request: undefined, response: undefined, outstanding: 0, paused: false, pending: [], scheduled: false, done: false };
  downloads.set(id, d);
  const fail = (e) => {
    finish(d, failure(e));
    if (d.request) d.request.destroy();
  };
  d.request = getBody(url, {
    fail,
    answer: (statusCode, body) => {
      finish(d, { answer: { statusCode, body } });
      d.request.destroy();
    },
    head: (res) => {
      d.response = res;
      parentPort.postMessage({ id, started: true });
    },
    chunk: (chunk) => {
      if (d.done) return;
      // Each chunk is a buffer of its own (the parser copied it out of the socket's): moved as it is.
      const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk.buffer : Uint8Array.prototype.slice.call(chunk).buffer;
      d.pending.push(own);
      d.outstanding += chunk.length;
      if (!d.scheduled) {
        d.scheduled = true;
        setImmediate(() => send(d));
      }
      if (d.outstanding > d.window && !d.paused) {
        d.paused = true;
        d.response.pause();
      }
    },
    end: () => finish(d, { end: true }),
  });
};
parentPort.on('message', (m) => {
  if (m.op === 'get') return start(m);
  if (m.op === 'files') return startFiles(m);
  if (fileDownloads.has(m.id) || m.op === 'file' || m.op === 'plan') return onFilesMessage(m);
  const d = downloads.get(m.id);
  if (d === undefined) return;
  if (m.op === 'ack') {
    d.outstanding -= m.bytes;
    if (d.paused && d.outstanding <= d.window / 2) {
      d.paused = false;
      d.response.resume();
    }
  } else if (m.op === 'cancel') {
    d.done = true;
    downloads.delete(d.id);
    if (d.request) d.request.destroy();
  }
});
`;

type WireResult = {
  readonly id: number;
  readonly key: number;
  readonly corrupt?: string;
  readonly lost?: true;
  readonly error?: { readonly message: string; readonly code?: string; readonly syscall?: string; readonly path?: string };
};

type FromWorker =
  | { readonly results: ReadonlyArray<WireResult> }
  | { readonly id: number; readonly started: true }
  | { readonly id: number; readonly chunks: ArrayBuffer[] }
  | { readonly id: number; readonly end: true }
  | { readonly id: number; readonly error: { readonly message: string; readonly code?: string; readonly statusCode?: number } }
  /** The store's answer other than 200: its status and (the start of) its error document. */
  | { readonly id: number; readonly answer: { readonly statusCode: number; readonly body: string } };

interface Download {
  /** Until the answer's head: settles the `get` promise. */
  started: ((stream: Readable) => void) | undefined;
  failed: ((e: Error) => void) | undefined;
  stream: Readable | undefined;
  /** Bytes pushed and consumed (or pushed below the high-water mark) but not acknowledged yet. */
  unacknowledged: number;
  /** Bytes pushed past the high-water mark: acknowledged when the stream is read on. */
  held: number;
}

const errorOf = (e: { readonly message: string; readonly code?: string; readonly statusCode?: number }): Error =>
  Object.assign(new Error(e.message), {
    ...(e.code === undefined || e.code === null ? {} : { code: e.code }),
    ...(typeof e.statusCode === 'number' ? { statusCode: e.statusCode } : {}),
  });

/** One blob of a pack to take out into files: where it lies, what it must hash to, how many files will want it. */
export interface PlannedBlob {
  readonly offset: number;
  readonly length: number;
  readonly digest: string;
  readonly wanted: number;
}

/** A new file the worker creates (exclusively) and fills with a blob. */
export interface WorkerFile {
  readonly path: string;
  readonly mode: number;
  readonly owner?: { readonly uid: number; readonly gid: number };
  readonly mtimeMs: number;
}

/**
 * What became of one file: written (complete, not synced); the blob hashed to another digest (no
 * file); the file failed (the errno in the error; no file); or lost: the download failed or
 * dropped the blob before the file was asked for, and the caller reads the blob another way.
 */
export type FileResult =
  | { readonly kind: 'written' }
  | { readonly kind: 'corrupt'; readonly actual: string }
  | { readonly kind: 'failed'; readonly error: Error }
  | { readonly kind: 'lost' };

/**
 * A pack downloaded on the worker, whose blobs go into files there: the bytes never come to this
 * thread. The plan (which blobs, where) may come after the start (a download opened ahead): until
 * then the worker keeps what arrives. Each blob is verified once, written for every file asked
 * for it, and kept (within the window) until as many files as planned were asked.
 */
export interface FileDownload {
  plan(blobs: ReadonlyArray<PlannedBlob>): void;
  /** Writes the blob at `index` of the plan into a new file. */
  write(index: number, file: WorkerFile): Promise<FileResult>;
  /** Drops the download; files asked and not written yet are lost. */
  cancel(): void;
  /** Resolves once the whole pack was received, rejects when the download failed: its connection is free either way. */
  readonly received: Promise<void>;
}

interface FileDownloadState {
  readonly jobs: Map<number, (r: FileResult) => void>;
  received: boolean;
  readonly settle: { readonly resolve: () => void; readonly reject: (e: Error) => void };
}

let nextId = 1;
let nextKey = 1;
const downloads = new Map<number, Download>();
const fileDownloads = new Map<number, FileDownloadState>();

const post = (message: unknown): void => host.current()?.postMessage(message);

const acknowledge = (id: number, d: Download, force: boolean): void => {
  if (d.unacknowledged === 0 || (!force && d.unacknowledged < ACK_STEP)) return;
  post({ op: 'ack', id, bytes: d.unacknowledged });
  d.unacknowledged = 0;
};

const underWay = (): boolean => downloads.size > 0 || [...fileDownloads.values()].some((f) => !f.received || f.jobs.size > 0);

/** Nothing under way: the worker must not keep the process alive, and goes if nothing comes. */
const settleIdle = (): void => host.settleIdle();

const settle = (id: number): void => {
  downloads.delete(id);
  settleIdle();
};

const resultOf = (r: WireResult): FileResult => {
  if (r.lost === true) return { kind: 'lost' };
  if (r.corrupt !== undefined) return { kind: 'corrupt', actual: r.corrupt };
  if (r.error !== undefined) return { kind: 'failed', error: Object.assign(new Error(r.error.message), { code: r.error.code, syscall: r.error.syscall, path: r.error.path }) };
  return { kind: 'written' };
};

const dropFileDownload = (id: number, f: FileDownloadState, error: Error | undefined): void => {
  fileDownloads.delete(id);
  for (const done of f.jobs.values()) done({ kind: 'lost' });
  f.jobs.clear();
  if (error !== undefined) f.settle.reject(error);
  else f.settle.resolve(); // cancelled: nobody waits for more
  settleIdle();
};

const onFileMessage = (m: Exclude<FromWorker, { readonly results: ReadonlyArray<WireResult> }>, f: FileDownloadState): void => {
  if ('error' in m || 'answer' in m) {
    dropFileDownload(m.id, f, 'answer' in m ? storeAnswerError(m.answer.statusCode, m.answer.body) : errorOf(m.error));
  } else if ('end' in m) {
    f.received = true;
    f.settle.resolve();
    settleIdle();
  }
};

const onMessage = (m: FromWorker): void => {
  if ('results' in m) {
    for (const r of m.results) {
      const f = fileDownloads.get(r.id);
      const done = f?.jobs.get(r.key);
      if (f === undefined || done === undefined) continue;
      f.jobs.delete(r.key);
      done(resultOf(r));
    }
    settleIdle();
    return;
  }
  const f = fileDownloads.get(m.id);
  if (f !== undefined) return onFileMessage(m, f);
  const d = downloads.get(m.id);
  if (d === undefined) return;
  if ('error' in m || 'answer' in m) {
    settle(m.id);
    const error = 'answer' in m ? storeAnswerError(m.answer.statusCode, m.answer.body) : errorOf(m.error);
    if (d.failed !== undefined) d.failed(error);
    else d.stream?.destroy(error);
    return;
  }
  if ('started' in m) {
    const stream = new Readable({
      // Chunk by chunk: a byte stream's read() joins whatever chunks it buffered into one new
      // buffer (a copy of every byte, which is what moving the receiving here was to save).
      objectMode: true,
      // Below this many chunks the stream takes what comes; past it, what comes is held, and the
      // worker stops reading the connection once it holds its own window.
      highWaterMark: STREAM_CHUNKS,
      read() {
        if (d.held === 0) return;
        d.unacknowledged += d.held;
        d.held = 0;
        acknowledge(m.id, d, true);
      },
      destroy(error, callback) {
        if (downloads.has(m.id)) {
          post({ op: 'cancel', id: m.id });
          settle(m.id);
        }
        callback(error);
      },
    });
    d.stream = stream;
    const started = d.started;
    d.started = undefined;
    d.failed = undefined;
    started?.(stream);
    return;
  }
  const stream = d.stream;
  if (stream === undefined) return;
  if ('end' in m) {
    settle(m.id);
    stream.push(null);
    return;
  }
  for (const chunk of m.chunks) {
    if (stream.push(Buffer.from(chunk))) d.unacknowledged += chunk.byteLength;
    else d.held += chunk.byteLength;
  }
  acknowledge(m.id, d, false);
};

const failAll = (error: Error): void => {
  for (const [id, f] of [...fileDownloads]) dropFileDownload(id, f, error);
  for (const [id, d] of [...downloads]) {
    downloads.delete(id);
    if (d.failed !== undefined) d.failed(error);
    else d.stream?.destroy(error);
  }
};

const host = makeWorkerHost({ source: WORKER_SOURCE, name: 'download worker', idleMs: IDLE_MS, underWay, onMessage, onFailure: failAll });

/** Starts the worker now: the first download then does not wait for its start. */
export const warmDownloadWorker = (): void => {
  host.running();
  settleIdle();
};

/**
 * GETs `url` (presigned: the worker signs nothing) on the download worker. Resolves with the
 * body once a 200 answer's head arrived; rejects with an Error carrying the S3 error `code` and
 * `statusCode` otherwise. Destroying the stream cancels the download.
 */
export const downloadOffThread = (url: string): Promise<Readable> =>
  new Promise<Readable>((resolve, reject) => {
    const w = host.running(); // under way: the process waits for it
    const id = nextId++;
    downloads.set(id, { started: resolve, failed: reject, stream: undefined, unacknowledged: 0, held: 0 });
    w.postMessage({ op: 'get', id, url, window: WINDOW_BYTES });
  });

/**
 * GETs the pack at `url` (presigned; it may still be coming) on the download worker, whose blobs
 * go into files there (see FileDownload). A store's error answer or a failed connection rejects
 * `received` with an Error carrying the S3 `code` and `statusCode`; the files asked then are lost.
 */
export const downloadToFilesOffThread = (url: Promise<string>): FileDownload => {
  host.running();
  const id = nextId++;
  let settle: FileDownloadState['settle'] = { resolve: () => undefined, reject: () => undefined };
  const received = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  received.catch(() => undefined); // a failure is also every file's `lost`: nobody need wait for this
  const f: FileDownloadState = { jobs: new Map(), received: false, settle };
  fileDownloads.set(id, f);
  // In order, once the URL is there: the start, then what was asked meanwhile.
  let outbox: unknown[] | undefined = [];
  const send = (message: unknown): void => {
    if (outbox !== undefined) outbox.push(message);
    else if (fileDownloads.has(id)) post(message);
  };
  url.then(
    (u) => {
      const queued = outbox ?? [];
      outbox = undefined;
      if (!fileDownloads.has(id)) return;
      post({ op: 'files', id, url: u, window: WINDOW_BYTES });
      for (const message of queued) post(message);
    },
    (e: unknown) => {
      outbox = undefined;
      if (fileDownloads.has(id)) dropFileDownload(id, f, e instanceof Error ? e : new Error(String(e)));
    },
  );
  return {
    received,
    plan: (blobs) => send({ op: 'plan', id, blobs }),
    write: (index, file) =>
      new Promise<FileResult>((resolve) => {
        if (!fileDownloads.has(id)) return resolve({ kind: 'lost' });
        const key = nextKey++;
        f.jobs.set(key, resolve);
        host.current()?.ref();
        send({ op: 'file', id, blob: index, key, file });
      }),
    cancel: () => {
      if (!fileDownloads.has(id)) return;
      send({ op: 'cancel', id });
      dropFileDownload(id, f, undefined);
    },
  };
};

/** Stops the worker now (tests, or a shutdown); downloads under way fail. */
export const stopDownloadWorker = (): Promise<void> =>
  host.stop(Object.assign(new Error('the download worker was stopped'), { code: 'ECONNRESET' }));
