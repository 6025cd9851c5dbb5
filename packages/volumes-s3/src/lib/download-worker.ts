import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
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
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
const downloads = new Map();
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
const start = ({ id, url, window }) => {
  const d = { id, window, request: undefined, response: undefined, outstanding: 0, paused: false, pending: [], scheduled: false, done: false };
  downloads.set(id, d);
  const fail = (e) => {
    finish(d, failure(e));
    if (d.request) d.request.destroy();
  };
  let target;
  try {
    target = new URL(url);
  } catch (e) {
    return fail(e);
  }
  d.request = (target.protocol === 'https:' ? https : http).get(target, { agent: agents[target.protocol] }, (res) => {
    d.response = res;
    if (res.statusCode !== 200) {
      // An S3 error document: read on the main thread (storeAnswerError).
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (t) => { if (text.length < 4096) text += t; });
      res.on('end', () => {
        finish(d, { answer: { statusCode: res.statusCode, body: text } });
        d.request.destroy();
      });
      res.on('error', fail);
      return;
    }
    const expected = Number(res.headers['content-length']);
    let received = 0;
    parentPort.postMessage({ id, started: true });
    res.on('data', (chunk) => {
      if (d.done) return;
      received += chunk.length;
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
        res.pause();
      }
    });
    res.on('end', () => {
      if (Number.isFinite(expected) && received !== expected) fail(Object.assign(new Error('the body ended after ' + received + ' of ' + expected + ' bytes'), { code: 'ECONNRESET' }));
      else finish(d, { end: true });
    });
    res.on('error', fail);
  });
  d.request.on('error', fail);
};
parentPort.on('message', (m) => {
  if (m.op === 'get') return start(m);
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

type FromWorker =
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

let worker: Worker | undefined;
let idleTimer: NodeJS.Timeout | undefined;
let nextId = 1;
const downloads = new Map<number, Download>();

const post = (message: unknown): void => worker?.postMessage(message);

const acknowledge = (id: number, d: Download, force: boolean): void => {
  if (d.unacknowledged === 0 || (!force && d.unacknowledged < ACK_STEP)) return;
  post({ op: 'ack', id, bytes: d.unacknowledged });
  d.unacknowledged = 0;
};

/** Nothing under way: the worker must not keep the process alive, and goes if nothing comes. */
const settleIdle = (): void => {
  if (downloads.size > 0 || worker === undefined) return;
  worker.unref();
  if (idleTimer !== undefined) clearTimeout(idleTimer);
  idleTimer = setTimeout(() => void stopDownloadWorker(), IDLE_MS);
  idleTimer.unref();
};

const settle = (id: number): void => {
  downloads.delete(id);
  settleIdle();
};

const onMessage = (m: FromWorker): void => {
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
  worker = undefined;
  for (const [id, d] of [...downloads]) {
    downloads.delete(id);
    if (d.failed !== undefined) d.failed(error);
    else d.stream?.destroy(error);
  }
};

const running = (): Worker => {
  if (idleTimer !== undefined) {
    clearTimeout(idleTimer);
    idleTimer = undefined;
  }
  if (worker !== undefined) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.on('message', onMessage);
  // Only for this worker: an old one stopped for idleness may exit after a new one started.
  w.on('error', (e) => {
    if (worker === w) failAll(e);
  });
  w.on('exit', () => {
    if (worker === w) failAll(Object.assign(new Error('the download worker stopped'), { code: 'ECONNRESET' }));
  });
  worker = w;
  return w;
};

/** Starts the worker now: the first download then does not wait for its start. */
export const warmDownloadWorker = (): void => {
  running();
  settleIdle();
};

/**
 * GETs `url` (presigned: the worker signs nothing) on the download worker. Resolves with the
 * body once a 200 answer's head arrived; rejects with an Error carrying the S3 error `code` and
 * `statusCode` otherwise. Destroying the stream cancels the download.
 */
export const downloadOffThread = (url: string): Promise<Readable> =>
  new Promise<Readable>((resolve, reject) => {
    const w = running();
    // Under way: the process waits for it.
    w.ref();
    const id = nextId++;
    downloads.set(id, { started: resolve, failed: reject, stream: undefined, unacknowledged: 0, held: 0 });
    w.postMessage({ op: 'get', id, url, window: WINDOW_BYTES });
  });

/** Stops the worker now (tests, or a shutdown); downloads under way fail. */
export const stopDownloadWorker = async (): Promise<void> => {
  const w = worker;
  if (idleTimer !== undefined) clearTimeout(idleTimer);
  idleTimer = undefined;
  if (w === undefined) return;
  failAll(Object.assign(new Error('the download worker was stopped'), { code: 'ECONNRESET' }));
  await w.terminate();
};
