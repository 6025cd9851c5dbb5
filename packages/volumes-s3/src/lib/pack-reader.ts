import { promises as fsp } from 'node:fs';
import type { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { VolumeError } from '@zxbackup/volume-contract';
import { asVolumeError, type S3Error } from './errors';
import type { ObjectStore } from './object-store';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';

/** Packs streamed at once ahead of the reads (one 8 MiB GET at a time ran at a third of the rate of 8). */
export const PREFETCH_CONCURRENCY = 3;

export interface PackReaderDeps {
  readonly store: ObjectStore;
  readonly keyOf: (id: PackId) => string;
  /** Where an earlier version kept its read cache on disk: removed at open. */
  readonly legacyDir: string;
  /**
   * Memory for reads: whole packs kept for reads nobody announced, and blobs taken out of
   * prefetched packs that no read has taken yet (each may use this much).
   */
  readonly capacityBytes: number;
  /** Packs larger than this (one big blob each) are streamed, never kept. */
  readonly wholePackMax: number;
  readonly storeError: (e: S3Error, loc: BlobLocation) => VolumeError;
  /** Announced reads that do not come for this long are given up (default 60 s); see `sweep`. */
  readonly staleMs?: number;
}

/** A pack to stream, and the blobs to take out of it for the reads to come. */
export interface PackPlan {
  readonly pack: PackId;
  /** Bytes of the pack object: one larger than `wholePackMax` (a big blob alone) is not streamed ahead; its read streams it. */
  readonly size: number;
  /** Sorted by offset; each with how many reads will want it (once when not said). */
  readonly blobs: ReadonlyArray<BlobLocation & { readonly wanted?: number }>;
}

/**
 * Reads blobs out of packs. What a read hands out is the reader's to keep: views of network
 * buffers no one else writes to, or a copy.
 *
 * Announced reads (`prefetch`, in the order they will come: a restore gives its whole list in
 * the volume's read order): each pack is streamed once, a few at a time, and the announced
 * blobs are taken out of the stream as their bytes arrive (as views of its chunks). A read
 * finds its blob there, or waits for it; the first blobs are ready before their pack has
 * arrived, and no pack is held whole. Taken blobs wait for their reads within `capacityBytes`;
 * past it a stream pauses (the HTTP connection is not read on) unless a read waits for it.
 *
 * Other reads: the pack is downloaded whole, once, into a bounded cache in memory, and the
 * blob copied out of it. Concurrent reads of one pack share its download.
 */
export interface PackReader {
  /**
   * The stored (maybe sealed) bytes of one blob: in memory, in parts (views of the pack's
   * network reads, not copied), or a stream for a pack too big to keep.
   */
  read(loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable | Buffer[]>;
  /** Drops a pack's cached copy (a blob of it failed verification: the next read downloads it again). */
  evict(id: PackId): void;
  /** Announces reads: these packs are streamed in this order, and these blobs kept for their reads. Failures are left to the reads. */
  prefetch(plans: ReadonlyArray<PackPlan>): void;
  /**
   * Opens the streams of these packs now, for plans a `prefetch` brings soon (a restore that is
   * still walking its metadata): the first bytes are on their way when the plans come. Nothing
   * is taken out of such a stream before its plan, so it holds only what the store's
   * back-pressure lets in. At most as many as stream at once; one no plan claims within
   * `staleMs` (or at close) is dropped.
   */
  open(packs: ReadonlyArray<{ readonly pack: PackId; readonly size: number }>): void;
  close(): Promise<void>;
}

export const makePackReader = (deps: PackReaderDeps): TE.TaskEither<VolumeError, PackReader> =>
  TE.tryCatch(
    async () => {
      await fsp.rm(deps.legacyDir, { recursive: true, force: true });
      return packReader(deps);
    },
    (e): VolumeError => ({ _tag: 'VolumeIOError', op: 'openReadCache', key: deps.legacyDir, cause: e }),
  );

/** A read waiting for an announced blob: its bytes, or undefined to read it the other way. */
type Waiter = (parts: Buffer[] | undefined) => void;

interface Stream {
  readonly plan: PackPlan;
  /** Reads wait for blobs of this stream: it runs on whatever the memory taken. */
  urgent: boolean;
  wake: (() => void) | undefined;
  body: Readable | undefined;
}

const packReader = (deps: PackReaderDeps): PackReader => {
  let closed = false;

  // ---- announced reads: packs streamed, blobs taken out
  const queued: Array<PackPlan & { readonly at: number }> = [];
  const streams = new Set<Stream>();
  /** Announced blobs not taken out yet: the stream (or queued plan) that will bring them, and how many reads want them. */
  const announced = new Map<string, { readonly pack: PackId; wanted: number }>();
  const taken = new Map<string, { readonly parts: Buffer[]; readonly length: number; wanted: number; readonly pack: PackId }>();
  /** When a read last took or waited for a blob of each pack (or its stream started): see `sweep`. */
  const packUse = new Map<PackId, number>();
  const used = (id: PackId): void => void packUse.set(id, Date.now());
  let takenBytes = 0;
  const waiters = new Map<string, Waiter[]>();
  const streamOf = new Map<PackId, Stream>();

  const deliver = (digest: string, parts: Buffer[] | undefined, length = 0): void => {
    const entry = announced.get(digest);
    announced.delete(digest);
    let wanted = entry?.wanted ?? 0;
    for (const waiter of waiters.get(digest) ?? []) {
      waiter(parts);
      wanted--;
    }
    waiters.delete(digest);
    if (parts === undefined || wanted <= 0) return;
    taken.set(digest, { parts, length, wanted, pack: entry?.pack ?? ('' as PackId) });
    takenBytes += length;
  };

  const roomFor = (s: Stream): Promise<void> | undefined =>
    s.urgent || takenBytes <= deps.capacityBytes || closed ? undefined : new Promise<void>((r) => (s.wake = r));
  const wakeStreams = (): void => {
    for (const s of streams) {
      const wake = s.wake;
      s.wake = undefined;
      wake?.();
    }
  };

  // ---- streams opened ahead of their plans (`open`)
  const early = new Map<PackId, { readonly body: Promise<Readable | undefined>; readonly at: number }>();
  const openBody = (id: PackId): Promise<Readable> =>
    pipe(
      // Off the main thread where the store can: these streams are most of a restore's bytes.
      deps.store.getOffThread !== undefined ? deps.store.getOffThread(deps.keyOf(id)) : deps.store.get(deps.keyOf(id)),
      TE.getOrElse((e) => {
        throw e;
      }),
    )();
  const dropEarly = (id: PackId): void => {
    const opened = early.get(id);
    if (opened === undefined) return;
    early.delete(id);
    void opened.body.then((body) => body?.destroy());
  };

  const runStream = async (s: Stream): Promise<void> => {
    const { plan } = s;
    const blobs = plan.blobs;
    let next = 0; // the first blob not complete
    // Its parts so far, once it started: views of the chunks, which stay alive with them. A copy
    // into a buffer per blob cost more than the download here (fresh memory faults in).
    let partial: Buffer[] | undefined;
    let position = 0; // of the pack, at the start of the chunk
    try {
      const opened = early.get(plan.pack);
      early.delete(plan.pack);
      // An early open that failed is tried again: it may have been a passing failure.
      const body = (await opened?.body) ?? (await openBody(plan.pack));
      s.body = body;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const end = position + chunk.length;
        while (next < blobs.length) {
          const blob = blobs[next] as BlobLocation;
          if (blob.offset >= end) break;
          if (!announced.has(blob.digest)) {
            // No read wants it any more (it was read another way): skip it.
            next++;
            partial = undefined;
            continue;
          }
          partial ??= [];
          const from = Math.max(blob.offset, position);
          const to = Math.min(blob.offset + blob.length, end);
          partial.push(chunk.subarray(from - position, to - position));
          if (to < blob.offset + blob.length) break; // continues in the next chunk
          deliver(blob.digest, partial, blob.length);
          partial = undefined;
          next++;
        }
        position = end;
        if (next >= blobs.length) break;
        const room = roomFor(s);
        if (room !== undefined) await room;
        if (closed) break;
      }
    } catch {
      // The reads of what is left go the other way, and report the failure themselves.
    } finally {
      s.body?.destroy();
      for (const blob of blobs.slice(next)) if (announced.get(blob.digest)?.pack === plan.pack) deliver(blob.digest, undefined);
      streams.delete(s);
      streamOf.delete(plan.pack);
      pump();
    }
  };

  const pump = (): void => {
    while (!closed && streams.size < PREFETCH_CONCURRENCY && queued.length > 0) {
      const plan = queued.shift() as PackPlan;
      const s: Stream = { plan, urgent: false, wake: undefined, body: undefined };
      used(plan.pack);
      streams.add(s);
      streamOf.set(plan.pack, s);
      void runStream(s);
    }
  };

  /** The blob of an announced read: taken out already, or soon; undefined: read it the other way. */
  const announcedRead = async (loc: BlobLocation): Promise<Buffer[] | undefined> => {
    const ready = taken.get(loc.digest);
    if (ready !== undefined) {
      used(ready.pack);
      if (--ready.wanted <= 0) {
        taken.delete(loc.digest);
        takenBytes -= ready.length;
        wakeStreams();
      }
      // Each read gets its own list (a reader may consume it).
      return [...ready.parts];
    }
    const coming = announced.get(loc.digest);
    if (coming === undefined) return undefined;
    const s = streamOf.get(coming.pack);
    if (s === undefined) {
      // Its pack is not streaming yet: read it the other way, and the stream skips it.
      if (--coming.wanted <= 0) announced.delete(loc.digest);
      return undefined;
    }
    used(coming.pack);
    s.urgent = true;
    s.wake?.();
    s.wake = undefined;
    const parts = await new Promise<Buffer[] | undefined>((resolve) => {
      const list = waiters.get(loc.digest) ?? [];
      list.push(resolve);
      waiters.set(loc.digest, list);
    });
    if (![...waiters.keys()].some((d) => announced.get(d)?.pack === coming.pack)) s.urgent = false;
    return parts && [...parts];
  };

  /**
   * Gives up announced reads that do not come: a restore that failed or was stopped leaves its
   * list behind, and in a long-lived process (the admin API's) its blobs would hold the memory
   * and its paused streams the slots for good. The blobs taken out of, and the streams of, packs
   * no read has used for `staleMs` go, as do plans queued that long; a read that comes after all
   * reads its pack whole. (A restore reads pack by pack: the packs it reads stay in use.)
   */
  const staleMs = deps.staleMs ?? 60_000;
  const sweep = (): void => {
    const before = Date.now() - staleMs;
    const stale = (id: PackId): boolean => (packUse.get(id) ?? 0) < before;
    for (const [digest, t] of taken) {
      if (!stale(t.pack)) continue;
      taken.delete(digest);
      takenBytes -= t.length;
    }
    for (let i = queued.length - 1; i >= 0; i--) {
      const plan = queued[i] as PackPlan & { readonly at: number };
      if (plan.at >= before) continue;
      queued.splice(i, 1);
      for (const b of plan.blobs) if (announced.get(b.digest)?.pack === plan.pack) announced.delete(b.digest);
    }
    for (const s of streams) {
      if (s.urgent || !stale(s.plan.pack)) continue;
      s.body?.destroy(); // its loop ends; what it still had to bring is read the other way
      s.wake?.();
    }
    for (const [id, opened] of early) if (opened.at < before) dropEarly(id);
    for (const [id, at] of packUse) if (at < before && !streamOf.has(id)) packUse.delete(id);
    wakeStreams();
    pump();
  };
  const sweeper = setInterval(sweep, Math.max(10, staleMs / 4));
  sweeper.unref();

  // ---- other reads: whole packs in a bounded cache
  const cached = new Map<PackId, Buffer>(); // insertion order = least recently used first
  let cachedBytes = 0;
  const downloads = new Map<PackId, Promise<Buffer>>();

  const evict = (id: PackId): void => {
    const pack = cached.get(id);
    if (pack === undefined) return;
    cached.delete(id);
    cachedBytes -= pack.length;
  };

  const keep = (id: PackId, pack: Buffer): void => {
    if (pack.length > deps.capacityBytes) return; // served to the reads waiting for it, not kept
    for (const old of [...cached.keys()]) {
      if (cachedBytes + pack.length <= deps.capacityBytes) break;
      evict(old);
    }
    cached.set(id, pack);
    cachedBytes += pack.length;
  };

  const download = (loc: BlobLocation, packSize: number): Promise<Buffer> => {
    const running = downloads.get(loc.pack);
    if (running !== undefined) return running;
    const work = (async () => {
      const body = await pipe(
        deps.store.get(deps.keyOf(loc.pack)),
        TE.getOrElse((e) => {
          throw deps.storeError(e, loc);
        }),
      )();
      // Into one buffer of the size the index gives, chunk by chunk as they arrive.
      const pack = Buffer.allocUnsafeSlow(packSize);
      let size = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (size + chunk.length <= packSize) chunk.copy(pack, size);
        size += chunk.length;
      }
      if (size !== packSize)
        throw { _tag: 'BlobCorrupt', op: 'get', key: loc.digest, cause: new Error(`pack ${loc.pack} holds ${size} bytes, its index says ${packSize}`) } satisfies VolumeError;
      if (!closed) keep(loc.pack, pack);
      return pack;
    })();
    downloads.set(loc.pack, work);
    void work.then(
      () => downloads.delete(loc.pack),
      () => downloads.delete(loc.pack),
    );
    return work;
  };

  const wholePackRead = async (loc: BlobLocation, packSize: number): Promise<Buffer[]> => {
    let pack = cached.get(loc.pack);
    if (pack !== undefined) {
      cached.delete(loc.pack); // most recently used: to the end
      cached.set(loc.pack, pack);
    } else pack = await download(loc, packSize);
    if (loc.offset + loc.length > pack.length) throw new Error(`pack ${loc.pack} ends before ${loc.digest}`);
    // A copy: the reader owns it, and the pack may leave the cache.
    const blob = Buffer.allocUnsafe(loc.length);
    pack.copy(blob, 0, loc.offset, loc.offset + loc.length);
    return [blob];
  };

  const read = (loc: BlobLocation, packSize: number): TE.TaskEither<VolumeError, Readable | Buffer[]> =>
    packSize > deps.wholePackMax
      ? pipe(
          // A big blob alone in its pack: streamed straight through.
          deps.store.get(deps.keyOf(loc.pack)),
          TE.mapLeft((e) => deps.storeError(e, loc)),
        )
      : TE.tryCatch<VolumeError, Readable | Buffer[]>(async () => (await announcedRead(loc)) ?? wholePackRead(loc, packSize), asVolumeError('get', loc.digest));

  return {
    read: (loc, packSize) =>
      // An empty blob (stored unsealed) has no byte range to read.
      loc.length === 0 ? TE.right([]) : read(loc, packSize),
    evict,
    prefetch: (plans) => {
      for (const plan of plans) {
        if (closed) return;
        if (plan.size > deps.wholePackMax) continue;
        const blobs = plan.blobs.filter((b) => b.length > 0);
        if (streamOf.has(plan.pack) || queued.some((q) => q.pack === plan.pack)) {
          // Already coming: more reads of what it brings.
          for (const b of blobs) {
            const known = announced.get(b.digest) ?? taken.get(b.digest);
            if (known !== undefined) known.wanted += b.wanted ?? 1;
          }
          continue;
        }
        for (const b of blobs) {
          const known = announced.get(b.digest);
          if (known !== undefined) known.wanted += b.wanted ?? 1;
          else {
            const ready = taken.get(b.digest);
            if (ready !== undefined) ready.wanted += b.wanted ?? 1;
            else announced.set(b.digest, { pack: plan.pack, wanted: b.wanted ?? 1 });
          }
        }
        queued.push({ ...plan, blobs: blobs.filter((b) => announced.get(b.digest)?.pack === plan.pack), at: Date.now() });
      }
      sweep();
      pump();
    },
    open: (packs) => {
      for (const { pack, size } of packs) {
        if (closed || early.size >= PREFETCH_CONCURRENCY) return;
        if (size > deps.wholePackMax || early.has(pack) || streamOf.has(pack) || queued.some((q) => q.pack === pack)) continue;
        // A failed open is left to the stream that would use it (it opens again).
        early.set(pack, { body: openBody(pack).catch(() => undefined), at: Date.now() });
      }
    },
    close: async () => {
      closed = true;
      for (const id of [...early.keys()]) dropEarly(id);
      clearInterval(sweeper);
      queued.length = 0;
      wakeStreams();
      for (const s of streams) s.body?.destroy();
      await Promise.allSettled([...downloads.values()]);
      for (const d of [...waiters.keys()]) deliver(d, undefined);
      announced.clear();
      taken.clear();
      takenBytes = 0;
      cached.clear();
      cachedBytes = 0;
    },
  };
};
