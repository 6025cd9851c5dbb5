import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { TxIdFile, decodeJson } from './codecs';
import { closed, decodeError, ioError, type TxLogError } from './errors';
import { readFileIfExists, removeStaleTemps, tryIO, writeFileAtomic } from './fs-util';
import { acquireLock, type HeldLock } from './lock-file';

export interface TxIdAllocator {
  /**
   * Hands out `count` fresh, contiguous ids and returns the first. Ids are positive safe
   * integers, strictly increasing across calls and across restarts (crashes included) of
   * this directory; gaps MAY appear after a restart. Calls are served in the order they run.
   */
  readonly allocate: (count?: number) => TE.TaskEither<TxLogError, number>;
  /** Waits for pending allocations and releases the directory lock. */
  readonly close: () => TE.TaskEither<TxLogError, void>;
}

export interface TxIdAllocatorOptions {
  /** Ids reserved on disk per write; a restart skips at most this many. Default 10,000. */
  readonly reserveBlock?: number;
}

const FILE = 'txid.json';
const LOCK = 'txid.lock';

/**
 * Opens the transaction id allocator of `dir` (created if missing). Only one allocator per
 * directory may be open at a time, across processes: a second open fails with `LogLocked`.
 */
export const openTxIdAllocator = (dir: string, options: TxIdAllocatorOptions = {}): TE.TaskEither<TxLogError, TxIdAllocator> => {
  const block = options.reserveBlock ?? 10_000;
  if (!Number.isSafeInteger(block) || block < 1) throw new RangeError(`reserveBlock must be a positive integer, got ${block}`);
  const file = path.join(dir, FILE);
  return pipe(
    tryIO('openTxIdAllocator', dir, () => fsp.mkdir(dir, { recursive: true })),
    TE.flatMap(() => acquireLock('openTxIdAllocator', path.join(dir, LOCK))),
    TE.flatMap((lock) =>
      pipe(
        tryIO('openTxIdAllocator', file, async () => {
          await removeStaleTemps(dir, FILE);
          return readFileIfExists(file);
        }),
        TE.flatMap(
          O.match(
            () => TE.right(0),
            (text) =>
              pipe(
                decodeJson(TxIdFile, text),
                E.bimap(
                  (why) => decodeError('openTxIdAllocator', file, undefined, why),
                  (f) => f.reserved,
                ),
                TE.fromEither,
              ),
          ),
        ),
        TE.map((reserved) => makeAllocator(file, reserved, block, lock)),
        // Never keep the lock of an allocator the caller did not get.
        TE.orElse((err) =>
          pipe(
            tryIO('openTxIdAllocator', dir, lock.release),
            TE.flatMap(() => TE.left<TxLogError, TxIdAllocator>(err)),
          ),
        ),
      ),
    ),
  );
};

const makeAllocator = (file: string, reservedOnDisk: number, block: number, lock: HeldLock): TxIdAllocator => {
  let next = reservedOnDisk + 1;
  let limit = reservedOnDisk;
  let isClosed = false;
  // Allocations that need a disk write are chained so that they, and every allocation after
  // them, are served in order; while the chain is empty allocation is synchronous.
  let tail: Promise<unknown> | null = null;

  const takeFromBlock = (count: number): number => {
    const first = next;
    next += count;
    return first;
  };

  const reserveThenTake = async (count: number): Promise<E.Either<TxLogError, number>> => {
    if (isClosed) return E.left(closed('allocate'));
    const last = next + count - 1;
    if (last > limit) {
      const newLimit = Math.min(last + block, Number.MAX_SAFE_INTEGER);
      try {
        await writeFileAtomic(file, JSON.stringify({ version: 1, reserved: newLimit } satisfies TxIdFile));
      } catch (e) {
        return E.left(ioError('allocate', file, e));
      }
      limit = newLimit;
    }
    return E.right(takeFromBlock(count));
  };

  const allocate = (count = 1): TE.TaskEither<TxLogError, number> => {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
    return () => {
      if (isClosed) return Promise.resolve(E.left(closed('allocate')));
      if (next + count - 1 > Number.MAX_SAFE_INTEGER) throw new RangeError('transaction ids exhausted');
      if (tail === null && next + count - 1 <= limit) return Promise.resolve(E.right(takeFromBlock(count)));
      const p = (tail ?? Promise.resolve()).then(() => reserveThenTake(count));
      tail = p;
      void p.finally(() => {
        if (tail === p) tail = null;
      });
      return p;
    };
  };

  const close = (): TE.TaskEither<TxLogError, void> => async () => {
    if (isClosed) return E.right(undefined);
    await tail;
    isClosed = true;
    try {
      await lock.release();
      return E.right(undefined);
    } catch (e) {
      return E.left(ioError('close', file, e));
    }
  };

  return { allocate, close };
};
