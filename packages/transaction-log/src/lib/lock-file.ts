import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { LockFile, decodeJson } from './codecs';
import { ioError, type TxLogError } from './errors';
import { errnoCode } from './fs-util';

export interface HeldLock {
  /** Removes the lock file if it is still ours. */
  readonly release: () => Promise<void>;
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return errnoCode(e) !== 'ESRCH';
  }
};

const locked = (op: string, lockPath: string, why: string, holderPid?: number): TxLogError => ({
  _tag: 'LogLocked',
  op,
  key: lockPath,
  message: `${lockPath}: ${why}`,
  ...(holderPid === undefined ? {} : { holderPid }),
});

type Attempt = { readonly kind: 'held'; readonly lock: HeldLock } | { readonly kind: 'retry' } | { readonly kind: 'refused'; readonly error: TxLogError };

/**
 * Takes `lockPath` exclusively. The content (pid, host, token) is written to a private file
 * first and hard-linked into place, so a lock file is never seen half written. A lock left by a
 * dead process on this host is stale and taken over; a lock from another host is never
 * broken, since its pid cannot be checked from here.
 */
export const acquireLock = (op: string, lockPath: string): TE.TaskEither<TxLogError, HeldLock> => async () => {
  const mine: LockFile = { version: 1, pid: process.pid, host: os.hostname(), token: randomBytes(8).toString('hex') };
  const mineText = JSON.stringify(mine);
  const tmp = `${lockPath}.${process.pid}.${mine.token}`;
  try {
    await fsp.writeFile(tmp, mineText, { flag: 'wx' });
    try {
      for (let i = 0; i < 5; i++) {
        const attempt = await tryOnce(op, lockPath, tmp, mineText);
        if (attempt.kind === 'held') return E.right(attempt.lock);
        if (attempt.kind === 'refused') return E.left(attempt.error);
      }
      return E.left(locked(op, lockPath, 'lock file keeps changing; another process is taking it'));
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  } catch (e) {
    return E.left(ioError(op, lockPath, e));
  }
};

const tryOnce = async (op: string, lockPath: string, tmp: string, mineText: string): Promise<Attempt> => {
  try {
    await fsp.link(tmp, lockPath);
    return { kind: 'held', lock: { release: () => releaseIfMine(lockPath, mineText) } };
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw e;
  }
  let holderText: string;
  try {
    holderText = await fsp.readFile(lockPath, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { kind: 'retry' };
    throw e;
  }
  const holder = decodeJson(LockFile, holderText);
  if (E.isLeft(holder)) {
    return { kind: 'refused', error: locked(op, lockPath, `unreadable lock file (${holder.left}); remove it if no process uses this directory`) };
  }
  const { pid, host } = holder.right;
  if (host !== os.hostname()) {
    return { kind: 'refused', error: locked(op, lockPath, `held by pid ${pid} on host ${host}`, pid) };
  }
  if (isAlive(pid)) {
    return { kind: 'refused', error: locked(op, lockPath, `held by live process ${pid}`, pid) };
  }
  // Stale. Move it aside and check that what we moved is the stale lock we judged, not a fresh
  // one another process created in between; a fresh one is put back.
  const aside = `${tmp}.stale`;
  try {
    await fsp.rename(lockPath, aside);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { kind: 'retry' };
    throw e;
  }
  const movedText = await fsp.readFile(aside, 'utf8');
  if (movedText !== holderText) {
    try {
      await fsp.link(aside, lockPath);
    } finally {
      await fsp.rm(aside, { force: true });
    }
    return { kind: 'retry' };
  }
  await fsp.rm(aside, { force: true });
  return { kind: 'retry' };
};

const releaseIfMine = async (lockPath: string, mineText: string): Promise<void> => {
  let text: string;
  try {
    text = await fsp.readFile(lockPath, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return;
    throw e;
  }
  if (text === mineText) await fsp.rm(lockPath, { force: true });
};
