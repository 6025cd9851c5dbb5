import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { putFileThroughStream, type BlobStat, type BlobVolume, type Digest, type PutOptions, type PutResult, type VolumeError } from '@zxbackup/volume-contract';
import { makeLocalVolume, type LocalVolume } from '@zxbackup/volumes-local';

/*
 * The external Local volume (an NFS/FUSE mount), with the S3 volume's resilience: every put lands
 * in a local cache volume first (`<backup path>/cache/mount`, durable at `flush`), and a mover
 * copies cached blobs to `<mount>/items` in batches — digest-checked on write, the mount flushed —
 * and only then drops them from the cache. While the mount is gone (unmounted, stale handle,
 * permissions) scans go on, the cache grows, `onStatus` says `unreachable`, and the mover retries
 * with a doubling back-off until the mount is back. Reads, `has`, `stat` and `list` see the union.
 * The mount's `items` folder is never created here (that would write onto a bare mount point):
 * `setBackupVolume Local` creates it once.
 */

export interface MountVolumeStatus {
  readonly state: 'ok' | 'degraded' | 'unreachable';
  /** Blobs in the local cache not yet confirmed on the mount. */
  readonly pending: number;
  readonly lastError?: VolumeError;
}

export interface MountVolume extends BlobVolume {
  /** Waits until the cache is empty (or `timeoutMs` passed: `VolumeUnavailable`). */
  drain(options?: { readonly timeoutMs?: number }): TE.TaskEither<VolumeError, void>;
  status(): MountVolumeStatus;
  onStatus(listener: (s: MountVolumeStatus) => void): () => void;
}

export interface MountVolumeOptions {
  /** `<mount>/items`. */
  readonly mountItemsDir: string;
  /** The local write cache, e.g. `<backup path>/cache/mount`; created when missing. */
  readonly cacheDir: string;
  readonly retry?: { readonly initialDelayMs?: number; readonly maxDelayMs?: number };
  /** Blobs moved per mount flush (default 64). */
  readonly batchSize?: number;
  /** Tests only: `none` skips fsyncs on both sides. */
  readonly syncMode?: 'group' | 'none';
}

const toError = (op: string, cause: unknown): VolumeError => ({ _tag: 'VolumeIOError', op, cause });

export const makeMountVolume = (options: MountVolumeOptions): TE.TaskEither<VolumeError, MountVolume> =>
  pipe(
    TE.tryCatch(() => fs.mkdir(options.cacheDir, { recursive: true }), (e) => toError('open', e)),
    TE.flatMap(() => makeLocalVolume({ root: options.cacheDir, ...(options.syncMode ? { syncMode: options.syncMode } : {}) })),
    TE.flatMap((cache) => {
      const seed: Digest[] = [];
      return pipe(
        cache.list((d) => {
          seed.push(d);
        }),
        TE.map(() => assemble(options, cache, seed)),
      );
    }),
  );

const assemble = (options: MountVolumeOptions, cache: LocalVolume, seed: ReadonlyArray<Digest>): MountVolume => {
  const initialDelay = options.retry?.initialDelayMs ?? 1000;
  const maxDelay = options.retry?.maxDelayMs ?? 60_000;
  const batchSize = options.batchSize ?? 64;
  const queued = new Set<Digest>(seed);
  const listeners = new Set<(s: MountVolumeStatus) => void>();
  const idle = new Set<() => void>();
  let mount: LocalVolume | undefined;
  let state: MountVolumeStatus['state'] = 'ok';
  let lastError: VolumeError | undefined;
  let failures = 0;
  let timer: NodeJS.Timeout | undefined;
  let moving: Promise<void> | undefined;
  let closed = false;
  // Moves and deletes take turns, so a delete never races a copy that would bring a blob back.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <A>(f: () => Promise<A>): Promise<A> => {
    const next = turn.then(f, f);
    turn = next.catch(() => undefined);
    return next;
  };

  const status = (): MountVolumeStatus => ({ state, pending: queued.size, ...(lastError ? { lastError } : {}) });
  const notify = (): void => {
    const s = status();
    for (const l of listeners) l(s);
  };
  const setState = (next: MountVolumeStatus['state'], error?: VolumeError): void => {
    const changed = next !== state;
    state = next;
    if (error !== undefined) lastError = error;
    if (changed || error !== undefined) notify();
  };

  const run = async <A>(te: TE.TaskEither<VolumeError, A>): Promise<A> => {
    const r = await te();
    if (E.isLeft(r)) throw r.left;
    return r.right;
  };

  /** The mount volume, opened on first use and again after it failed (a remount). */
  const openMount = async (): Promise<LocalVolume> => {
    if (mount !== undefined) return mount;
    mount = await run(makeLocalVolume({ root: options.mountItemsDir, ...(options.syncMode ? { syncMode: options.syncMode } : {}) }));
    return mount;
  };
  const dropMount = async (): Promise<void> => {
    const m = mount;
    mount = undefined;
    if (m !== undefined) await m.close()();
  };
  /** A mount call; an unavailable mount is dropped so the next call reopens it. */
  const onMount = async <A>(f: (m: LocalVolume) => TE.TaskEither<VolumeError, A>): Promise<E.Either<VolumeError, A>> => {
    let m: LocalVolume;
    try {
      m = await openMount();
    } catch (e) {
      return E.left(e as VolumeError);
    }
    const r = await f(m)();
    if (E.isLeft(r) && r.left._tag === 'VolumeUnavailable') await dropMount();
    return r;
  };

  const schedule = (delay: number): void => {
    if (closed || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      kick();
    }, delay);
    timer.unref();
  };

  const moveBatch = async (batch: ReadonlyArray<Digest>): Promise<E.Either<VolumeError, void>> =>
    exclusive(async () => {
      const moved: Digest[] = [];
      for (const d of batch) {
        if (!queued.has(d)) continue; // deleted meanwhile
        const there = await onMount((m) => m.has(d));
        if (E.isLeft(there)) return there;
        if (!there.right) {
          const body = await cache.get(d)();
          if (E.isLeft(body)) {
            if (body.left._tag === 'BlobNotFound') {
              queued.delete(d);
              continue;
            }
            return body;
          }
          const put = await onMount((m) => m.put(body.right, { expectedDigest: d }));
          if (E.isLeft(put)) {
            body.right.destroy();
            return put;
          }
        }
        moved.push(d);
      }
      const flushed = await onMount((m) => m.flush());
      if (E.isLeft(flushed)) return flushed;
      for (const d of moved) {
        const removed = await cache.delete(d)();
        if (E.isLeft(removed) && removed.left._tag !== 'BlobNotFound') return removed;
        queued.delete(d);
      }
      return E.right(undefined);
    });

  const moveAll = async (): Promise<void> => {
    while (!closed && queued.size > 0) {
      const batch = [...queued].slice(0, batchSize);
      const r = await moveBatch(batch);
      if (E.isLeft(r)) {
        failures++;
        setState(r.left._tag === 'VolumeUnavailable' ? 'unreachable' : 'degraded', r.left);
        schedule(Math.min(maxDelay, initialDelay * 2 ** Math.min(failures - 1, 30)));
        return;
      }
      failures = 0;
      setState('ok');
      notify();
    }
    if (queued.size === 0) for (const w of [...idle]) w();
  };

  const kick = (): void => {
    if (closed || moving !== undefined || timer !== undefined || queued.size === 0) return;
    moving = moveAll().finally(() => {
      moving = undefined;
    });
  };

  // Blobs a previous session cached but did not move.
  kick();

  const put = (content: Readable, opts?: PutOptions): TE.TaskEither<VolumeError, PutResult> =>
    pipe(
      cache.put(content, opts),
      TE.flatMap((r) => {
        if (!r.stored) return TE.right(r);
        // Deduplicate against the mount when it answers; otherwise the mover sorts it out.
        return async () => {
          const there = state === 'ok' ? await onMount((m) => m.has(r.digest)) : E.right(false);
          if (E.isRight(there) && there.right) {
            const dropped = await exclusive(() => cache.delete(r.digest)());
            if (E.isLeft(dropped) && dropped.left._tag !== 'BlobNotFound') return dropped;
            return E.right({ ...r, stored: false });
          }
          queued.add(r.digest);
          kick();
          return E.right(r);
        };
      }),
    );

  const has = (d: Digest): TE.TaskEither<VolumeError, boolean> =>
    pipe(
      cache.has(d),
      TE.flatMap((inCache) => (inCache ? TE.right(true) : () => onMount((m) => m.has(d)))),
    );

  /** The cache's copy, else the mount's; a blob moved meanwhile is found on the mount. */
  const either =
    <A>(f: (v: BlobVolume) => TE.TaskEither<VolumeError, A>): TE.TaskEither<VolumeError, A> =>
    async () => {
      const r = await f(cache)();
      if (E.isRight(r) || r.left._tag !== 'BlobNotFound') return r;
      return onMount(f);
    };

  const del = (d: Digest): TE.TaskEither<VolumeError, void> => () =>
    exclusive(async () => {
      queued.delete(d);
      const fromCache = await cache.delete(d)();
      if (E.isLeft(fromCache) && fromCache.left._tag !== 'BlobNotFound') return fromCache;
      const fromMount = await onMount((m) => m.delete(d));
      if (E.isLeft(fromMount) && fromMount.left._tag === 'BlobNotFound' && E.isRight(fromCache)) return E.right(undefined);
      return fromMount;
    });

  const list = (visit: (d: Digest) => void | Promise<void>): TE.TaskEither<VolumeError, number> => async () => {
    const seen = new Set<Digest>();
    const cached = await cache.list(async (d) => {
      seen.add(d);
      await visit(d);
    })();
    if (E.isLeft(cached)) return cached;
    let onMountOnly = 0;
    const listed = await onMount((m) =>
      m.list(async (d) => {
        if (seen.has(d)) return;
        onMountOnly++;
        await visit(d);
      }),
    );
    return E.map(() => cached.right + onMountOnly)(listed);
  };

  const drain = (opts?: { readonly timeoutMs?: number }): TE.TaskEither<VolumeError, void> => () =>
    new Promise((resolve) => {
      if (queued.size === 0) return resolve(E.right(undefined));
      let t: NodeJS.Timeout | undefined;
      const done = (): void => {
        idle.delete(done);
        if (t !== undefined) clearTimeout(t);
        resolve(E.right(undefined));
      };
      idle.add(done);
      if (opts?.timeoutMs !== undefined)
        t = setTimeout(() => {
          idle.delete(done);
          resolve(E.left({ _tag: 'VolumeUnavailable', op: 'drain', cause: lastError ?? `${queued.size} blob(s) still wait for the mount` }));
        }, opts.timeoutMs);
      kick();
    });

  const close = (): TE.TaskEither<VolumeError, void> => async () => {
    // While the mount answers, finish moving: a CLI run should not leave blobs behind.
    if (failures === 0 && queued.size > 0) {
      kick();
      await moving;
    }
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    await moving;
    await turn;
    const flushed = await cache.flush()();
    const closedCache = await cache.close()();
    await dropMount();
    return E.isLeft(flushed) ? flushed : closedCache;
  };

  return {
    name: `local:${options.mountItemsDir}`,
    supports: { durable: true, remote: true },
    put,
    putFile: putFileThroughStream(put),
    has,
    get: (d) => either((v) => v.get(d)),
    stat: (d): TE.TaskEither<VolumeError, BlobStat> => either((v) => v.stat(d)),
    delete: del,
    list,
    flush: () => cache.flush(),
    close,
    drain,
    status,
    onStatus: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
};
