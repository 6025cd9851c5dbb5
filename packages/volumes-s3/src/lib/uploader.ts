import { Readable, type Transform } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as T from 'fp-ts/Task';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
import { SMALL_BLOB_BYTES, type BlobCache } from './cache';
import { asVolumeError, objectFailure } from './errors';
import type { ObjectStore } from './object-store';
import { encodeIndexObject, indexKey, newPackId, packKey, type PackEntry, type PackId } from './pack-format';
import type { PackIndex } from './pack-index';

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
  /** Where packs go (each blob in a pack is sealed already when the volume is encrypted). */
  readonly store: ObjectStore;
  /** Where index objects go: `store`, or `store` encrypting whole objects. */
  readonly sealedStore: ObjectStore;
  readonly cache: BlobCache;
  readonly index: PackIndex;
  readonly prefix: string;
  /** A fresh encrypting transform per blob, when the volume is encrypted. */
  readonly seal?: () => Transform;
  /** Stored bytes of a blob of `plain` bytes (sealing adds a header and tags). */
  readonly sealedLength: (plain: number) => number;
  /** A pack is closed once it holds this many bytes; a blob of half as many or more has a pack of its own. */
  readonly packSize: number;
  /** A pack not full yet is uploaded after this long without a new blob (or at once on `drain`). */
  readonly idleMs: number;
  /** Packs uploading at once. */
  readonly concurrency: number;
  /**
   * Bytes the running uploads may hold in memory (a single PUT buffers its pack; a multipart
   * upload one part): no upload starts beyond it, except one when none runs.
   */
  readonly maxBufferedBytes: number;
  readonly partSize: number;
  readonly retry: RetrySettings;
  /** Loads the bucket's index into the local one when it is not there yet. */
  readonly ensureSynced: () => TE.TaskEither<VolumeError, void>;
  /** Work to do when nothing waits for upload (compaction); true when it did some and wants another turn. */
  readonly maintain: () => TE.TaskEither<VolumeError, boolean>;
}

export interface Uploader {
  /** Blobs the cache found damaged at open: `drain` fails naming the first, as for any lost blob. */
  reportDamaged(digests: readonly Digest[]): void;
  /** Queues a cached blob (no-op if already queued or uploading). `move`: upload it although the index has it (a repack). */
  enqueue(digest: Digest, options?: { readonly move?: boolean }): void;
  /** Stops a blob's upload from starting and waits for a running one to settle (before a delete). */
  forget(digest: Digest): Promise<void>;
  /** Asks for a maintenance turn (blobs were deleted). */
  kick(): void;
  /** Waits until nothing is pending; fails on timeout, or (once) naming a blob whose cached copy was found damaged. */
  drain(timeoutMs?: number): TE.TaskEither<VolumeError, void>;
  status(): UploadStatus;
  onStatus(listener: (s: UploadStatus) => void): () => void;
  /** A store failure seen outside the uploader (e.g. a put-path lookup), for the status. */
  observe(e: VolumeError): void;
  /** Stops starting uploads and waits for the running ones. Pending blobs stay in the cache. */
  close(): Promise<void>;
}

const run = async <A>(te: TE.TaskEither<VolumeError, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw r.left;
  return r.right;
};

/**
 * Uploads cached blobs in the background as packs, `concurrency` packs at a time, oldest blobs
 * first. A pack is recorded as pending in the local index before its upload starts; the pack
 * object goes up, then its index object, each confirmed by the store (`ObjectStore.put`
 * resolves only once the store holds exactly the bytes sent); then the local index records
 * it (synced to disk) and only then do its blobs leave the cache. A crash anywhere leaves
 * either the blob in the cache or its location recorded: the pending record tells the next
 * run whether the pack made it (its index object exists) or must be removed.
 *
 * After any failure all uploads pause for a back-off that doubles per consecutive failure up
 * to `maxDelayMs` and resets on success; the uploader never gives up.
 */
export const makeUploader = (deps: UploaderDeps): Uploader => {
  const { store, sealedStore, cache, index } = deps;
  const queue = new Map<Digest, number>(); // insertion order = upload order; value: bytes
  let queuedBytes = 0;
  const moving = new Set<Digest>();
  const inFlight = new Map<PackId, { readonly digests: readonly Digest[]; readonly done: Promise<void>; readonly cost: number }>();
  const packOf = new Map<Digest, PackId>();
  let bufferedBytes = 0;
  const listeners = new Set<(s: UploadStatus) => void>();
  const idleWaiters = new Set<() => void>();
  const damaged: Digest[] = []; // not reported by a drain yet
  let state: UploadStatus['state'] = 'ok';
  let lastError: VolumeError | undefined;
  let failures = 0;
  let backoffUntil = 0;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = 0;
  let closed = false;
  // Synced with the bucket and pending packs resolved; false again after a failed upload.
  let prepared = false;
  let preparing = false;
  let maintenanceWanted = true; // an earlier run may have left dirty packs
  let maintaining = false;
  let lastActivity = 0;

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
  const idle = (): boolean => queue.size === 0 && inFlight.size === 0 && !maintaining && !preparing && !(maintenanceWanted && prepared);

  const wakeAt = (at: number): void => {
    if (timer !== undefined && timerAt <= at) return;
    if (timer !== undefined) clearTimeout(timer);
    timerAt = at;
    timer = setTimeout(() => {
      timer = undefined;
      pump();
    }, Math.max(0, at - Date.now()));
    timer.unref(); // pending blobs are safe in the cache; a later run uploads them
  };

  const succeeded = (): void => {
    failures = 0;
    backoffUntil = 0;
    state = 'ok';
  };
  const failed = (e: VolumeError): void => {
    failures++;
    backoffUntil = Date.now() + Math.min(deps.retry.maxDelayMs, deps.retry.initialDelayMs * 2 ** (failures - 1));
    state = e._tag === 'VolumeUnavailable' ? 'unreachable' : 'degraded';
    lastError = e;
  };

  // A pack whose upload started in an earlier attempt (or run) and was not recorded: if its
  // index object is in the store, it made it; otherwise its pack object is removed.
  const resolvePending = async (): Promise<void> => {
    for (const p of await index.pending()) {
      if (inFlight.has(p.id)) continue;
      const info = await run(pipe(sealedStore.stat(indexKey(deps.prefix, p.id)), TE.mapLeft((e) => objectFailure(e, indexKey(deps.prefix, p.id)))));
      if (info !== undefined) {
        await index.addPack(p.id, p.size, info.lastModified?.getTime() ?? Date.now(), p.entries);
        for (const e of p.entries) {
          if (moving.has(e.digest) || packOf.has(e.digest)) continue;
          queuedBytes -= queue.get(e.digest) ?? 0;
          queue.delete(e.digest);
          cache.remove(e.digest);
        }
      } else {
        await run(pipe(store.remove(packKey(deps.prefix, p.id)), TE.mapLeft((e) => objectFailure(e, packKey(deps.prefix, p.id)))));
        await index.clearPending(p.id);
      }
    }
  };

  const prepare = (): void => {
    preparing = true;
    void (async () => {
      try {
        await run(deps.ensureSynced());
        await resolvePending();
        prepared = true;
      } catch (e) {
        failed(asVolumeError('upload')(e));
      } finally {
        preparing = false;
        emit();
        pump();
      }
    })();
  };

  /** The stored bytes of a pack: its blobs from the cache, each sealed when encrypting. */
  const packBody = (entries: readonly PackEntry[]): Readable =>
    Readable.from(
      (async function* () {
        for (const e of entries) {
          if (e.size <= SMALL_BLOB_BYTES) {
            const bytes = cache.read(e.digest);
            if (E.isLeft(bytes)) throw bytes.left;
            if (bytes.right === undefined) throw new Error(`the cached copy of ${e.digest} is missing`);
            if (deps.seal === undefined) yield bytes.right;
            else {
              const sealing = deps.seal();
              sealing.end(bytes.right);
              for await (const chunk of sealing) yield chunk as Buffer;
            }
            continue;
          }
          const body = await run(cache.open(e.digest));
          if (body === undefined) throw new Error(`the cached copy of ${e.digest} is missing`);
          const stored = deps.seal === undefined ? body : body.pipe(deps.seal());
          if (stored !== body) body.once('error', (err) => stored.destroy(err));
          try {
            for await (const chunk of stored) yield chunk as Buffer;
          } finally {
            body.destroy();
          }
        }
      })(),
      { objectMode: false },
    );

  // Packs go up from the spool files where the store can send them so (unsealed blobs, one PUT):
  // their bytes never come to this thread (see upload-worker.ts).
  const putFileBlobs = deps.seal === undefined ? store.putFileBlobs : undefined;

  // A cached copy that no longer matches its digest: never uploaded; drain and the status say so.
  const recordDamaged = (d: Digest, cause: Error): void => {
    damaged.push(d);
    lastError = { _tag: 'BlobCorrupt', op: 'upload', key: d, cause };
  };

  /** Sends a pack; the digest of a blob whose cached copy turned out damaged (nothing sent then). */
  const sendPack = async (key: string, entries: readonly PackEntry[], size: number): Promise<Digest | undefined> => {
    const files = entries.map((e) => {
      const at = cache.where(e.digest);
      return at === undefined ? undefined : { ...at, digest: e.digest };
    });
    if (putFileBlobs !== undefined && size <= deps.partSize && files.every((f) => f !== undefined)) {
      const sent = await putFileBlobs(key, files as Array<NonNullable<(typeof files)[number]>>, size)();
      if (E.isLeft(sent)) throw objectFailure(sent.left, key);
      if (sent.right.kind === 'stored') return undefined;
      const bad = sent.right.digest as Digest;
      cache.quarantine(bad);
      moving.delete(bad); // a repack's blob stays where it was
      recordDamaged(bad, new Error(`the cached copy hashes to ${sent.right.actual}; its spool file goes to ${cache.dir}/corrupt`));
      return bad;
    }
    const sent = await store.put(key, packBody(entries), size, {})();
    if (E.isLeft(sent)) throw objectFailure(sent.left, key);
    return undefined;
  };

  /** Uploads one pack; resolves with what happened, never rejects. */
  const uploadPack = async (id: PackId, digests: readonly Digest[]): Promise<E.Either<VolumeError, void>> => {
    try {
      let blobs: Array<{ digest: Digest; size: number }> = [];
      for (const d of digests) {
        const entry = cache.entry(d);
        if (entry === undefined) continue; // deleted meanwhile
        if (!moving.has(d) && index.mayHold(d) && (await index.locate(d)) !== undefined) {
          // Already in the store (left in the cache by a crash that came between recording a
          // pack and emptying the cache).
          cache.remove(d);
          continue;
        }
        blobs.push({ digest: d, size: entry.size });
      }
      const pk = packKey(deps.prefix, id);
      let recorded = false;
      for (;;) {
        if (blobs.length === 0) {
          if (recorded) await index.clearPending(id); // nothing of it was sent
          return E.right(undefined);
        }
        let offset = 0;
        const entries: PackEntry[] = blobs.map((b) => {
          const length = deps.sealedLength(b.size);
          const e = { digest: b.digest, offset, length, size: b.size };
          offset += length;
          return e;
        });
        const size = offset;
        await index.setPending({ id, size, entries });
        recorded = true;
        const bad = await sendPack(pk, entries, size);
        if (bad !== undefined) {
          blobs = blobs.filter((b) => b.digest !== bad); // the pack goes without it
          continue;
        }
        const at = Date.now();
        const ik = indexKey(deps.prefix, id);
        const description = encodeIndexObject(id, size, at, entries);
        await run(pipe(sealedStore.put(ik, Readable.from([description]), description.length, {}), TE.mapLeft((e) => objectFailure(e, ik))));
        await index.addPack(id, size, at, entries);
        for (const e of entries) {
          moving.delete(e.digest);
          cache.remove(e.digest);
        }
        return E.right(undefined);
      }
    } catch (e) {
      return E.left(asVolumeError('upload', packKey(deps.prefix, id))(e));
    }
  };

  const settle = (id: PackId, result: E.Either<VolumeError, void>): void => {
    const flight = inFlight.get(id);
    inFlight.delete(id);
    bufferedBytes -= flight?.cost ?? 0;
    for (const d of flight?.digests ?? []) if (packOf.get(d) === id) packOf.delete(d);
    if (E.isRight(result)) succeeded();
    else {
      failed(result.left);
      prepared = false; // the pack may be half there: resolve it before the next one
      // To the back of the queue: one bad blob does not block the rest.
      for (const d of flight?.digests ?? []) {
        const entry = cache.entry(d);
        if (entry !== undefined && !queue.has(d)) {
          queue.set(d, entry.size);
          queuedBytes += entry.size;
        }
      }
    }
    emit();
    pump();
  };

  // The next pack from the front of the queue, or undefined when memory forbids one now.
  const takePack = (): Digest[] | undefined => {
    const digests: Digest[] = [];
    let bytes = 0;
    for (const [d, size] of queue) {
      const solo = size >= deps.packSize / 2;
      if (solo && digests.length > 0) break; // keeps the order: it goes alone, next
      digests.push(d);
      bytes += deps.sealedLength(size);
      if (solo || bytes >= deps.packSize) break;
    }
    const cost = Math.min(bytes, deps.partSize);
    if (inFlight.size > 0 && bufferedBytes + cost > deps.maxBufferedBytes) return undefined;
    const id = newPackId();
    for (const d of digests) {
      queuedBytes -= queue.get(d) ?? 0;
      queue.delete(d);
      packOf.set(d, id);
    }
    bufferedBytes += cost;
    const done = uploadPack(id, digests).then((r) => settle(id, r));
    inFlight.set(id, { digests, done, cost });
    return digests;
  };

  const maintain = (): void => {
    maintaining = true;
    void (async () => {
      try {
        maintenanceWanted = await run(deps.maintain());
        succeeded();
      } catch (e) {
        failed(asVolumeError('compact')(e));
      } finally {
        maintaining = false;
        emit();
        pump();
      }
    })();
  };

  const pump = (): void => {
    if (closed) return;
    const now = Date.now();
    if (backoffUntil > now) {
      if (queue.size > 0 || maintenanceWanted || !prepared) wakeAt(backoffUntil);
    } else if (!prepared) {
      if (!preparing && (queue.size > 0 || maintenanceWanted)) prepare();
    } else {
      // A pack is started when full, or when no blob came for `idleMs`, or someone waits; not
      // during a maintenance turn, which may be restaging more blobs for the same pack.
      const quiet = !maintaining && (now - lastActivity >= deps.idleMs || idleWaiters.size > 0);
      while (inFlight.size < deps.concurrency && queue.size > 0) {
        if (queuedBytes < deps.packSize && !quiet && !hasSolo()) {
          if (!maintaining) wakeAt(lastActivity + deps.idleMs); // the turn's end pumps again
          break;
        }
        if (takePack() === undefined) break;
      }
      if (queue.size === 0 && inFlight.size === 0 && maintenanceWanted && !maintaining) {
        if (quiet) maintain();
        else wakeAt(lastActivity + deps.idleMs);
      }
    }
    if (idle()) for (const w of [...idleWaiters]) w();
  };
  const hasSolo = (): boolean => {
    const first = queue.values().next();
    return first.done !== true && first.value >= deps.packSize / 2;
  };

  const drain = (timeoutMs?: number): TE.TaskEither<VolumeError, void> => () =>
    new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      const finish = (r: E.Either<VolumeError, void>): void => {
        idleWaiters.delete(onIdle);
        if (t !== undefined) clearTimeout(t);
        resolve(r);
      };
      const onIdle = (): void => {
        const lost = damaged[0];
        damaged.length = 0; // reported once; the status keeps it as lastError
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
    reportDamaged: (digests) => {
      for (const d of digests) recordDamaged(d, new Error(`the cached copy does not match its digest; its spool file goes to ${cache.dir}/corrupt`));
    },
    enqueue: (d, options) => {
      lastActivity = Date.now();
      if (options?.move === true) moving.add(d);
      if (!packOf.has(d) && !queue.has(d)) {
        const size = cache.entry(d)?.size ?? 0;
        queue.set(d, size);
        queuedBytes += size;
      }
      emit();
      pump();
    },
    forget: async (d) => {
      queuedBytes -= queue.get(d) ?? 0;
      queue.delete(d);
      moving.delete(d);
      const id = packOf.get(d);
      if (id !== undefined) await inFlight.get(id)?.done;
    },
    kick: () => {
      lastActivity = Date.now();
      maintenanceWanted = true;
      pump();
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
      await T.sequenceArray([...inFlight.values()].map((f) => () => f.done))();
      // A maintenance or preparation turn in progress finishes on its own; wait for it.
      while (maintaining || preparing) await new Promise((r) => setTimeout(r, 5));
    },
  };
};
