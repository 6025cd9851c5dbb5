import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import * as lockfile from 'proper-lockfile';
import type { ConfigStore, OperationStore } from './api';
import { FORMAT_VERSION } from './codecs';
import { makeConfigStore } from './config-store';
import { decodeVersioned } from './decode';
import { describeCause, storeError, type StoreError } from './errors';
import { isNotFound, readJsonFile, writeFileAtomic } from './files';
import { makeOperationStore, OPERATIONS_DIR } from './operation-store';
import { BACKUP_PATH_FORMAT_VERSION, ServerStamp } from './records';

/*
 * The backup path: a directory that belongs to one server, stamped by `server.json`.
 *   server.json  config.json  lock/ lock.owner  metadata/ (LevelDB)  items/ (blobs)  operations/
 * Opening checks, in order: it exists, it is initialized, it is ours, it is writable, and its
 * file system is case-sensitive (item and blob names differ by case only).
 */

export const SERVER_STAMP_FILE = 'server.json';
export const METADATA_DIR = 'metadata';
export const ITEMS_DIR = 'items';
export const LOCK_DIR = 'lock';
export const LOCK_OWNER_FILE = 'lock.owner';

export interface BackupPath {
  readonly root: string;
  readonly stamp: ServerStamp;
  readonly metadataDir: string;
  readonly itemsDir: string;
  readonly operationsDir: string;
  readonly config: ConfigStore;
  readonly operations: OperationStore;
}

const INIT_HINT = 'run `zxbackup doSmartScan start` to initialize it';

const readOptional = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') return undefined;
    throw e;
  }
};

/**
 * This server's id: `ZXBACKUP_SERVER_ID` when set (a container or a moved installation keeps
 * its id that way), else a UUID-shaped SHA-256 of the machine id (`/etc/machine-id`, else
 * `/var/lib/dbus/machine-id`) and the host name: stable across restarts, distinct across
 * machines, and a clone of a machine gets another id as soon as its host name changes.
 */
export const localServerId = (env: NodeJS.ProcessEnv = process.env): string => {
  const fromEnv = env['ZXBACKUP_SERVER_ID']?.trim();
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const machineId = readOptional('/etc/machine-id') ?? readOptional('/var/lib/dbus/machine-id') ?? '';
  const h = createHash('sha256').update(`zxbackup-server\n${machineId}\n${hostname()}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
};

const invalid = (op: string, root: string, why: string) => E.left(storeError.invalid(op, `backup path ${root} ${why}`, root));

/** The directory exists, is writable (a file can be created) and tells `A` from `a`. */
const checkDirectory = async (op: string, root: string, missingHint: string): Promise<E.Either<StoreError, void>> => {
  let st;
  try {
    st = await fs.stat(root);
  } catch (e) {
    if (isNotFound(e)) return invalid(op, root, `does not exist; ${missingHint}`);
    return E.left(storeError.io(op, e, root, `checking backup path ${root}`));
  }
  if (!st.isDirectory()) return invalid(op, root, 'is not a directory');
  const probe = join(root, `.zxbackup-Probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(probe, '', { flag: 'wx' });
  } catch (e) {
    return invalid(op, root, `is not writable by this user (uid ${process.getuid?.() ?? '?'}): ${describeCause(e)}`);
  }
  try {
    const other = join(root, probe.slice(root.length + 1).toLowerCase());
    const caseInsensitive = await fs.stat(other).then(
      () => true,
      (e: unknown) => {
        if (isNotFound(e)) return false;
        throw e;
      },
    );
    if (caseInsensitive) {
      return invalid(op, root, 'is on a case-insensitive file system; a backup path needs a case-sensitive one (item names differ by case only)');
    }
    return E.right(undefined);
  } catch (e) {
    return E.left(storeError.io(op, e, root, `checking backup path ${root}`));
  } finally {
    await fs.rm(probe, { force: true });
  }
};

const readStamp = async (op: string, root: string): Promise<E.Either<StoreError, O.Option<ServerStamp>>> => {
  const path = join(root, SERVER_STAMP_FILE);
  const raw = await readJsonFile(path, op)();
  if (E.isLeft(raw)) return raw;
  if (O.isNone(raw.right)) return E.right(O.none);
  const stamp = decodeVersioned(ServerStamp, op, path)(raw.right.value);
  if (E.isLeft(stamp)) return stamp;
  if (stamp.right.formatVersion !== BACKUP_PATH_FORMAT_VERSION) {
    return E.left(
      storeError.unsupported(op, `backup path ${root} has layout version ${stamp.right.formatVersion}; this zxbackup reads version ${BACKUP_PATH_FORMAT_VERSION}`, path),
    );
  }
  return E.right(O.some(stamp.right));
};

const foreign = (op: string, root: string, stamp: ServerStamp, serverId: string) =>
  E.left(
    storeError.foreign(
      op,
      `backup path ${root} belongs to server ${stamp.serverId} (${stamp.host}), not to this server ${serverId}. ` +
        'Backup paths are neither shared nor reusable; for a disaster recovery import its metadata with retrieveMetadataFromArchive instead.',
      root,
    ),
  );

const layout = async (root: string, stamp: ServerStamp): Promise<BackupPath> => {
  const metadataDir = join(root, METADATA_DIR);
  const itemsDir = join(root, ITEMS_DIR);
  const operationsDir = join(root, OPERATIONS_DIR);
  for (const d of [metadataDir, itemsDir, operationsDir]) await fs.mkdir(d, { recursive: true });
  return { root, stamp, metadataDir, itemsDir, operationsDir, config: makeConfigStore(root), operations: makeOperationStore(root) };
};

/**
 * Create (or confirm) a backup path for this server: writes `server.json` atomically and the
 * directories. Idempotent for the same server; another server's path is `BackupPathForeign`.
 */
export const initBackupPath =
  (root: string, owner: { readonly serverId: string; readonly host: string; readonly now?: number }): TE.TaskEither<StoreError, BackupPath> =>
  async () => {
    const op = 'initBackupPath';
    try {
      await fs.mkdir(root, { recursive: true });
    } catch (e) {
      return invalid(op, root, `cannot be created: ${describeCause(e)}`);
    }
    const checked = await checkDirectory(op, root, 'it could not be created');
    if (E.isLeft(checked)) return checked;
    const existing = await readStamp(op, root);
    if (E.isLeft(existing)) return existing;
    let stamp: ServerStamp;
    if (O.isSome(existing.right)) {
      if (existing.right.value.serverId !== owner.serverId) return foreign(op, root, existing.right.value, owner.serverId);
      stamp = existing.right.value;
    } else {
      stamp = { format: FORMAT_VERSION, serverId: owner.serverId, host: owner.host, createdAt: owner.now ?? Date.now(), formatVersion: BACKUP_PATH_FORMAT_VERSION };
    }
    try {
      if (O.isNone(existing.right)) await writeFileAtomic(join(root, SERVER_STAMP_FILE), `${JSON.stringify(stamp, null, 2)}\n`);
      return E.right(await layout(root, stamp));
    } catch (e) {
      return E.left(storeError.io(op, e, root, `initializing backup path ${root}`));
    }
  };

/** Open this server's backup path; see the module comment for the checks. */
export const openBackupPath =
  (root: string, owner: { readonly serverId: string }): TE.TaskEither<StoreError, BackupPath> =>
  async () => {
    const op = 'openBackupPath';
    try {
      await fs.access(root);
    } catch (e) {
      if (isNotFound(e)) return invalid(op, root, `does not exist; ${INIT_HINT}`);
    }
    const stamp = await readStamp(op, root);
    if (E.isLeft(stamp)) return stamp;
    if (O.isNone(stamp.right)) return invalid(op, root, `is not initialized (no ${SERVER_STAMP_FILE}); ${INIT_HINT}`);
    if (stamp.right.value.serverId !== owner.serverId) return foreign(op, root, stamp.right.value, owner.serverId);
    const checked = await checkDirectory(op, root, INIT_HINT);
    if (E.isLeft(checked)) return checked;
    try {
      return E.right(await layout(root, stamp.right.value));
    } catch (e) {
      return E.left(storeError.io(op, e, root, `opening backup path ${root}`));
    }
  };

/** `lock.owner` only feeds a message, so a malformed one just names nobody. */
const lockOwnerOf = (u: unknown): { pid?: unknown; host?: unknown } => (typeof u === 'object' && u !== null ? u : {});

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

export interface WriteLock {
  release(): Promise<void>;
}

/** How long a lock whose holder stopped refreshing it (crashed) blocks others. */
export const LOCK_STALE_MS = 10_000;

/**
 * Take `<root>/lock`, the one-writer lock of a backup path (proper-lockfile: a directory whose
 * mtime the holder refreshes; older than LOCK_STALE_MS it is stale and taken over). The holder
 * writes its pid beside it (`lock.owner`) so a refusal can name it. `onCompromised` is called
 * if the lock is lost while held (default: throw, as proper-lockfile does, since two writers
 * would corrupt the path).
 */
export const acquireWriteLock =
  (root: string, options: { readonly onCompromised?: (err: Error) => void } = {}): TE.TaskEither<StoreError, WriteLock> =>
  async () => {
    const op = 'acquireWriteLock';
    const ownerPath = join(root, LOCK_OWNER_FILE);
    const lockOptions = (retries: lockfile.LockOptions['retries']): lockfile.LockOptions => ({
      lockfilePath: join(root, LOCK_DIR),
      realpath: false,
      stale: LOCK_STALE_MS,
      retries,
      ...(options.onCompromised === undefined ? {} : { onCompromised: options.onCompromised }),
    });
    const recordedOwner = async (): Promise<{ pid?: unknown; host?: unknown }> => {
      const owner = await readJsonFile(ownerPath, op)();
      return E.isRight(owner) && O.isSome(owner.right) ? lockOwnerOf(owner.right.value) : {};
    };
    let release: () => Promise<void>;
    try {
      try {
        release = await lockfile.lock(root, lockOptions(0));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
        // Held by a process of this host that is gone (killed): its lock turns stale within
        // LOCK_STALE_MS of its last refresh. Waiting that long beats failing a command that
        // would work a few seconds later; a live holder still fails it at once.
        const o = await recordedOwner();
        if (!(typeof o.pid === 'number' && o.host === hostname() && !isAlive(o.pid))) throw e;
        release = await lockfile.lock(root, lockOptions({ retries: Math.ceil(LOCK_STALE_MS / 500) + 4, minTimeout: 500, maxTimeout: 500, factor: 1 }));
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') return E.left(storeError.io(op, e, root, `locking backup path ${root}`));
      const o = await recordedOwner();
      const who =
        typeof o.pid === 'number'
          ? `process ${o.pid} on ${String(o.host)}${o.host === hostname() && !isAlive(o.pid) ? ` (no longer running: the lock expires ${LOCK_STALE_MS / 1000} s after its last refresh)` : ''}`
          : 'another process';
      return E.left(storeError.locked(op, `backup path ${root} is being written by ${who}; one writer at a time`, root));
    }
    try {
      await writeFileAtomic(ownerPath, JSON.stringify({ pid: process.pid, host: hostname(), since: Date.now() }));
    } catch (e) {
      await release();
      return E.left(storeError.io(op, e, ownerPath, `recording the lock owner in ${ownerPath}`));
    }
    let released = false;
    return E.right({
      release: async () => {
        if (released) return;
        released = true;
        await fs.rm(ownerPath, { force: true });
        await release();
      },
    });
  };
