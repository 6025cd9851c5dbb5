import type * as TE from 'fp-ts/TaskEither';
import { readWholeThroughStream, type BlobVolume, type Digest, type ReadHints, type VolumeError } from '@zxbackup/volume-contract';
import type { MessageContent } from '../source';

/** Blobs up to this size are fetched ahead into memory; bigger ones stream when their write starts. */
export const READ_AHEAD_MAX_BUFFERED = 1024 * 1024;

/**
 * Starts fetching a blob now, for a write that starts later: a blob of at most `maxBuffered`
 * bytes is read whole into memory in the background (verified by the volume), and handed over
 * as its parts (`readWhole` where the volume has it, else its stream's chunks). A bigger one
 * (or of unknown size) is only opened when the write runs the task, and streams. The fetch
 * never rejects: an abandoned one leaves no unhandled rejection behind.
 */
export const prefetchBlob = (
  volume: BlobVolume,
  digest: Digest,
  size: number | undefined,
  maxBuffered = READ_AHEAD_MAX_BUFFERED,
): TE.TaskEither<VolumeError, MessageContent> => {
  if (size === undefined || size > maxBuffered) return volume.get(digest);
  // A failure (a corrupt blob too) is the fetch's Left: the write reports it before it starts.
  const fetched = (volume.readWhole?.(digest) ?? readWholeThroughStream(volume.get.bind(volume))(digest))();
  return () => fetched;
};

/**
 * The items in the order the volume reads their blobs fastest (`readOrder`; as given without
 * it), those without a blob first, after telling the volume the list (`prefetch`, with `hints`
 * when given: `into: 'files'` for a list written with `writeToFile`). An S3 volume
 * orders pack by pack, so that its bounded read cache downloads each pack once: item ids are
 * hashes, so the store's order is random to the packs.
 */
export const inReadOrder = async <I>(volume: BlobVolume, items: readonly I[], digestOf: (item: I) => Digest | undefined, hints?: ReadHints): Promise<I[]> => {
  const withBlob = items.filter((i) => digestOf(i) !== undefined);
  const digests = withBlob.map((i) => digestOf(i) as Digest);
  const order = volume.readOrder === undefined ? undefined : await volume.readOrder(digests);
  const list = order === undefined ? digests : order.map((k) => digests[k] as Digest);
  if (hints === undefined) volume.prefetch?.(list);
  else volume.prefetch?.(list, hints);
  const ordered = order === undefined ? withBlob : order.map((k) => withBlob[k] as I);
  return [...items.filter((i) => digestOf(i) === undefined), ...ordered];
};

/**
 * Runs `write` over items in the order they are pushed, at most `writers` at a time and
 * started in that order, while up to `depth` items (waiting or being written) are accepted
 * ahead: the producer makes each item when it is accepted, which is when its fetch starts.
 * Once the window is full, `push` waits until half of it is free, so that the next fetches
 * start together: a volume that hands them to another thread sends them as one batch (one
 * cross-thread wake-up, not one per blob).
 * After a failure nothing new starts; `push` and `drain` throw the first failure (`drain` once
 * the running writes settled).
 */
export const makeReadAhead = <I>(depth: number, writers: number, write: (item: I) => Promise<void>) => {
  const refill = Math.max(1, Math.floor(depth / 2));
  const waiting: I[] = [];
  let running = 0;
  let failure: { error: unknown } | undefined;
  let wakers: Array<() => void> = [];
  const wake = (): void => {
    const w = wakers;
    wakers = [];
    for (const f of w) f();
  };
  const changed = (): Promise<void> => new Promise((r) => wakers.push(r));

  const pump = (): void => {
    while (failure === undefined && running < writers && waiting.length > 0) {
      const item = waiting.shift() as I;
      running++;
      write(item)
        .catch((error: unknown) => {
          failure ??= { error };
        })
        .finally(() => {
          running--;
          pump();
          wake();
        });
    }
  };

  return {
    /** Waits for room, then accepts the item `make` returns. */
    push: async (make: () => I): Promise<void> => {
      if (waiting.length + running >= depth) {
        while (failure === undefined && waiting.length + running > depth - refill) await changed();
      }
      if (failure !== undefined) throw failure.error;
      waiting.push(make());
      pump();
    },
    drain: async (): Promise<void> => {
      while (running > 0 || (failure === undefined && waiting.length > 0)) await changed();
      if (failure !== undefined) throw failure.error;
    },
  };
};
