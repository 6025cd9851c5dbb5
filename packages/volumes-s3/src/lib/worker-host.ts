import { Worker } from 'node:worker_threads';

/**
 * One worker thread started on demand from evaluated source, and stopped after `idleMs` with
 * nothing under way (the upload and download workers). While something is under way it keeps
 * the process alive; otherwise it does not.
 */
export interface WorkerHost {
  /** The worker, started if it is not running; under way now (it keeps the process alive). */
  running(): Worker;
  /** The worker if it runs. */
  current(): Worker | undefined;
  /** Call when work may have ended: when `underWay` says none is left, the worker stops keeping the process alive and goes after `idleMs`. */
  settleIdle(): void;
  /** Stops the worker now; `onFailure` gets `stopped` first, for what was under way. */
  stop(stopped: Error): Promise<void>;
}

/** `M`: what the worker posts (its source is ours: trusted, not decoded). */
export const makeWorkerHost = <M>(options: {
  readonly source: string;
  readonly name: string;
  readonly idleMs: number;
  readonly underWay: () => boolean;
  readonly onMessage: (message: M) => void;
  /** The worker failed or exited: fail what is under way (the next request starts a new worker). */
  readonly onFailure: (error: Error) => void;
}): WorkerHost => {
  let worker: Worker | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const clearIdle = (): void => {
    if (idleTimer !== undefined) clearTimeout(idleTimer);
    idleTimer = undefined;
  };
  const fail = (error: Error): void => {
    worker = undefined;
    options.onFailure(error);
  };
  const host: WorkerHost = {
    running: () => {
      clearIdle();
      if (worker === undefined) {
        const w = new Worker(options.source, { eval: true });
        w.on('message', (m: M) => options.onMessage(m));
        // Only for this worker: an old one stopped for idleness may exit after a new one started.
        w.on('error', (e) => {
          if (worker === w) fail(e);
        });
        w.on('exit', () => {
          if (worker === w) fail(Object.assign(new Error(`the ${options.name} stopped`), { code: 'ECONNRESET' }));
        });
        worker = w;
      }
      worker.ref();
      return worker;
    },
    current: () => worker,
    settleIdle: () => {
      if (options.underWay() || worker === undefined) return;
      worker.unref();
      clearIdle();
      idleTimer = setTimeout(() => void host.stop(Object.assign(new Error(`the ${options.name} stopped, idle`), { code: 'ECONNRESET' })), options.idleMs);
      idleTimer.unref();
    },
    stop: async (stopped) => {
      const w = worker;
      clearIdle();
      if (w === undefined) return;
      fail(stopped);
      await w.terminate();
    },
  };
  return host;
};
