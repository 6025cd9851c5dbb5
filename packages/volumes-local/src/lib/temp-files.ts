import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Temp files live in `<root>/.tmp/` (the digest is only known once the stream ended) and are
 * named `<pid>-<random>-<host>.tmp`, so a later open can tell a dead writer's leftovers from a
 * live writer's work, also when several NFS clients share the directory.
 */
export const TEMP_DIR = '.tmp';
const HOST = encodeURIComponent(hostname());
const TEMP_NAME = /^(\d+)-[0-9a-f]+-(.+)\.tmp$/;

/** A temp file of a writer on another host is only considered abandoned after this long. */
export const FOREIGN_TEMP_MAX_AGE_MS = 24 * 60 * 60 * 1000;

// Unique per process: a random prefix drawn once, then a counter (a random draw per blob costs
// more than the rest of naming it).
const PROCESS_TAG = randomBytes(6).toString('hex');
let counter = 0;

export const tempName = (): string => {
  counter += 1;
  return `${process.pid}-${PROCESS_TAG}${counter.toString(16).padStart(8, '0')}-${HOST}.tmp`;
};

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
 * Whether a temp file can be removed: its writer on this host is dead, or it belongs to another
 * host (or is not ours at all) and is older than `FOREIGN_TEMP_MAX_AGE_MS`.
 */
export const isAbandonedTemp = (name: string, modifiedAtMs: number, nowMs: number): boolean => {
  const match = TEMP_NAME.exec(name);
  if (match !== null && match[2] === HOST) return !processIsAlive(Number(match[1]));
  return nowMs - modifiedAtMs > FOREIGN_TEMP_MAX_AGE_MS;
};
