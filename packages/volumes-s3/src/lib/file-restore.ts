import type { BlobFile } from '@zxbackup/volume-contract';
import type { FileDownload, FileResult } from './download-worker';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';

export interface FileRestorerDeps {
  /** Starts the download of a pack into files (on the download worker). */
  readonly download: (pack: PackId) => FileDownload;
  /** Packs downloading at once. */
  readonly concurrency: number;
  /** Downloads and plans nobody asked a file of for this long are dropped (default 60 s): see `sweep`. */
  readonly staleMs?: number;
}

/** A pack to download into files, and its blobs (by offset), each with how many files will want it. */
export interface FilePlan {
  readonly pack: PackId;
  readonly blobs: ReadonlyArray<BlobLocation & { readonly wanted: number }>;
}

/** `unannounced`: no announced download brings this blob (any more); the caller reads it another way. */
export type FileWrite = FileResult | { readonly kind: 'unannounced' };

/**
 * Writes the blobs of announced lists into files straight from their packs' downloads: a
 * restore announces its whole list (`announce`, pack by pack in its read order), then asks for
 * each message's file (`write`), in that order. A few packs download at once, each on the
 * download worker, which takes the blobs out, verifies and writes them; the bytes never come to
 * this thread. A blob whose download failed, was given up, or was never announced is
 * `unannounced` (or `lost`, from the download): the caller reads it another way.
 *
 * Memory: each download keeps at most its window of blobs nobody asked a file of yet; past it,
 * its connection is not read on. A download's slot is free once its whole pack was received;
 * at most twice `concurrency` downloads still have files to come, so memory stays bounded when
 * the files are asked late.
 */
export interface FileRestorer {
  /** Starts these packs' downloads now, before their plans (a restore still walking its metadata): at most `concurrency`. */
  open(packs: ReadonlyArray<PackId>): void;
  announce(plans: ReadonlyArray<FilePlan>): void;
  write(digest: string, file: BlobFile): Promise<FileWrite>;
  close(): void;
}

interface Run {
  readonly plan: FilePlan;
  readonly download: FileDownload;
  /** Files still to be asked of its blobs. */
  remaining: number;
  /**
   * Files asked and not answered yet. A download is only let go without any: cancelling it
   * answers them `lost` at once, while the worker may still write them (it works through what it
   * was sent before the cancel), and a caller reading a lost blob another way would find its file
   * there already.
   */
  inFlight: number;
  received: boolean;
  lastUse: number;
}

interface Wanted {
  readonly pack: PackId;
  readonly index: number;
  remaining: number;
}

export const makeFileRestorer = (deps: FileRestorerDeps): FileRestorer => {
  let closed = false;
  const early = new Map<PackId, { readonly download: FileDownload; readonly at: number }>();
  const queued: Array<FilePlan & { readonly at: number }> = [];
  const runs = new Map<PackId, Run>();
  const wanted = new Map<string, Wanted>();
  /** Files asked of packs not started yet: sent when they start. */
  const waiting = new Map<PackId, Array<{ readonly index: number; readonly file: BlobFile; readonly done: (r: FileWrite) => void }>>();

  const forgetBlobs = (plan: FilePlan): void => {
    for (const b of plan.blobs) if (wanted.get(b.digest)?.pack === plan.pack) wanted.delete(b.digest);
    for (const w of waiting.get(plan.pack) ?? []) w.done({ kind: 'unannounced' });
    waiting.delete(plan.pack);
  };

  const finish = (run: Run): void => {
    if (runs.get(run.plan.pack) !== run) return;
    runs.delete(run.plan.pack);
    run.download.cancel(); // nothing more to ask of it: the worker lets go of what it kept
    forgetBlobs(run.plan);
    pump();
  };

  /** Asks the run's download for one file of the blob at `index`. */
  const ask = (run: Run, index: number, file: BlobFile): Promise<FileWrite> => {
    run.lastUse = Date.now();
    run.remaining--;
    run.inFlight++;
    return run.download.write(index, file).then((r) => {
      run.inFlight--;
      if (done(run)) finish(run);
      return r;
    });
  };
  const done = (run: Run): boolean => run.received && run.remaining <= 0 && run.inFlight === 0;

  const downloading = (): number => [...runs.values()].filter((r) => !r.received).length;

  const pump = (): void => {
    while (!closed && queued.length > 0 && downloading() < deps.concurrency && runs.size < 2 * deps.concurrency) {
      const plan = queued.shift() as FilePlan;
      const opened = early.get(plan.pack);
      early.delete(plan.pack);
      const download = opened?.download ?? deps.download(plan.pack);
      download.plan(plan.blobs.map((b) => ({ offset: b.offset, length: b.length, digest: b.digest, wanted: b.wanted })));
      const run: Run = { plan, download, remaining: plan.blobs.reduce((n, b) => n + b.wanted, 0), inFlight: 0, received: false, lastUse: Date.now() };
      runs.set(plan.pack, run);
      for (const w of waiting.get(plan.pack) ?? []) void ask(run, w.index, w.file).then(w.done);
      waiting.delete(plan.pack);
      download.received.then(
        () => {
          run.received = true;
          if (done(run)) finish(run);
          else pump();
        },
        // Its files come back `lost`; those not asked yet are read another way.
        () => finish(run),
      );
    }
  };

  /**
   * Gives up what nobody uses: a restore that failed or was stopped leaves its plans behind, and
   * in a long-lived process (the admin API's) their downloads would keep their memory and slots.
   */
  const staleMs = deps.staleMs ?? 60_000;
  const sweep = (): void => {
    const before = Date.now() - staleMs;
    for (const [pack, opened] of early) {
      if (opened.at >= before) continue;
      early.delete(pack);
      opened.download.cancel();
    }
    for (let i = queued.length - 1; i >= 0; i--) {
      const plan = queued[i] as FilePlan & { readonly at: number };
      if (plan.at >= before || waiting.has(plan.pack)) continue;
      queued.splice(i, 1);
      forgetBlobs(plan);
    }
    for (const run of [...runs.values()]) if (run.lastUse < before && run.inFlight === 0) finish(run);
    pump();
  };
  const sweeper = setInterval(sweep, Math.max(10, staleMs / 4));
  sweeper.unref();

  const isKnown = (pack: PackId): boolean => early.has(pack) || runs.has(pack) || queued.some((q) => q.pack === pack);

  return {
    open: (packs) => {
      for (const pack of packs) {
        if (closed || early.size >= deps.concurrency) return;
        if (!isKnown(pack)) early.set(pack, { download: deps.download(pack), at: Date.now() });
      }
    },
    announce: (plans) => {
      for (const plan of plans) {
        if (closed) return;
        if (runs.has(plan.pack) || queued.some((q) => q.pack === plan.pack)) {
          // Already coming: more files of the blobs it brings; others of its blobs are read another way.
          for (const b of plan.blobs) {
            const w = wanted.get(b.digest);
            if (w?.pack === plan.pack) w.remaining += b.wanted;
          }
          continue;
        }
        const blobs = plan.blobs.filter((b) => b.length > 0 && !wanted.has(b.digest));
        if (blobs.length === 0) continue;
        blobs.forEach((b, index) => wanted.set(b.digest, { pack: plan.pack, index, remaining: b.wanted }));
        queued.push({ pack: plan.pack, blobs, at: Date.now() });
      }
      pump();
    },
    write: (digest, file) => {
      const w = wanted.get(digest);
      if (w === undefined || w.remaining <= 0) return Promise.resolve({ kind: 'unannounced' });
      if (--w.remaining <= 0) wanted.delete(digest);
      const run = runs.get(w.pack);
      if (run === undefined) {
        return new Promise<FileWrite>((done) => {
          const list = waiting.get(w.pack) ?? [];
          list.push({ index: w.index, file, done });
          waiting.set(w.pack, list);
        });
      }
      return ask(run, w.index, file);
    },
    close: () => {
      closed = true;
      clearInterval(sweeper);
      for (const opened of early.values()) opened.download.cancel();
      early.clear();
      for (const run of [...runs.values()]) finish(run);
      for (const plan of queued.splice(0)) forgetBlobs(plan);
    },
  };
};
