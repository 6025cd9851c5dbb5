import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Temp files are named `<pid>-<random>-<host>.tmp`, so a later open can tell a dead writer's
 * leftovers from a live writer's work, also when several NFS clients share the volume. They live
 * where the rename that commits them is cheapest:
 * - in the blob's shard `<root>/<xx>/` when the digest is known before the file is created
 *   (`putFile`, and a put small enough to be held whole). The commit is then a rename inside one
 *   directory, and the I/O workers create their files in different directories: with one temp
 *   directory, every creation and every rename of both workers took that directory's lock (and
 *   a rename across directories takes the file system's rename lock too);
 * - in `<root>/.tmp/` when the digest is known only once the stream ended (a large streamed put).
 *
 * Finding a dead writer's temp files in the shards means reading every shard, which costs
 * seconds on a volume of millions of blobs; a volume is opened by every command. So a writer
 * first leaves a mark `<root>/.tmp/<pid>-<random>-<host>.writer` (durable before any temp file of
 * its own is) and removes it when closed; the shards are swept only when a mark's writer is
 * gone, that is after a crash or a kill.
 */
export const TEMP_DIR = '.tmp';
const HOST = encodeURIComponent(hostname());
const TEMP_NAME = /^(\d+)-[0-9a-f]+-(.+)\.(tmp|writer)$/;

/** A temp file of a writer on another host is only considered abandoned after this long. */
export const FOREIGN_TEMP_MAX_AGE_MS = 24 * 60 * 60 * 1000;

// Unique per process: a random prefix drawn once, then a counter (a random draw per blob costs
// more than the rest of naming it).
const PROCESS_TAG = randomBytes(6).toString('hex');
let counter = 0;

const uniqueStem = (): string => {
  counter += 1;
  return `${process.pid}-${PROCESS_TAG}${counter.toString(16).padStart(8, '0')}-${HOST}`;
};

export const tempName = (): string => `${uniqueStem()}.tmp`;

/** The name of a writer's mark in `.tmp/` (see above). */
export const writerMarkName = (): string => `${uniqueStem()}.writer`;

/** A temp file's name (in `.tmp/` or in a shard), as `tempName` makes them. */
export const isTempName = (name: string): boolean => TEMP_NAME.exec(name)?.[3] === 'tmp';

export const isWriterMark = (name: string): boolean => TEMP_NAME.exec(name)?.[3] === 'writer';

const processIsAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Whether a temp file (or a writer's mark) can be removed: its writer on this host is dead, or
 * it belongs to another host (or is not ours at all) and is older than `FOREIGN_TEMP_MAX_AGE_MS`.
 */
export const isAbandonedTemp = (name: string, modifiedAtMs: number, nowMs: number): boolean => {
  const match = TEMP_NAME.exec(name);
  if (match !== null && match[2] === HOST) return !processIsAlive(Number(match[1]));
  return nowMs - modifiedAtMs > FOREIGN_TEMP_MAX_AGE_MS;
};
