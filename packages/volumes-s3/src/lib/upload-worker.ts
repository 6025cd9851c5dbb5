import { makeWorkerHost } from './worker-host';

/** A blob in a local file: `length` bytes at `offset`, which must hash (SHA-256) to `digest`. */
export interface FileBlob {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
  readonly digest: string;
}

/** What the store answered to a PUT the worker sent. */
export type UploadAnswer =
  | { readonly kind: 'answered'; readonly status: number; readonly etag: string; readonly body: string; readonly md5: string }
  /** A blob's bytes on disk do not hash to its digest: nothing was sent. */
  | { readonly kind: 'corrupt'; readonly digest: string; readonly actual: string };

export interface UploadRequest {
  /** A presigned PUT URL: the worker signs nothing. */
  readonly url: string;
  readonly blobs: readonly FileBlob[];
  /** The sum of the blobs' lengths. */
  readonly size: number;
  /** The request is abandoned after this long (an Error with code `UploadTimeout`). */
  readonly timeoutMs: number;
}

/*
 * The upload worker: a pack's PUT is sent from a worker thread that reads the pack's blobs from
 * the spool files (in the page cache) into a buffer it reuses, checks each against its digest,
 * takes the MD5 of the whole (its Content-MD5) and sends it. The main thread never holds a
 * pack's bytes. Before, a SmartScan read each mail into fresh memory and kept it for the
 * uploader: on this VM a fresh page costs a fault, and reading the corpus into fresh buffers took
 * 4.2-5.1 s of CPU where reading it into a reused one took 1.7-2.0 s.
 *
 * Plain JavaScript, evaluated: no file to resolve, whether this package runs from dist, from
 * source or from the CLI's bundle.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { closeSync, openSync, readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const http = require('node:http');
const https = require('node:https');
const agents = { 'http:': new http.Agent({ keepAlive: true }), 'https:': new https.Agent({ keepAlive: true }) };
// Buffers of finished uploads, reused: a few packs' worth at most.
const free = [];
const KEEP = 4;
const STEP = 4 * 1024 * 1024;
const take = (size) => {
  let best = -1;
  for (let i = 0; i < free.length; i++) if (free[i].length >= size && (best < 0 || free[i].length < free[best].length)) best = i;
  if (best >= 0) return free.splice(best, 1)[0];
  // With room to spare: packs differ in size by up to a blob, and a buffer that a pack a few
  // bytes larger cannot reuse means fresh memory again, which is what this worker is to avoid.
  return Buffer.allocUnsafeSlow(Math.ceil((size + 1) / STEP) * STEP + STEP);
};
const give = (b) => {
  if (free.length < KEEP) free.push(b);
};
const wire = (e) => ({ message: String((e && e.message) || e), code: e && typeof e.code === 'string' ? e.code : undefined });

// Reads the blobs into one buffer, each checked; the MD5 of the whole, or the first bad blob.
const gather = (m, buffer) => {
  const md5 = createHash('md5');
  let at = 0;
  let fd;
  let open;
  try {
    for (const b of m.blobs) {
      if (b.file !== open) {
        if (fd !== undefined) closeSync(fd);
        fd = undefined; // closed: not again in finally, should the next open fail
        fd = openSync(b.file, 'r');
        open = b.file;
      }
      for (let done = 0; done < b.length; ) {
        const got = readSync(fd, buffer, at + done, b.length - done, b.offset + done);
        if (got <= 0) throw new Error(b.file + ' ends before ' + (b.offset + b.length));
        done += got;
      }
      const blob = buffer.subarray(at, at + b.length);
      const actual = createHash('sha256').update(blob).digest('hex');
      if (actual !== b.digest) return { corrupt: b.digest, actual };
      md5.update(blob);
      at += b.length;
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (at !== m.size) throw new Error('the blobs hold ' + at + ' bytes, not the announced ' + m.size);
  return { md5: md5.digest() };
};

parentPort.on('message', (m) => {
  let buffer;
  let sending = false;
  let timer;
  try {
    buffer = take(m.size);
    const read = gather(m, buffer);
    if (read.corrupt !== undefined) {
      give(buffer);
      parentPort.postMessage({ id: m.id, corrupt: read.corrupt, actual: read.actual });
      return;
    }
    const url = new URL(m.url);
    let finished = false;
    const finish = (message) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      parentPort.postMessage(message);
    };
    const request = (url.protocol === 'https:' ? https : http).request(
      url,
      {
        method: 'PUT',
        agent: agents[url.protocol],
        headers: { 'Content-Length': String(m.size), 'Content-MD5': read.md5.toString('base64') },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          if (body.length < 4096) body += d;
        });
        res.on('end', () =>
          finish({ id: m.id, status: res.statusCode || 0, etag: String(res.headers.etag || ''), body, md5: read.md5.toString('hex') }),
        );
        res.on('error', (e) => finish({ id: m.id, error: wire(e) }));
      },
    );
    timer = setTimeout(() => {
      const e = new Error('upload did not finish within ' + m.timeoutMs + ' ms');
      e.code = 'UploadTimeout';
      request.destroy(e);
    }, m.timeoutMs);
    request.on('error', (e) => finish({ id: m.id, error: wire(e) }));
    // The buffer is reused only once the request is over, its socket done with the bytes.
    sending = true;
    request.once('close', () => give(buffer));
    request.end(buffer.subarray(0, m.size));
  } catch (e) {
    clearTimeout(timer);
    if (buffer !== undefined && !sending) give(buffer);
    parentPort.postMessage({ id: m.id, error: wire(e) });
  }
});
`;

type FromWorker =
  | { readonly id: number; readonly status: number; readonly etag: string; readonly body: string; readonly md5: string }
  | { readonly id: number; readonly corrupt: string; readonly actual: string }
  | { readonly id: number; readonly error: { readonly message: string; readonly code?: string } };

/** Stopped after this long without an upload; started again by the next. */
const IDLE_MS = 5000;

let nextId = 1;
const waiting = new Map<number, { readonly resolve: (a: UploadAnswer) => void; readonly reject: (e: Error) => void }>();

const onMessage = (m: FromWorker): void => {
  const w = waiting.get(m.id);
  waiting.delete(m.id);
  if (w !== undefined) {
    if ('error' in m) w.reject(Object.assign(new Error(m.error.message), m.error.code === undefined ? {} : { code: m.error.code }));
    else if ('corrupt' in m) w.resolve({ kind: 'corrupt', digest: m.corrupt, actual: m.actual });
    else w.resolve({ kind: 'answered', status: m.status, etag: m.etag, body: m.body, md5: m.md5 });
  }
  host.settleIdle();
};

const host = makeWorkerHost({
  source: WORKER_SOURCE,
  name: 'upload worker',
  idleMs: IDLE_MS,
  underWay: () => waiting.size > 0,
  onMessage,
  onFailure: (error) => {
    for (const w of waiting.values()) w.reject(error);
    waiting.clear();
  },
});

/**
 * PUTs the concatenation of `blobs` to `url` from the upload worker, with its Content-MD5.
 * Resolves with the store's answer (whatever its status: the caller judges it) or with the
 * first blob whose bytes on disk do not match its digest; rejects when no answer came (the
 * Error carries the network error's `code`, or `UploadTimeout`).
 */
export const uploadOffThread = (request: UploadRequest): Promise<UploadAnswer> =>
  new Promise<UploadAnswer>((resolve, reject) => {
    const w = host.running();
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    w.postMessage({ id, url: request.url, blobs: request.blobs, size: request.size, timeoutMs: request.timeoutMs });
  });

/** Stops the worker now (tests, or a shutdown); uploads under way fail. */
export const stopUploadWorker = (): Promise<void> =>
  host.stop(Object.assign(new Error('the upload worker was stopped'), { code: 'ECONNRESET' }));
