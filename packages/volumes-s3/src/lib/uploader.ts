import * as TE from 'fp-ts/TaskEither';
import * as T from 'fp-ts/Task';
import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
import type { BlobCache } from './cache';
import { toVolumeError } from './errors';
import type { ObjectInfo, ObjectStore } from './object-store';

/** What the volume reports about its background uploads (wire it to notifications). */
export interface UploadStatus {
  /** ok: the last upload attempt worked (or none failed yet); unreachable: the store cannot be reached; degraded: it answers with errors. */
  readonly state: 'ok' | 'degraded' | 'unreachable';
  /** Blobs in the local cache that the store has not confirmed yet. */
  readonly pending: number;
  readonly pendingBytes: number;
  /** The last failure seen, kept after recovery for the record. */
  readonly lastError?: VolumeError;
}

export interface RetrySettings {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
}

export interface UploaderDeps {
  readonly store: ObjectStore;
  readonly cache: BlobCache;
  readonly keyOf: (digest: Digest) => string;
  readonly concurrency: number;
  /**
   * Bytes the running uploads may hold in memory (a single PUT buffers its body; a multipart
   * upload one part): no upload starts beyond it, except one when none runs.
   */
  readonly maxBufferedBytes: number;
  /** Objects larger than this upload in parts of this size. */
  readonly partSize: number;
  readonly retry: RetrySettings;
  /** The store confirmed it holds the blob; called before the blob leaves the cache. */
  readonly onConfirmed?: (digest: Digest) => void;
}

export interface Uploader {
  /** Queues a cached blob (no-op if already queued or uploading) and starts uploading if allowed. */
  enqueue(digest: Digest): void;
  /** Stops a blob's upload from starting and waits for a running one to settle (before a delete). */
  forget(digest: Digest): Promise<void>;
  /** Waits until nothing is pending; fails with the first blob quarantined meanwhile, or on timeout. */
  drain(timeoutMs?: number): TE.TaskEither<VolumeError, void>;
  status(): UploadStatus;
  onStatus(listener: (s: UploadStatus) => void): () => void;
  /** A store failure seen outside the uploader (e.g. the put-path lookup), for the status. */
  observe(e: VolumeError): void;
  /** Stops starting uploads and waits for the running ones. Pending blobs stay in the cache. */
  close(): Promise<void>;
}

/** The store holds exactly these bytes: same size, and the digest we recorded at upload. */
export const isVerified = (info: ObjectInfo | undefined, digest: Digest, size: number): boolean =>
  info !== undefined && info.size === size && info.metadata['sha256'] === digest;

/** gone: the blob left the cache (a delete) or was replaced meanwhile; nothing was done. */
type Outcome = 'uploaded' | 'corrupt' | 'gone';

/**
 * Uploads cached blobs in the background, `concurrency` at a time, oldest first. After any
 * failure all uploads pause for a back-off that doubles per consecutive failure up to
 * `maxDelayMs` and resets on success; the uploader never gives up. A blob leaves the cache
 * only once the store confirmed it: `ObjectStore.put` resolves only when the store holds
 * exactly the bytes sent (one request per blob), or a `stat` shows it holds the right size and
 * digest. A blob this process wrote was looked up in the store by the volume's `put` already,
 * so it is uploaded at once; one found in the cache at start is looked up first (a crash may
 * have come between its upload and its removal from the cache).
 */
export const makeUploader = (deps: UploaderDeps): Uploader => {
  const { store, cache, keyOf } = deps;
  const queue = new Set<Digest>(); // insertion order = upload order
  const inFlight = new Map<Digest, Promise<void>>();
  const buffered = new Map<Digest, number>(); // bytes each running upload may hold in memory
  let bufferedBytes = 0;
  const listeners = new Set<(s: UploadStatus) => void>();
  const idleWaiters = new Set<() => void>();
  const quarantined: Digest[] = [];
  let state: UploadStatus['state'] = 'ok';
  let lastError: VolumeError | undefined;
  let failures = 0;
  let backoffUntil = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const status = (): UploadStatus => ({
    state,
    pending: cache.count(),
    pendingBytes: cache.bytes(),
    ...(lastError === undefined ? {} : { lastError }),
  });
  const emit = (): void => {
    const s = status();
    for (const l of listeners) l(s);
  };
  const idle = (): boolean => queue.size === 0 && inFlight.size === 0;

  const uploadOne = (d: Digest): TE.TaskEither<VolumeError, Outcome> => {
    const entry = cache.entry(d);
    if (entry === undefined) return TE.right('gone');
    const key = keyOf(d);
    const s3 = <A>(te: TE.TaskEither<Parameters<typeof toVolumeError>[0], A>): TE.TaskEither<VolumeError, A> =>
      pipe(te, TE.mapLeft((e) => toVolumeError(e, d)));
    const verifyLocal: TE.TaskEither<VolumeError, boolean> = entry.trusted
      ? TE.right(true)
      : pipe(
          cache.hash(d),
          TE.map((h) => h.digest === d && h.size === entry.size),
        );
    const upload: TE.TaskEither<VolumeError, Outcome> = pipe(
      verifyLocal,
      TE.flatMap((ok) =>
        !ok
          ? TE.right<VolumeError, Outcome>('corrupt')
          : pipe(
              cache.open(d),
              TE.flatMap((body) =>
                body === undefined
                  ? cache.entry(d) === undefined
                    ? TE.right<VolumeError, Outcome>('gone')
                    : TE.left<VolumeError, Outcome>({
                        _tag: 'VolumeIOError',
                        op: 'upload',
                        key: d,
                        cause: new Error('the cached file is missing'),
                      })
                  : // A failed upload, or one of 0 bytes, may not have read the body: release the file.
                    pipe(
                      s3(() => store.put(key, body, entry.size, { sha256: d })().finally(() => body.destroy())),
                      TE.as<Outcome>('uploaded'),
                    ),
              ),
            ),
      ),
    );
    const alreadyThere: TE.TaskEither<VolumeError, boolean> = entry.trusted
      ? TE.right(false)
      : pipe(
          s3(store.stat(key)),
          TE.map((info) => isVerified(info, d, entry.size)),
        );
    return pipe(
      alreadyThere,
      TE.flatMap((there) => (there ? TE.right<VolumeError, Outcome>('uploaded') : upload)),
      TE.flatMap(
        (outcome): TE.TaskEither<VolumeError, Outcome> =>
          outcome === 'corrupt'
            ? pipe(
                cache.quarantine(d),
                // A put replaced the damaged copy with a fresh one meanwhile: upload that instead.
                TE.map((moved): Outcome => (moved ? 'corrupt' : 'gone')),
              )
            : outcome === 'uploaded'
              ? pipe(
                  TE.fromIO(() => deps.onConfirmed?.(d)),
                  TE.flatMap(() => cache.remove(d)),
                  TE.as(outcome),
                )
              : TE.right(outcome),
      ),
    );
  };

  const settle = (d: Digest, result: E.Either<VolumeError, Outcome>): void => {
    inFlight.delete(d);
    bufferedBytes -= buffered.get(d) ?? 0;
    buffered.delete(d);
    if (E.isRight(result) && result.right === 'gone') {
      if (cache.entry(d) !== undefined) queue.add(d); // replaced by a fresh copy: upload that one
    } else if (E.isRight(result)) {
      failures = 0;
      backoffUntil = 0;
      state = 'ok';
      if (result.right === 'corrupt') {
        quarantined.push(d);
        lastError = {
          _tag: 'BlobCorrupt',
          op: 'upload',
          key: d,
          cause: new Error(`the cached copy does not match its digest; moved to ${cache.dir}/corrupt`),
        };
      }
    } else {
      failures++;
      backoffUntil = Date.now() + Math.min(deps.retry.maxDelayMs, deps.retry.initialDelayMs * 2 ** (failures - 1));
      state = result.left._tag === 'VolumeUnavailable' ? 'unreachable' : 'degraded';
      lastError = result.left;
      if (cache.entry(d) !== undefined) queue.add(d); // to the back: one bad blob does not block the rest
    }
    emit();
    pump();
  };

  const pump = (): void => {
    if (closed) return;
    const wait = backoffUntil - Date.now();
    if (wait > 0) {
      if (timer === undefined && queue.size > 0) {
        timer = setTimeout(() => {
          timer = undefined;
          pump();
        }, wait);
        timer.unref(); // pending blobs are safe in the cache; a later run uploads them
      }
    } else {
      while (inFlight.size < deps.concurrency && queue.size > 0) {
        const d = queue.values().next().value as Digest;
        const cost = Math.min(cache.entry(d)?.size ?? 0, deps.partSize);
        if (inFlight.size > 0 && bufferedBytes + cost > deps.maxBufferedBytes) break; // keeps the order
        queue.delete(d);
        buffered.set(d, cost);
        bufferedBytes += cost;
        const run = uploadOne(d)().then((r) => settle(d, r));
        inFlight.set(d, run);
      }
    }
    if (idle()) for (const w of [...idleWaiters]) w();
  };

  const drain = (timeoutMs?: number): TE.TaskEither<VolumeError, void> => () =>
    new Promise((resolve) => {
      const before = quarantined.length;
      let t: NodeJS.Timeout | undefined;
      const finish = (r: E.Either<VolumeError, void>): void => {
        idleWaiters.delete(onIdle);
        if (t !== undefined) clearTimeout(t);
        resolve(r);
      };
      const onIdle = (): void => {
        const lost = quarantined[before];
        finish(
          lost === undefined
            ? E.right(undefined)
            : E.left({ _tag: 'BlobCorrupt', op: 'drain', key: lost, cause: lastError?.cause ?? 'cached copy corrupt' }),
        );
      };
      if (timeoutMs !== undefined)
        t = setTimeout(
          () =>
            finish(
              E.left({
                _tag: 'VolumeUnavailable',
                op: 'drain',
                cause: new Error(
                  `${cache.count()} blobs still pending after ${timeoutMs} ms${lastError ? `; last error: ${lastError._tag}` : ''}`,
                ),
              }),
            ),
          timeoutMs,
        );
      idleWaiters.add(onIdle);
      pump(); // also settles at once when idle
    });

  return {
    enqueue: (d) => {
      if (!inFlight.has(d)) queue.add(d);
      emit();
      pump();
    },
    forget: async (d) => {
      queue.delete(d);
      await inFlight.get(d);
    },
    drain,
    status,
    onStatus: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    observe: (e) => {
      if (e._tag === 'VolumeUnavailable') state = 'unreachable';
      else if (e._tag === 'VolumeIOError') state = 'degraded';
      else return;
      lastError = e;
      emit();
    },
    close: async () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await T.sequenceArray([...inFlight.values()].map((p) => () => p))();
    },
  };
};
