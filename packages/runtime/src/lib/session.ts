import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import {
  AccountId,
  SERVER_ACCOUNT,
  acquireWriteLock,
  initBackupPath,
  localServerId,
  openBackupPath,
  openMetadataStore,
  type BackupPath,
  type MetadataStore,
} from '@zxbackup/item-store';
import { openTxIdAllocator, type TxIdAllocator } from '@zxbackup/transaction-log';
import type { BlobVolume } from '@zxbackup/volume-contract';
import { appError, fromPackageError, type AppError } from './errors';
import { makeConfiguredNotifier, type Notifier } from './notifications';
import { openConfiguredVolume } from './volume-config';

/** A path that does not exist, or an empty directory, is initialized by the first SmartScan. */
const isUninitialized = (root: string): boolean => {
  try {
    return fs.readdirSync(root).length === 0;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
};

export const DEFAULT_BACKUP_PATH = '/var/lib/zxbackup/backup';

export interface GlobalArgs {
  readonly 'backup-path'?: string;
  readonly json?: boolean;
}

/** `--backup-path`, else `$ZXBACKUP_PATH`, else the default; always absolute. */
export const resolveBackupRoot = (args: GlobalArgs, env: NodeJS.ProcessEnv = process.env): string =>
  path.resolve(args['backup-path'] ?? env['ZXBACKUP_PATH'] ?? DEFAULT_BACKUP_PATH);

/** The backup path opened for reading: config and operations only, no lock, no LevelDB. */
export const openForReading = (root: string): TE.TaskEither<AppError, BackupPath> =>
  pipe(openBackupPath(root, { serverId: localServerId() }), TE.mapLeft(fromPackageError));

/** Like `openForReading`, but initializes a missing or empty path (so `config set` can come first). */
export const openOrInitialize = (root: string): TE.TaskEither<AppError, BackupPath> => {
  const serverId = localServerId();
  return pipe(
    isUninitialized(root) ? pipe(initBackupPath(root, { serverId, host: os.hostname() }), TE.asUnit) : TE.right(undefined),
    TE.flatMap(() => openBackupPath(root, { serverId })),
    TE.mapLeft(fromPackageError),
  );
};

/** The backup path opened by the one writer: lock, metadata store, transaction ids, blob volume. */
export interface WriterSession {
  readonly path: BackupPath;
  readonly store: MetadataStore;
  readonly txIds: TxIdAllocator;
  readonly volume: BlobVolume;
  /** Notifications per the path's configuration; every operation reports through it. */
  readonly notifier: Notifier;
  close(): Promise<void>;
}

/**
 * Opens the backup path for writing. With `initialize`, a path that does not exist yet (or is
 * an empty directory) is initialized first, as the first `doSmartScan start` does.
 */
export const openWriter = (root: string, options: { readonly initialize: boolean }): TE.TaskEither<AppError, WriterSession> => {
  const serverId = localServerId();
  const opened = pipe(
    options.initialize && isUninitialized(root) ? pipe(initBackupPath(root, { serverId, host: os.hostname() }), TE.asUnit) : TE.right(undefined),
    TE.flatMap(() => openBackupPath(root, { serverId })),
    TE.mapLeft(fromPackageError),
  );
  return pipe(
    opened,
    TE.flatMap((bp) =>
      pipe(
        acquireWriteLock(bp.root),
        TE.mapLeft(fromPackageError),
        TE.flatMap((lock) => {
          // What opened before a later step failed is closed again, newest first: LevelDB and
          // the id allocator hold their own locks, which a retry in this process would meet.
          const closers: Array<() => Promise<unknown>> = [];
          const opened = <A>(close: (a: A) => Promise<unknown>) => (a: A): TE.TaskEither<never, A> =>
            TE.fromIO(() => {
              closers.unshift(() => close(a));
              return a;
            });
          const undo = <E>(e: E) => async () => {
            for (const close of closers) await close().catch(() => undefined); // the first failure is the one reported
            await lock.release();
            return e;
          };
          return pipe(
            TE.Do,
            TE.bind('store', () =>
              pipe(
                openMetadataStore(bp.metadataDir),
                TE.mapLeft(fromPackageError),
                TE.flatMap(opened((store) => store.close()())),
              ),
            ),
            TE.bind('txIds', () =>
              pipe(
                openTxIdAllocator(path.join(bp.root, 'txlog', 'ids')),
                TE.mapLeft(fromPackageError),
                TE.flatMap(opened((txIds) => txIds.close()())),
              ),
            ),
            TE.bind('volume', () => openConfiguredVolume(bp)),
            TE.map(({ store, txIds, volume }): WriterSession => {
              const notifier = makeConfiguredNotifier(bp);
              const unwatch = watchVolumeStatus(volume, notifier);
              return {
                path: bp,
                store,
                txIds,
                volume,
                notifier,
                close: async () => {
                  await volume.flush()();
                  await drainRemote(volume);
                  unwatch();
                  await volume.close()();
                  await txIds.close()();
                  await store.close()();
                  await lock.release();
                },
              };
            }),
            TE.orElse((e) => TE.leftTask(undo(e))),
          );
        }),
      ),
    ),
  );
};

/** What the S3 and external-mount volumes add: a background upload that can be waited for and watched. */
interface RemoteVolume {
  drain(options?: { readonly timeoutMs?: number }): TE.TaskEither<unknown, void>;
  status(): { readonly state: string; readonly pending?: number };
  onStatus(listener: (s: { readonly state: string; readonly pending?: number; readonly lastError?: unknown }) => void): () => void;
}

const asRemote = (volume: BlobVolume): RemoteVolume | undefined =>
  'drain' in volume && 'onStatus' in volume && 'status' in volume ? (volume as unknown as RemoteVolume) : undefined;

/** Blobs still in the local cache at the end of a command are uploaded before it exits, while the store answers. */
export const DRAIN_ON_CLOSE_TIMEOUT_MS = 10 * 60 * 1000;

const drainRemote = async (volume: BlobVolume): Promise<void> => {
  const remote = asRemote(volume);
  // An unreachable store is not waited for: the cache keeps the blobs, the next session uploads them.
  if (remote && remote.status().state === 'ok') await remote.drain({ timeoutMs: DRAIN_ON_CLOSE_TIMEOUT_MS })();
};

/** A volume whose store becomes unreachable (or returns) is a notification (the seed: scans go on, the cache grows). */
const watchVolumeStatus = (volume: BlobVolume, notifier: Notifier): (() => void) => {
  const remote = asRemote(volume);
  if (!remote) return () => undefined;
  let last = remote.status().state;
  return remote.onStatus((s) => {
    if (s.state === last) return;
    const previous = last;
    last = s.state;
    if (s.state === 'unreachable') {
      void notifier.notify({ level: 'Error', event: 'volume.unreachable', subject: `volume ${volume.name} is unreachable: blobs wait in the local cache`, details: { pending: s.pending ?? null } });
    } else if (s.state === 'ok' && previous === 'unreachable') {
      void notifier.notify({ level: 'Information', event: 'volume.unreachable', subject: `volume ${volume.name} is reachable again: uploading the cache`, details: { pending: s.pending ?? null } });
    }
  });
};

/** Runs `work` with a writer session and always closes it (flushing blobs, releasing the lock). */
export const withWriter = <A>(
  root: string,
  options: { readonly initialize: boolean },
  work: (session: WriterSession) => TE.TaskEither<AppError, A>,
): TE.TaskEither<AppError, A> =>
  pipe(
    openWriter(root, options),
    TE.flatMap((session) => async () => {
      try {
        return await work(session)();
      } finally {
        await session.close();
      }
    }),
  );

/** An account named on the command line or in a request: a lower-cased address. */
export const requireAccountArg = (raw: string): TE.TaskEither<AppError, AccountId> => {
  const decoded = AccountId.decode(raw.trim().toLowerCase());
  return decoded._tag === 'Right' && decoded.right !== SERVER_ACCOUNT
    ? TE.right(decoded.right)
    : TE.left(appError('Usage', `"${raw}" is not an account address: name accounts as user@domain`));
};

/** The account must be in the backup (it has statistics once any scan recorded it). */
export const requireBackedUpAccount = (session: Pick<WriterSession, 'store'>, account: AccountId): TE.TaskEither<AppError, AccountId> =>
  pipe(
    session.store.getAccountStat(account),
    TE.mapLeft(fromPackageError),
    TE.flatMap((stat) =>
      stat._tag === 'Some' ? TE.right(account) : TE.left(appError('NotFound', `${account} is not in the backup: see zxbackup getAvailableAccounts`)),
    ),
  );
