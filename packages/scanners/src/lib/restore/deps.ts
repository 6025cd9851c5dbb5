import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { AccountId, MetadataStore } from '@zxbackup/item-store';
import type { BlobVolume } from '@zxbackup/volume-contract';
import type { Logger } from '../engine/types';
import type { RestoreTarget, SourceError } from '../source';
import { RestoreAbort, restoreError, type RestoreError } from './errors';

export interface RestoreProgress {
  readonly phase: 'folders' | 'messages' | 'done';
  readonly done: number;
  readonly total?: number;
}

export interface RestoreDeps {
  readonly store: MetadataStore;
  readonly volume: BlobVolume;
  readonly target: RestoreTarget;
  /**
   * Reads a message back from the target, for the duplicate check of an undelete (the maildir
   * source's `openBlob` over the same tree fits). Without it a message already there is one
   * with the same size and received date.
   */
  readonly readTarget?: (account: AccountId, locator: string) => TE.TaskEither<SourceError, Readable>;
  readonly onProgress?: (p: RestoreProgress) => void;
  readonly log?: Logger;
  /** Messages written at the same time (default 4). */
  readonly concurrency?: number;
  /**
   * Messages whose blobs are fetched ahead of their write, the ones being written included
   * (default 16): a remote volume's latency overlaps the writes.
   */
  readonly readAhead?: number;
  /**
   * Messages whose files are being written at once on the file path (the volume writes them:
   * `writeToFile` and the target's `writeMessageFile`; default 512, see restore-account.ts).
   */
  readonly filesAhead?: number;
  /**
   * Messages planned before the volume hears of the first of them (`warmUp`, default 64): a
   * remote volume opens their downloads while the rest of the account is walked.
   */
  readonly warmUpAfter?: number;
}

/** Runs a TaskEither inside restore code: a Left becomes a `RestoreAbort`. */
export const runR = async <L, A>(te: TE.TaskEither<L, A>, wrap: (l: L) => RestoreError): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new RestoreAbort(wrap(r.left));
  return r.right;
};

/**
 * The boundary of an exported restore function that writes to the target: like `restoreTask`,
 * and the target is flushed at the end (what was written becomes durable and visible), also
 * when the restore failed part-way: what it wrote stays, as a target writing one by one would
 * have left it. A failed flush fails a restore that had worked.
 */
export const writingRestoreTask =
  <A>(deps: Pick<RestoreDeps, 'target'>, op: string, f: () => Promise<A>): TE.TaskEither<RestoreError, A> =>
    restoreTask(op, async () => {
      const flush = async (): Promise<void> => {
        if (deps.target.flush !== undefined) await runR(deps.target.flush(), restoreError.target('flush', deps.target.uri));
      };
      let result: A;
      try {
        result = await f();
      } catch (error) {
        await flush().catch(() => undefined); // the restore's own failure is the one to report
        throw error;
      }
      await flush();
      return result;
    });

/** The boundary of an exported restore function: a `RestoreAbort` becomes its Left. */
export const restoreTask =
  <A>(op: string, f: () => Promise<A>): TE.TaskEither<RestoreError, A> =>
  () =>
    f().then(
      (a) => E.right(a),
      (e: unknown) => E.left(e instanceof RestoreAbort ? e.error : restoreError.internal(op)(e)),
    );

/**
 * Runs a store traversal whose visitor may fail with a `RestoreAbort`: the store reports a
 * visitor's failure as its own IOError; the restore reports the visitor's error instead.
 */
export const traverse = async <L>(
  traversal: (visit: <A extends unknown[]>(f: (...args: A) => Promise<void>) => (...args: A) => Promise<void>) => TE.TaskEither<L, unknown>,
  wrap: (l: L) => RestoreError,
): Promise<void> => {
  let failure: { error: unknown } | undefined;
  const guard =
    <A extends unknown[]>(f: (...args: A) => Promise<void>) =>
    async (...args: A): Promise<void> => {
      try {
        await f(...args);
      } catch (error) {
        failure ??= { error };
        throw error;
      }
    };
  const r = await traversal(guard)();
  if (failure !== undefined) throw failure.error;
  if (E.isLeft(r)) throw new RestoreAbort(wrap(r.left));
};
