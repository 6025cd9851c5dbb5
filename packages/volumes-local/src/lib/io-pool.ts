import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { type GetReply, type GetRequest, type IoReply, type IoRequest, type IoResponse, type PutReply, type PutRequest, type RenameReply, type RenameRequest, type WireError } from './io-protocol';

/*
 * The hot paths of the volume (`putFile`, a whole-blob get, the renames of a flush) run
 * on a few worker threads with synchronous file-system calls instead of libuv's threadpool.
 * A blob costs one message each way instead of 5-9 threadpool round trips, each of which costs
 * ~20 us of cross-thread wake-ups on a VM, and the hashing and compression leave the main
 * thread, so a 2-core machine uses both cores. One pool serves every volume of the process.
 *
 * Workers start on first use and stop after IDLE_MS without work (they do not keep the process
 * alive); a worker that dies fails its requests with EIO and is replaced by the next request.
 */
const IDLE_MS = 5000;
const DEFAULT_THREADS = Math.max(1, Math.min(2, availableParallelism()));

/** The thread count: `ZXBACKUP_IO_THREADS` when set (1-16), else one per core up to 2. */
export const ioThreads = (env: NodeJS.ProcessEnv = process.env): number => {
  const asked = Number(env['ZXBACKUP_IO_THREADS']);
  return Number.isInteger(asked) && asked >= 1 && asked <= 16 ? asked : DEFAULT_THREADS;
};

/** A failure raised by a worker: the file-system error as the worker saw it. */
export class WorkerIoError extends Error {
  readonly code: string | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;
  readonly inSource: boolean;
  constructor(wire: WireError) {
    super(wire.message);
    this.name = 'WorkerIoError';
    this.code = wire.code;
    this.syscall = wire.syscall;
    this.path = wire.path;
    this.inSource = wire.inSource === true;
  }
}

interface Slot {
  readonly worker: Worker;
  readonly waiting: Map<number, { resolve: (reply: IoReply) => void; reject: (error: unknown) => void }>;
  idleTimer: NodeJS.Timeout | undefined;
  /** Requests of this turn of the event loop, posted together (see `call`). */
  outbox: IoRequest[];
}

/**
 * How to start a worker: the compiled `io-worker.js` beside this file, or, when this package
 * runs from its TypeScript sources (its own specs, the workspace's `@zxbackup/source`
 * condition), `io-worker.ts` through ts-node, a development dependency of the workspace.
 */
const workerEntry = (): { file: string; options: ConstructorParameters<typeof Worker>[1] } => {
  if (!__filename.endsWith('.ts')) return { file: path.join(__dirname, 'io-worker.js'), options: {} };
  return {
    file: path.join(__dirname, 'io-worker.ts'),
    options: {
      execArgv: ['--require', require.resolve('ts-node/register/transpile-only')],
      env: {
        ...process.env,
        TS_NODE_SKIP_PROJECT: 'true',
        TS_NODE_COMPILER_OPTIONS: JSON.stringify({ module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022' }),
      },
    },
  };
};

const slots: Slot[] = [];
let nextId = 1;

const describe = (cause: unknown): string => {
  // An Error from another realm (a worker, a test sandbox) fails `instanceof Error`.
  if (typeof cause === 'object' && cause !== null && 'message' in cause && typeof cause.message === 'string') return cause.message;
  return typeof cause === 'string' ? cause : JSON.stringify(cause);
};

const retire = (slot: Slot, cause: unknown): void => {
  const at = slots.indexOf(slot);
  if (at >= 0) slots.splice(at, 1);
  if (slot.idleTimer !== undefined) clearTimeout(slot.idleTimer);
  const error = Object.assign(new Error(`volume I/O worker stopped: ${describe(cause)}`), { code: 'EIO' });
  for (const { reject } of slot.waiting.values()) reject(error);
  slot.waiting.clear();
};

const startSlot = (): Slot => {
  const { file, options } = workerEntry();
  const worker = new Worker(file, options);
  const slot: Slot = { worker, waiting: new Map(), idleTimer: undefined, outbox: [] };
  worker.unref();
  worker.on('message', (responses: readonly IoResponse[]) => {
    for (const response of responses) {
      const waiter = slot.waiting.get(response.id);
      if (waiter === undefined) continue;
      slot.waiting.delete(response.id);
      if (response.ok) waiter.resolve(response.reply);
      else waiter.reject(new WorkerIoError(response.error));
    }
    if (slot.waiting.size === 0) idle(slot);
  });
  worker.on('error', (error) => retire(slot, error));
  worker.on('exit', (code) => retire(slot, `exit code ${code}`));
  slots.push(slot);
  return slot;
};

/** No request in flight: let the process exit, and stop the thread if nothing comes. */
const idle = (slot: Slot): void => {
  slot.worker.unref();
  slot.idleTimer = setTimeout(() => {
    if (slot.waiting.size > 0) return;
    retire(slot, 'idle');
    void slot.worker.terminate();
  }, IDLE_MS);
  slot.idleTimer.unref();
};

/** The least busy worker, starting one while there are fewer than `ioThreads()`. */
const pick = (): Slot => {
  let best: Slot | undefined;
  for (const slot of slots) if (best === undefined || slot.waiting.size < best.waiting.size) best = slot;
  if (best === undefined || (best.waiting.size > 0 && slots.length < ioThreads())) return startSlot();
  return best;
};

type WithoutId<R> = R extends unknown ? Omit<R, 'id'> : never;

const call = <A extends IoReply>(request: WithoutId<PutRequest | GetRequest | RenameRequest>): Promise<A> => {
  const slot = pick();
  const id = nextId;
  nextId += 1;
  if (slot.idleTimer !== undefined) {
    clearTimeout(slot.idleTimer);
    slot.idleTimer = undefined;
  }
  if (slot.waiting.size === 0) slot.worker.ref();
  return new Promise<A>((resolve, reject) => {
    slot.waiting.set(id, { resolve: resolve as (reply: IoReply) => void, reject });
    // Callers that resume in the same turn (the completions of one response batch) send their
    // next requests together, after the turn's callbacks ran.
    if (slot.outbox.length === 0) setImmediate(() => post(slot));
    slot.outbox.push({ ...request, id } as IoRequest);
  });
};

const post = (slot: Slot): void => {
  const requests = slot.outbox;
  slot.outbox = [];
  try {
    slot.worker.postMessage(requests);
  } catch (error) {
    // Only a request that cannot be cloned gets here (a programmer error); fail them, not the pool.
    for (const request of requests) {
      slot.waiting.get(request.id)?.reject(error);
      slot.waiting.delete(request.id);
    }
  }
};

export const ioPool = {
  putFile: (request: Omit<PutRequest, 'id' | 'op'>): Promise<PutReply> => call<PutReply>({ op: 'put', ...request }),
  get: (request: Omit<GetRequest, 'id' | 'op'>): Promise<GetReply> => call<GetReply>({ op: 'get', ...request }),
  rename: (request: Omit<RenameRequest, 'id' | 'op'>): Promise<RenameReply> => call<RenameReply>({ op: 'rename', ...request }),
};

/**
 * Stops every I/O worker now (a shutdown that cannot wait, or a test). Requests in flight fail
 * with EIO, as when a worker dies; the next request starts a new worker.
 */
export const stopIoWorkers = async (): Promise<void> => {
  const running = [...slots];
  for (const slot of running) retire(slot, 'stopped');
  await Promise.all(running.map((slot) => slot.worker.terminate()));
};
