import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import * as t from 'io-ts';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { CheckpointFile, decodeJson, unsafeLogPosition, type LogPosition } from './codecs';
import { closed, corrupt, decodeError, ioError, type TxLogError } from './errors';
import { containsFrameWithSeq, encodeFrame, HEADER_BYTES, MAX_PAYLOAD_BYTES, openSegmentReader } from './framing';
import { fsyncDir, readFileIfExists, removeStaleTemps, writeFileAtomic } from './fs-util';
import { acquireLock, type HeldLock } from './lock-file';

/** What recovery cut from the end of the log at open. */
export interface RecoveryReport {
  readonly segment: string;
  /** Byte offset where the first damaged record started; the file now ends here. */
  readonly offset: number;
  readonly droppedBytes: number;
  readonly reason: string;
}

export interface ChangeLogOptions {
  /** A segment is closed and a new one started once it would grow past this. Default 16 MiB. */
  readonly segmentBytes?: number;
  /** Told when open cut a torn tail left by a crash. */
  readonly onRecovery?: (report: RecoveryReport) => void;
}

export interface ChangeLog<A> {
  /**
   * Appends `records` in order and resolves with the position of the last one once they are
   * fsynced (an empty array resolves with the current end). Appends waiting at the same time
   * share one fsync. After a failed write or fsync every later call fails with `LogIOError`
   * until the log is reopened; records of a failed append MAY still be replayed then.
   */
  readonly append: (records: ReadonlyArray<A>) => TE.TaskEither<TxLogError, LogPosition>;
  /**
   * Visits, in order, every durable record whose position is greater than `after` (pass
   * `checkpointed()` to get what is not applied yet, or 'start' for everything still kept),
   * and resolves with the last position visited (`after` if none). Records appended while
   * replaying are not visited. Fails with `LogTruncated` if records after `after` were
   * compacted away, `LogDecodeError` if a payload fails the codec.
   */
  readonly replay: (
    after: LogPosition | 'start',
    visit: (record: A, position: LogPosition) => void | Promise<void>,
  ) => TE.TaskEither<TxLogError, LogPosition>;
  /** Durably records that everything up to `position` was applied; never moves backwards. */
  readonly checkpoint: (position: LogPosition) => TE.TaskEither<TxLogError, void>;
  /** The last checkpoint, 0 if none. */
  readonly checkpointed: () => TE.TaskEither<TxLogError, LogPosition>;
  /**
   * Deletes whole segments whose records are all at or before both `position` and the
   * checkpoint; never the segment being written. Resolves with the number removed. A replay
   * from before `position` running at the same time MAY fail with `LogIOError`.
   */
  readonly truncateBefore: (position: LogPosition) => TE.TaskEither<TxLogError, number>;
  /** Position of the last durable record, 0 if the log is empty. */
  readonly end: () => LogPosition;
  /** What open cut from a torn tail, if anything. */
  readonly recovery: RecoveryReport | null;
  /** Waits for pending appends and checkpoints, then releases the directory lock. */
  readonly close: () => TE.TaskEither<TxLogError, void>;
}

const LOCK = 'changelog.lock';
const CHECKPOINT = 'checkpoint.json';
const SEGMENT = /^changes-(\d{16})\.log$/;
const segmentName = (firstSeq: number): string => `changes-${String(firstSeq).padStart(16, '0')}.log`;

/** Raised inside the open/replay helpers and turned into a Left at their boundary. */
class Failure {
  constructor(readonly error: TxLogError) {}
}
const fail = (error: TxLogError): never => {
  throw new Failure(error);
};
const asError = (op: string, key: string | undefined, e: unknown): TxLogError =>
  e instanceof Failure ? e.error : ioError(op, key, e);

const writeAll = async (fh: FileHandle, buf: Buffer, position: number): Promise<void> => {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
};

interface ActiveSegment {
  fh: FileHandle;
  file: string;
  size: number;
}

interface OpenState {
  readonly segments: number[];
  readonly active: ActiveSegment;
  readonly lastSeq: number;
  readonly checkpoint: number;
  readonly recovery: RecoveryReport | null;
}

/**
 * Opens (creating if needed) the change log in `dir`, holding `dir/changelog.lock` until
 * `close()`. A torn last record left by a crash is cut off and reported; any other damage
 * is `LogCorrupt`.
 */
export const openChangeLog = <A>(
  dir: string,
  codec: t.Type<A, unknown>,
  options: ChangeLogOptions = {},
): TE.TaskEither<TxLogError, ChangeLog<A>> => {
  const segmentBytes = options.segmentBytes ?? 16 * 1024 * 1024;
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 1) throw new RangeError(`segmentBytes must be a positive integer, got ${segmentBytes}`);
  return pipe(
    TE.tryCatch(
      () => fsp.mkdir(dir, { recursive: true }),
      (e) => ioError('openChangeLog', dir, e),
    ),
    TE.flatMap(() => acquireLock('openChangeLog', path.join(dir, LOCK))),
    TE.flatMap((lock) => async () => {
      let state: OpenState;
      try {
        state = await loadState(dir);
      } catch (e) {
        try {
          await lock.release();
        } catch (releaseError) {
          return E.left(ioError('openChangeLog', path.join(dir, LOCK), releaseError));
        }
        return E.left(asError('openChangeLog', dir, e));
      }
      if (state.recovery !== null) options.onRecovery?.(state.recovery);
      return E.right(makeChangeLog(dir, codec, segmentBytes, lock, state));
    }),
  );
};

const listSegments = async (dir: string): Promise<number[]> =>
  (await fsp.readdir(dir))
    .map((name) => SEGMENT.exec(name)?.[1])
    .filter((digits): digits is string => digits !== undefined)
    .map(Number)
    .sort((a, b) => a - b);

const loadState = async (dir: string): Promise<OpenState> => {
  const op = 'openChangeLog';
  await removeStaleTemps(dir, CHECKPOINT);
  const checkpointFile = path.join(dir, CHECKPOINT);
  const checkpoint = pipe(
    await readFileIfExists(checkpointFile),
    O.match(
      () => 0,
      (text) =>
        pipe(
          decodeJson(CheckpointFile, text),
          E.match(
            (why) => fail(decodeError(op, checkpointFile, undefined, why)),
            (c) => c.position,
          ),
        ),
    ),
  );
  const segments = await listSegments(dir);
  const lastStart = segments[segments.length - 1];
  if (lastStart === undefined) {
    const first = checkpoint + 1;
    const file = path.join(dir, segmentName(first));
    const fh = await fsp.open(file, 'wx');
    await fsyncDir(dir);
    return { segments: [first], active: { fh, file, size: 0 }, lastSeq: checkpoint, checkpoint, recovery: null };
  }
  const file = path.join(dir, segmentName(lastStart));
  const { validEnd, lastSeq, damage } = await scanLastSegment(file, lastStart);
  let recovery: RecoveryReport | null = null;
  const fh = await fsp.open(file, 'r+');
  try {
    if (damage !== null) {
      const { size } = await fh.stat();
      await fh.truncate(validEnd);
      await fh.sync();
      recovery = { segment: file, offset: validEnd, droppedBytes: size - validEnd, reason: damage };
    }
    if (checkpoint > lastSeq) {
      fail(corrupt(op, checkpointFile, undefined, `checkpoint ${checkpoint} is beyond the last record ${lastSeq}; segments are missing`));
    }
  } catch (e) {
    await fh.close();
    throw e;
  }
  return { segments, active: { fh, file, size: validEnd }, lastSeq, checkpoint, recovery };
};

/**
 * Finds where the valid records of the last segment end. A damaged record is a torn write
 * (cut, reported) only if no valid record with the next sequence number follows it;
 * otherwise acknowledged records sit behind it and it is `LogCorrupt`.
 */
const scanLastSegment = async (
  file: string,
  firstSeq: number,
): Promise<{ validEnd: number; lastSeq: number; damage: string | null }> => {
  const reader = await openSegmentReader(file);
  let expected = firstSeq;
  let validEnd = 0;
  try {
    for (;;) {
      const step = await reader.next();
      if (step.kind === 'eof') return { validEnd, lastSeq: expected - 1, damage: null };
      if (step.kind === 'bad') {
        // Bounded by the segment size; only runs after a crash or damage.
        const rest = (await fsp.readFile(file)).subarray(step.offset + 1);
        if (containsFrameWithSeq(rest, expected + 1)) {
          fail(corrupt('openChangeLog', file, step.offset, `${step.why} in record ${expected}, and later records follow it`));
        }
        return { validEnd: step.offset, lastSeq: expected - 1, damage: step.why };
      }
      if (step.seq !== expected) {
        fail(corrupt('openChangeLog', file, step.offset, `record ${step.seq} where ${expected} was expected`));
      }
      expected++;
      validEnd = step.offset + HEADER_BYTES + step.payload.length;
    }
  } finally {
    await reader.close();
  }
};

interface Waiter {
  readonly payloads: ReadonlyArray<Buffer>;
  readonly resolve: (result: E.Either<TxLogError, LogPosition>) => void;
}

const makeChangeLog = <A>(
  dir: string,
  codec: t.Type<A, unknown>,
  segmentBytes: number,
  lock: HeldLock,
  state: OpenState,
): ChangeLog<A> => {
  const checkpointFile = path.join(dir, CHECKPOINT);
  const segments = state.segments; // first sequence number of each segment, ascending
  let active = state.active;
  let lastDurable = state.lastSeq;
  let checkpointAt = state.checkpoint;
  let isClosed = false;
  let failed: TxLogError | null = null;
  let queue: Waiter[] = [];
  let draining: Promise<void> | null = null;
  // Checkpoint and compaction run one at a time, in call order.
  let maintenance: Promise<unknown> = Promise.resolve();

  const rotate = async (firstSeq: number): Promise<void> => {
    await active.fh.close();
    const file = path.join(dir, segmentName(firstSeq));
    const fh = await fsp.open(file, 'wx');
    active = { fh, file, size: 0 };
    segments.push(firstSeq);
    // The new name must be durable before any record in it is acknowledged.
    await fsyncDir(dir);
  };

  const flushChunk = async (chunk: Buffer[]): Promise<void> => {
    if (chunk.length === 0) return;
    const buf = Buffer.concat(chunk);
    await writeAll(active.fh, buf, active.size);
    await active.fh.datasync();
    active.size += buf.length;
  };

  /** Writes a group of appends with one fsync per segment touched; returns each one's last position. */
  const writeGroup = async (group: ReadonlyArray<Waiter>): Promise<number[]> => {
    let seq = lastDurable + 1;
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    const lasts: number[] = [];
    for (const w of group) {
      for (const payload of w.payloads) {
        const frame = encodeFrame(seq, payload);
        const used = active.size + chunkBytes;
        if (used > 0 && used + frame.length > segmentBytes) {
          await flushChunk(chunk);
          chunk = [];
          chunkBytes = 0;
          await rotate(seq);
        }
        chunk.push(frame);
        chunkBytes += frame.length;
        seq++;
      }
      lasts.push(seq - 1);
    }
    await flushChunk(chunk);
    lastDurable = seq - 1;
    return lasts;
  };

  const drain = async (): Promise<void> => {
    // Let appends started in the same tick join the first group.
    await Promise.resolve();
    while (queue.length > 0) {
      const group = queue;
      queue = [];
      if (failed !== null) {
        for (const w of group) w.resolve(E.left(failed));
        continue;
      }
      try {
        const lasts = await writeGroup(group);
        group.forEach((w, i) => w.resolve(E.right(unsafeLogPosition(lasts[i] ?? lastDurable))));
      } catch (e) {
        // After a failed write or fsync the file's state is unknown; only reopening (which
        // rescans the tail) makes it trustworthy again.
        failed = ioError('append', active.file, e);
        for (const w of group) w.resolve(E.left(failed));
      }
    }
    draining = null;
  };

  const append = (records: ReadonlyArray<A>): TE.TaskEither<TxLogError, LogPosition> => {
    const payloads = records.map((r) => {
      const payload = Buffer.from(JSON.stringify(codec.encode(r)), 'utf8');
      if (payload.length > MAX_PAYLOAD_BYTES) throw new RangeError(`record of ${payload.length} bytes exceeds ${MAX_PAYLOAD_BYTES}`);
      return payload;
    });
    return () =>
      new Promise((resolve) => {
        if (isClosed) return resolve(E.left(closed('append')));
        if (failed !== null) return resolve(E.left(failed));
        queue.push({ payloads, resolve });
        draining ??= drain();
      });
  };

  const replay = (
    after: LogPosition | 'start',
    visit: (record: A, position: LogPosition) => void | Promise<void>,
  ): TE.TaskEither<TxLogError, LogPosition> => async () => {
    const op = 'replay';
    if (isClosed) return E.left(closed(op));
    const bound = lastDurable;
    const starts = [...segments];
    const firstKept = starts[0] ?? bound + 1;
    const from = after === 'start' ? Math.max(0, firstKept - 1) : after;
    if (from >= bound) return E.right(unsafeLogPosition(from));
    if (from + 1 < firstKept) {
      return E.left({
        _tag: 'LogTruncated',
        op,
        key: dir,
        message: `records ${from + 1} to ${firstKept - 1} were compacted away; the oldest kept is ${firstKept}`,
      });
    }
    let index = 0;
    while (index + 1 < starts.length && (starts[index + 1] ?? Infinity) <= from + 1) index++;
    let expected = starts[index] ?? firstKept;
    let lastVisited = from;
    try {
      for (; index < starts.length && expected <= bound; index++) {
        const file = path.join(dir, segmentName(starts[index] ?? 0));
        if (starts[index] !== expected) fail(corrupt(op, file, 0, `segment starts at record ${starts[index]}, expected ${expected}`));
        const reader = await openSegmentReader(file);
        try {
          while (expected <= bound) {
            const step = await reader.next();
            if (step.kind === 'eof') break;
            if (step.kind === 'bad') fail(corrupt(op, file, step.offset, step.why));
            else {
              if (step.seq !== expected) fail(corrupt(op, file, step.offset, `record ${step.seq} where ${expected} was expected`));
              if (step.seq > from) {
                const record = pipe(
                  decodeJson(codec, step.payload.toString('utf8')),
                  E.match(
                    (why) => fail(decodeError(op, file, step.offset, why)),
                    (a) => a,
                  ),
                );
                const position = unsafeLogPosition(step.seq);
                try {
                  await visit(record, position);
                } catch (cause) {
                  fail({ _tag: 'LogVisitError', op, position, message: `visitor failed at record ${position}`, cause });
                }
                lastVisited = step.seq;
              }
              expected++;
            }
          }
        } finally {
          await reader.close();
        }
      }
      if (expected <= bound) fail(corrupt(op, dir, undefined, `records ${expected} to ${bound} are missing`));
      return E.right(unsafeLogPosition(lastVisited));
    } catch (e) {
      return E.left(asError(op, dir, e));
    }
  };

  const serially = <B>(task: () => Promise<E.Either<TxLogError, B>>): Promise<E.Either<TxLogError, B>> => {
    const p = maintenance.then(task);
    maintenance = p;
    return p;
  };

  const checkpoint = (position: LogPosition): TE.TaskEither<TxLogError, void> => {
    if (position > lastDurable) throw new RangeError(`checkpoint ${position} is beyond the last durable record ${lastDurable}`);
    return () => {
      if (isClosed) return Promise.resolve(E.left(closed('checkpoint')));
      return serially(async () => {
        if (position <= checkpointAt) return E.right(undefined);
        try {
          await writeFileAtomic(checkpointFile, JSON.stringify({ version: 1, position } satisfies CheckpointFile));
        } catch (e) {
          return E.left(ioError('checkpoint', checkpointFile, e));
        }
        checkpointAt = position;
        return E.right(undefined);
      });
    };
  };

  const truncateBefore = (position: LogPosition): TE.TaskEither<TxLogError, number> => () => {
    if (isClosed) return Promise.resolve(E.left(closed('truncateBefore')));
    return serially(async () => {
      const limit = Math.min(position, checkpointAt);
      let removed = 0;
      try {
        // Segment i holds records starts[i] .. starts[i+1]-1; the last one is being written.
        while (segments.length > 1 && (segments[1] ?? Infinity) - 1 <= limit) {
          await fsp.rm(path.join(dir, segmentName(segments[0] ?? 0)));
          segments.shift();
          removed++;
        }
        if (removed > 0) await fsyncDir(dir);
        return E.right(removed);
      } catch (e) {
        return E.left(ioError('truncateBefore', dir, e));
      }
    });
  };

  const close = (): TE.TaskEither<TxLogError, void> => async () => {
    if (isClosed) return E.right(undefined);
    isClosed = true;
    await draining;
    await maintenance;
    try {
      await active.fh.close();
      await lock.release();
      return E.right(undefined);
    } catch (e) {
      return E.left(ioError('close', dir, e));
    }
  };

  return {
    append,
    replay,
    checkpoint,
    checkpointed: () => TE.right(unsafeLogPosition(checkpointAt)),
    truncateBefore,
    end: () => unsafeLogPosition(lastDurable),
    recovery: state.recovery,
    close,
  };
};
