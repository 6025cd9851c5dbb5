import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { ServerStamp, acquireWriteLock, initBackupPath, localServerId, openBackupPath, type BackupPath } from '@zxbackup/item-store';
import { ensureBucket } from '@zxbackup/volumes-s3';
import { readEncryptionKeyFile, type EncryptionSettings } from './encryption-keys';
import { appError, fromPackageError, type AppError } from './errors';
import { makeMountRemoteStore, makeS3RemoteStore, readRemoteText, type RemoteStore } from './remote-store';
import { serverFilesOf } from './metadata-archives';
import {
  STORE_ITEMS_DIR,
  STORE_SERVER_DIR,
  bucketsFilePath,
  describeVolume,
  normalizePrefix,
  readBuckets,
  readVolumeSettings,
  releaseBucketUse,
  resolveBucket,
  sameVolume,
  saveBucket,
  storeConfigOf,
  writeVolumeSettings,
  type BucketConfiguration,
  type BucketOptions,
  type VolumeSettings,
} from './volume-config';

/** A third-party volume as the operator names it on the command line. */
export type VolumeTargetSpec =
  | {
      readonly type: 's3';
      readonly bucket: BucketOptions;
      readonly prefix?: string;
      /** Encrypt (or read) every object of the store with this key file's key. */
      readonly encryptionKeyFile?: string;
    }
  | { readonly type: 'external-local'; readonly mountPath: string };

/** A spec resolved against the bucket configuration file: what to write and where the store is. */
export interface ResolvedTarget {
  readonly settings: VolumeSettings;
  readonly remote: RemoteStore;
  readonly bucket?: BucketConfiguration;
  /** For people: never holds a secret. */
  readonly description: string;
}

export const resolveTarget = (spec: VolumeTargetSpec, env: NodeJS.ProcessEnv, now: number): TE.TaskEither<AppError, ResolvedTarget> => {
  if (spec.type === 'external-local') {
    if (!path.isAbsolute(spec.mountPath)) return TE.left(appError('Usage', `the mount path "${spec.mountPath}" must be absolute`));
    const mountPath = path.resolve(spec.mountPath);
    const settings: VolumeSettings = { type: 'external-local', mountPath };
    return TE.right({ settings, remote: makeMountRemoteStore(mountPath), description: describeVolume(settings) });
  }
  const prefix = normalizePrefix(spec.prefix ?? '');
  if (E.isLeft(prefix)) return TE.left(appError('Usage', prefix.left));
  return pipe(
    spec.encryptionKeyFile === undefined ? TE.right<AppError, EncryptionSettings | undefined>(undefined) : readEncryptionKeyFile(spec.encryptionKeyFile),
    TE.flatMap((encryption) =>
      pipe(
        resolveBucket(bucketsFilePath(env), spec.bucket, now),
        TE.flatMap(({ bucket }) =>
          pipe(
            TE.fromEither(storeConfigOf(bucket, prefix.right, encryption)),
            TE.map((config): ResolvedTarget => {
              const settings: VolumeSettings = {
                type: 's3',
                bucketConfigurationId: bucket.id,
                prefix: prefix.right,
                ...(encryption === undefined ? {} : { encryption }),
              };
              return { settings, remote: makeS3RemoteStore(config), bucket, description: describeVolume(settings, [bucket]) };
            }),
          ),
        ),
      ),
    ),
  );
};

const describeError = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The server stamp a store holds in `server/server.json`, if any. */
export const storeOwner = (remote: RemoteStore): TE.TaskEither<AppError, ServerStamp | undefined> =>
  pipe(
    readRemoteText(remote, `${STORE_SERVER_DIR}/server.json`),
    TE.flatMap((text) => {
      if (text === undefined) return TE.right(undefined);
      if (text.startsWith('ZXBE'))
        return TE.left(
          appError('Usage', `${remote.name} is encrypted: give the key file it was written with (--encryption-key-file)`),
        );
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return TE.left(appError('Failed', `${remote.name}: ${STORE_SERVER_DIR}/server.json is not JSON; it is not a zxbackup store, or a damaged one`));
      }
      const d = ServerStamp.decode(raw);
      return E.isRight(d) ? TE.right(d.right) : TE.left(appError('Failed', `${remote.name}: ${STORE_SERVER_DIR}/server.json is not a server stamp`));
    }),
  );

/**
 * Makes the target usable: creates the bucket when missing (S3) or the `items` folder on the
 * mount (which must exist: the share mounted), then checks no other server owns the store —
 * two servers sharing a bucket need two prefixes. `adopt` names a server whose store we may take
 * over (disaster recovery).
 */
export const prepareTarget = (
  target: ResolvedTarget,
  serverId: string,
  adopt?: string,
): TE.TaskEither<AppError, { readonly bucketCreated: boolean; readonly owner: ServerStamp | undefined }> =>
  pipe(
    target.settings.type === 's3' && target.bucket !== undefined
      ? pipe(
          TE.fromEither(storeConfigOf(target.bucket, target.settings.prefix)),
          TE.flatMap((c) =>
            pipe(
              ensureBucket(c),
              TE.mapLeft((e) =>
                appError(
                  'Failed',
                  `cannot use bucket "${c.bucket}" at ${target.bucket?.url ?? ''}: ${e._tag}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}; check the URL, region and credentials`,
                ),
              ),
            ),
          ),
        )
      : target.settings.type === 'external-local'
        ? prepareMount(target.settings.mountPath)
        : TE.right(false),
    TE.flatMap((bucketCreated) =>
      pipe(
        storeOwner(target.remote),
        TE.flatMap((owner) =>
          owner !== undefined && owner.serverId !== serverId && owner.serverId !== adopt
            ? TE.left(
                appError(
                  'Failed',
                  `${target.description} already holds the backup of server ${owner.serverId} (${owner.host}); two servers never share a store: choose another --volume-prefix (or mount point)`,
                ),
              )
            : TE.right({ bucketCreated, owner }),
        ),
      ),
    ),
  );

const prepareMount = (mountPath: string): TE.TaskEither<AppError, boolean> =>
  TE.tryCatch(
    async () => {
      const st = await fs.stat(mountPath).catch((e: unknown) => {
        throw new Error(`${mountPath} does not exist (${describeError(e)}): mount the NFS/FUSE share there first`);
      });
      if (!st.isDirectory()) throw new Error(`${mountPath} is not a directory`);
      await fs.access(mountPath, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK).catch(() => {
        throw new Error(`${mountPath} is not writable by this user`);
      });
      await fs.mkdir(path.join(mountPath, STORE_ITEMS_DIR)).catch((e: unknown) => {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      });
      return false;
    },
    (e) => appError('Failed', describeError(e)),
  );

/** Uploads `server.json` and the map files: the store now says whose backup it holds. */
export const claimStore = (root: string, remote: RemoteStore): TE.TaskEither<AppError, number> =>
  pipe(
    serverFilesOf(root),
    TE.flatMap((names) =>
      pipe(
        names.map((n) => remote.putFile(`${STORE_SERVER_DIR}/${n}`, path.join(root, n))),
        TE.sequenceSeqArray,
        TE.map((done) => done.length),
      ),
    ),
  );

/** Writes `volume.json` (the switch) and records the bucket and its prefix use. */
export const commitTarget = (bp: BackupPath, target: ResolvedTarget, previous: VolumeSettings, env: NodeJS.ProcessEnv): TE.TaskEither<AppError, void> => {
  const file = bucketsFilePath(env);
  return pipe(
    target.bucket !== undefined && target.settings.type === 's3'
      ? saveBucket(file, target.bucket, { prefix: target.settings.prefix, serverId: bp.stamp.serverId, backupPath: bp.root })
      : TE.right(undefined),
    TE.flatMap(() => writeVolumeSettings(bp.root, target.settings)),
    TE.flatMap(() =>
      previous.type === 's3' && !sameVolume(previous, target.settings) ? releaseBucketUse(file, previous.bucketConfigurationId, bp.root) : TE.right(undefined),
    ),
  );
};

/** Whether `<path>/items` holds any blob (a shard folder with an entry). */
export const localBlobsPresent = (itemsDir: string): TE.TaskEither<AppError, boolean> =>
  TE.tryCatch(
    async () => {
      let shards: string[];
      try {
        shards = await fs.readdir(itemsDir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw e;
      }
      for (const s of shards.filter((n) => /^[0-9a-f]{2}$/.test(n))) {
        if ((await fs.readdir(path.join(itemsDir, s))).length > 0) return true;
      }
      return false;
    },
    (e) => appError('Failed', `reading ${itemsDir}: ${describeError(e)}`),
  );

const isUninitialized = async (root: string): Promise<boolean> => {
  try {
    return (await fs.readdir(root)).length === 0;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
};

/** The backup path, initialized first when it is missing or empty (as the first SmartScan does). */
export const openOrInitPath = (root: string): TE.TaskEither<AppError, { readonly bp: BackupPath; readonly initialized: boolean }> => {
  const serverId = localServerId();
  return async () => {
    const fresh = await isUninitialized(root);
    const opened = fresh ? await initBackupPath(root, { serverId, host: os.hostname() })() : await openBackupPath(root, { serverId })();
    return E.isLeft(opened) ? E.left(fromPackageError(opened.left)) : E.right({ bp: opened.right, initialized: fresh });
  };
};

/** Runs `work` holding the backup path's write lock (no scan writes blobs meanwhile). */
export const withPathLock = <A>(bp: BackupPath, work: () => TE.TaskEither<AppError, A>): TE.TaskEither<AppError, A> =>
  pipe(
    acquireWriteLock(bp.root),
    TE.mapLeft(fromPackageError),
    TE.flatMap((lock) => async () => {
      try {
        return await work()();
      } finally {
        await lock.release();
      }
    }),
  );

export interface SetVolumeSummary {
  readonly backupPath: string;
  readonly initialized: boolean;
  readonly volume: VolumeSettings;
  readonly description: string;
  readonly bucketConfigurationId?: string;
  readonly bucketCreated: boolean;
  /** false when the path was already on this volume. */
  readonly changed: boolean;
}

/**
 * `setBackupVolume`: for a backup path with no blobs yet (a new user) — initializes the path
 * when needed, prepares and claims the store, and switches `volume.json`. A path whose blobs are
 * on another volume is refused: `migrateBackupVolume` moves them.
 */
export const setBackupVolume = (
  root: string,
  spec: VolumeTargetSpec,
  deps: { readonly env?: NodeJS.ProcessEnv; readonly now: number },
): TE.TaskEither<AppError, SetVolumeSummary> => {
  const env = deps.env ?? process.env;
  return pipe(
    resolveTarget(spec, env, deps.now),
    TE.flatMap((target) =>
      pipe(
        openOrInitPath(root),
        TE.flatMap(({ bp, initialized }) =>
          withPathLock(bp, () =>
            pipe(
              readVolumeSettings(bp.root),
              TE.flatMap((current) => {
                const same = sameVolume(current, target.settings);
                const refuse = (why: string) =>
                  TE.left<AppError, void>(appError('Usage', `${why}; to move an existing backup use \`zxbackup migrateBackupVolume\``));
                const allowed: TE.TaskEither<AppError, void> = same
                  ? TE.right(undefined)
                  : current.type !== 'local'
                    ? pipe(readBuckets(bucketsFilePath(env)), TE.flatMap((bs) => refuse(`the backup path ${bp.root} already stores its blobs on ${describeVolume(current, bs)}`)))
                    : pipe(
                        localBlobsPresent(bp.itemsDir),
                        TE.flatMap((present) => (present ? refuse(`the backup path ${bp.root} already holds blobs on the local volume`) : TE.right(undefined))),
                      );
                return pipe(
                  allowed,
                  TE.flatMap(() => prepareTarget(target, bp.stamp.serverId)),
                  TE.tap(() => claimStore(bp.root, target.remote)),
                  TE.tap(() => commitTarget(bp, target, current, env)),
                  TE.map(
                    ({ bucketCreated }): SetVolumeSummary => ({
                      backupPath: bp.root,
                      initialized,
                      volume: target.settings,
                      description: target.description,
                      ...(target.bucket ? { bucketConfigurationId: target.bucket.id } : {}),
                      bucketCreated,
                      changed: !same,
                    }),
                  ),
                );
              }),
            ),
          ),
        ),
      ),
    ),
  );
};
