import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as TE from 'fp-ts/TaskEither';
import * as E from 'fp-ts/Either';
import type { OperationRecord, OperationStore } from '@zxbackup/item-store';
import type { Notifier } from './notifications';

/** Progress of a long operation, as `monitor` shows it. */
export interface ProgressUpdate {
  readonly done: number;
  readonly total?: number;
  readonly phase?: string;
  readonly message?: string;
}


/** What a running operation can do: report progress and learn that doStopOperation asked it to stop. */
export interface OperationControl {
  readonly id: string;
  progress(p: ProgressUpdate): void;
  shouldStop(): boolean;
}

const PERSIST_INTERVAL_MS = 500;
const STOP_POLL_INTERVAL_MS = 500;

/** The stop request is a separate marker file, so the running process never overwrites it. */
export const stopMarkerPath = (backupRoot: string, id: string): string => path.join(backupRoot, 'operations', `${id}.stop`);

/**
 * Runs `work` as a persisted operation: `getAllOperations` and `monitor` (from any process) see
 * its kind, progress and outcome; `doStopOperation` makes `shouldStop()` true.
 */
export const runOperation = <E, A extends Record<string, unknown>>(
  deps: {
    readonly backupRoot: string;
    readonly operations: OperationStore;
    readonly onProgress?: (p: ProgressUpdate) => void;
    readonly onFinish?: () => void;
    readonly onStart?: (id: string) => void;
    /** Told when the operation starts, finishes and fails (notification level filters). */
    readonly notifier?: Notifier;
  },
  kind: string,
  params: Record<string, unknown>,
  work: (control: OperationControl) => TE.TaskEither<E, A>,
): TE.TaskEither<E | { readonly _tag: 'OperationStoreError'; readonly message: string }, { readonly id: string; readonly result: A }> => {
  const id = randomUUID();
  const startedAt = Date.now();
  let record: OperationRecord = {
    format: 1,
    id,
    kind,
    state: 'running',
    startedAt,
    updatedAt: startedAt,
    pid: process.pid,
    progress: { done: 0 },
    params,
  };
  let lastPersist = 0;
  let lastStopPoll = 0;
  let stopSeen = false;
  let writing: Promise<unknown> = Promise.resolve();
  const persist = (next: OperationRecord): Promise<unknown> => {
    record = next;
    // Writes are serialized so a slow progress write never lands after the final state.
    writing = writing.then(() => deps.operations.put(record)());
    return writing;
  };
  const control: OperationControl = {
    id,
    progress: (p) => {
      deps.onProgress?.(p);
      const now = Date.now();
      if (now - lastPersist >= PERSIST_INTERVAL_MS) {
        lastPersist = now;
        void persist({ ...record, progress: p, updatedAt: now });
      } else {
        record = { ...record, progress: p };
      }
    },
    shouldStop: () => {
      const now = Date.now();
      if (!stopSeen && now - lastStopPoll >= STOP_POLL_INTERVAL_MS) {
        lastStopPoll = now;
        stopSeen = fs.existsSync(stopMarkerPath(deps.backupRoot, id));
      }
      return stopSeen;
    },
  };
  const finish = (state: OperationRecord['state'], extra: Partial<OperationRecord>) => async () => {
    deps.onFinish?.();
    const now = Date.now();
    await persist({ ...record, ...extra, state, updatedAt: now, endedAt: now });
    await fs.promises.rm(stopMarkerPath(deps.backupRoot, id), { force: true });
  };
  return async () => {
    const started = await deps.operations.put(record)();
    if (E.isLeft(started)) return E.left({ _tag: 'OperationStoreError' as const, message: started.left.message });
    deps.onStart?.(id);
    await deps.notifier?.notify({ level: 'Information', event: 'operation.started', subject: `${kind} started`, details: { operation: id, ...params } });
    const outcome = await work(control)();
    if (E.isLeft(outcome)) {
      const err = outcome.left as { message?: string; _tag?: string };
      const error = err.message ?? err._tag ?? String(outcome.left);
      await finish('failed', { error })();
      await deps.notifier?.notify({ level: 'Error', event: 'operation.failed', subject: `${kind} failed: ${error}`, details: { operation: id, error } });
      return outcome;
    }
    const state = control.shouldStop() || stopSeen ? 'stopped' : 'succeeded';
    await finish(state, { result: outcome.right })();
    const failures = Array.isArray(outcome.right['failures']) ? outcome.right['failures'].length : 0;
    await deps.notifier?.notify({
      level: failures > 0 ? 'Warning' : 'Information',
      event: 'operation.finished',
      subject: `${kind} ${state}${failures > 0 ? ` with ${failures} failure(s)` : ''}`,
      details: { operation: id, ...outcome.right },
    });
    return E.right({ id, result: outcome.right });
  };
};

/** An operation still marked running whose process is gone was interrupted (killed, crashed). */
export const effectiveState = (op: OperationRecord): OperationRecord['state'] | 'interrupted' => {
  if (op.state !== 'running' || op.pid === undefined) return op.state;
  try {
    process.kill(op.pid, 0);
    return 'running';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM' ? 'running' : 'interrupted';
  }
};
