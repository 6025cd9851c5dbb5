import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { BlobVolume, Digest, VolumeError } from '@zxbackup/volume-contract';
import { makeLocalVolume } from '@zxbackup/volumes-local';
import { makeS3Volume } from '@zxbackup/volumes-s3';
import { appError, fromPackageError, type AppError } from './errors';
import { uploadMetadataTo } from './metadata-archives';
import type { OperationControl } from './operation-runner';
import type { WriterSession } from './session';
import { bucketsFilePath, describeVolume, mountItemsDir, readBuckets, readVolumeSettings, sameS3Place, sameVolume, storeConfigOf, type VolumeSettings } from './volume-config';
import { claimStore, commitTarget, localBlobsPresent, prepareTarget, resolveTarget, type ResolvedTarget, type VolumeTargetSpec } from './volume-setup';

/*
 * `migrateBackupVolume`: moves an existing backup's blobs, metadata archives, server.json and map
 * files to another volume, then switches `volume.json` — only once the target holds every blob
 * (each written with its expected digest, the S3 uploads confirmed) and the files were read back.
 * Every step is idempotent, so a rerun after a kill continues where it stopped; the local copies
 * of the blobs are removed only after the switch. No SmartScan at the end (the seed).
 */

export interface VolumeMigrationPlan {
  readonly backupPath: string;
  readonly from: VolumeSettings;
  readonly fromDescription: string;
  readonly to: VolumeSettings;
  readonly toDescription: string;
  readonly blobs: number;
  readonly accounts: number;
  /** The path is already on the target: only leftover local blobs (a killed run) are removed. */
  readonly alreadyThere: boolean;
}

export interface VolumeMigrationResult {
  readonly blobs: number;
  readonly copied: number;
  readonly alreadyOnTarget: number;
  readonly archives: number;
  readonly serverFiles: number;
  readonly removedLocal: number;
  readonly switched: boolean;
  readonly stopped: boolean;
}

interface PlanWithTarget {
  readonly plan: VolumeMigrationPlan;
  readonly target: ResolvedTarget;
}

const volumeFailure = (e: VolumeError): AppError => fromPackageError(e);

const countBlobs = (v: BlobVolume): TE.TaskEither<AppError, number> => pipe(v.list(() => undefined), TE.mapLeft(volumeFailure));

/** What a migration would do; `--dry-run` prints it. */
export const planVolumeMigration = (
  session: WriterSession,
  spec: VolumeTargetSpec,
  deps: { readonly env?: NodeJS.ProcessEnv; readonly now: number },
): TE.TaskEither<AppError, PlanWithTarget> => {
  const env = deps.env ?? process.env;
  return pipe(
    TE.Do,
    TE.bind('target', () => resolveTarget(spec, env, deps.now)),
    TE.bind('from', () => readVolumeSettings(session.path.root)),
    TE.tap(({ target, from }) =>
      // Objects rewritten in place would be unreadable by the old configuration half-way through.
      from.type === 's3' && target.settings.type === 's3' && sameS3Place(from, target.settings) && !sameVolume(from, target.settings)
        ? TE.left(
            appError(
              'Usage',
              `the backup is already on ${target.description.replace(/, encrypted.*$/, '')} ${from.encryption === undefined ? 'without encryption' : `encrypted with the key ${from.encryption.keyId}`}: to change its encryption, migrate it to another --volume-prefix`,
            ),
          )
        : TE.right(undefined),
    ),
    TE.bind('buckets', () => readBuckets(bucketsFilePath(env))),
    TE.bind('blobs', () => countBlobs(session.volume)),
    TE.bind('accounts', () => pipe(session.store.listAccounts(), TE.mapLeft(fromPackageError))),
    TE.map(({ target, from, buckets, blobs, accounts }) => ({
      target,
      plan: {
        backupPath: session.path.root,
        from,
        fromDescription: describeVolume(from, buckets),
        to: target.settings,
        toDescription: target.description,
        blobs,
        accounts: accounts.length,
        alreadyThere: sameVolume(from, target.settings),
      },
    })),
  );
};

/** Where the blobs go during the migration: the mount directly, or S3 through its own cache. */
const openDestination = (root: string, target: ResolvedTarget): TE.TaskEither<AppError, BlobVolume & { drain?: (o?: { timeoutMs?: number }) => TE.TaskEither<VolumeError, void> }> => {
  const s = target.settings;
  if (s.type === 'external-local') return pipe(makeLocalVolume({ root: mountItemsDir(s.mountPath) }), TE.mapLeft(volumeFailure));
  if (s.type === 's3' && target.bucket !== undefined) {
    const bucket = target.bucket;
    return pipe(
      TE.fromEither(storeConfigOf(bucket, s.prefix, s.encryption)),
      // Not <path>/cache/s3: that one may be the source's (S3 to S3).
      TE.flatMap((c) => pipe(makeS3Volume({ ...c, cacheDir: path.join(root, 'cache', 's3-migration') }), TE.mapLeft(volumeFailure))),
    );
  }
  return TE.left(appError('Usage', 'migrateBackupVolume moves a backup to S3 or to a mount point'));
};

const run = async <A>(te: TE.TaskEither<AppError, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw r.left;
  return r.right;
};
const runV = async <A>(te: TE.TaskEither<VolumeError, A>): Promise<A> => run(pipe(te, TE.mapLeft(volumeFailure)));

class Stopped {}

/** `volume.list`, with an exception of the visitor (a stop, a failed copy) rethrown as it was. */
const visitAll = async (volume: BlobVolume, visit: (d: Digest) => Promise<void>): Promise<number> => {
  let thrown: { readonly e: unknown } | undefined;
  const r = await volume.list(async (d) => {
    try {
      await visit(d);
    } catch (e) {
      thrown = { e };
      throw e;
    }
  })();
  if (thrown !== undefined) throw thrown.e;
  if (E.isLeft(r)) throw volumeFailure(r.left);
  return r.right;
};

/** Copies, verifies, uploads, switches and cleans up, reporting progress through `control`. */
export const executeVolumeMigrationPlan = (
  session: WriterSession,
  { plan, target }: PlanWithTarget,
  control: Pick<OperationControl, 'progress' | 'shouldStop'>,
  deps: { readonly env?: NodeJS.ProcessEnv; readonly now: () => number; readonly drainTimeoutMs?: number },
): TE.TaskEither<AppError, VolumeMigrationResult> => async () => {
  const env = deps.env ?? process.env;
  const root = session.path.root;
  const source = session.volume;
  let copied = 0;
  let alreadyOnTarget = 0;
  let done = 0;
  try {
    if (plan.alreadyThere) {
      const removedLocal = await removeLocalLeftovers(session, plan, control);
      return E.right({ blobs: plan.blobs, copied, alreadyOnTarget: plan.blobs, archives: 0, serverFiles: 0, removedLocal, switched: false, stopped: false });
    }
    await run(prepareTarget(target, session.path.stamp.serverId));
    const dest = await run(openDestination(root, target));
    try {
      // 1. blobs: a put with the expected digest is verified while written, and idempotent.
      await visitAll(source, async (d: Digest) => {
          if (control.shouldStop()) throw new Stopped();
          const body = await runV(source.get(d));
          const put = await runV(dest.put(body, { expectedDigest: d }));
          if (put.stored) copied++;
          else alreadyOnTarget++;
          done++;
          if (done % 256 === 0) await runV(dest.flush());
          control.progress({ done, total: plan.blobs, phase: 'blobs' });
      });
      await runV(dest.flush());
      if (dest.drain !== undefined) {
        control.progress({ done, total: plan.blobs, phase: 'waiting for the store to confirm every blob' });
        await runV(dest.drain({ timeoutMs: deps.drainTimeoutMs ?? 30 * 60_000 }));
      }
      // 2. verify: every blob of the source is on the target.
      let missing = 0;
      let checked = 0;
      await visitAll(source, async (d) => {
        if (control.shouldStop()) throw new Stopped();
        if (!(await runV(dest.has(d)))) missing++;
        checked++;
        if (checked % 256 === 0) control.progress({ done: checked, total: plan.blobs, phase: 'verifying' });
      });
      if (missing > 0) throw appError('Failed', `${missing} blob(s) are not on ${target.description} after the copy; run the migration again`);
    } finally {
      await dest.close()();
    }
    // 3. metadata archives of every account, the server files: read back after upload.
    control.progress({ done: 0, total: plan.accounts, phase: 'metadata archives' });
    const up = await run(
      uploadMetadataTo(root, session.store, target.remote, {
        force: true,
        clock: deps.now,
        env,
        onProgress: (p) => control.progress({ done: p.done, total: p.total, phase: 'metadata archives' }),
        shouldStop: control.shouldStop,
      }),
    );
    if (control.shouldStop()) throw new Stopped();
    if (up.failures.length > 0)
      throw appError('Failed', `the metadata archive of ${up.failures.length} account(s) could not be uploaded (first: ${up.failures[0]?.account}: ${up.failures[0]?.message}); run the migration again`);
    const serverFiles = await run(claimStore(root, target.remote));
    // 4. the switch.
    await run(commitTarget(session.path, target, plan.from, env));
    // 5. the local copies, now redundant.
    const removedLocal = await removeLocalLeftovers(session, plan, control);
    return E.right({ blobs: plan.blobs, copied, alreadyOnTarget, archives: up.uploaded, serverFiles, removedLocal, switched: true, stopped: false });
  } catch (e) {
    if (e instanceof Stopped)
      return E.right({ blobs: plan.blobs, copied, alreadyOnTarget, archives: 0, serverFiles: 0, removedLocal: 0, switched: false, stopped: true });
    const err = e as AppError;
    return E.left(typeof err._tag === 'string' && typeof err.message === 'string' ? err : fromPackageError(e));
  }
};

/** After the switch from the local volume: `<path>/items` is no longer read; empty it. */
const removeLocalLeftovers = async (session: WriterSession, plan: VolumeMigrationPlan, control: Pick<OperationControl, 'progress'>): Promise<number> => {
  if (plan.from.type !== 'local' && !(plan.alreadyThere && plan.to.type !== 'local')) return 0;
  if (!(await run(localBlobsPresent(session.path.itemsDir)))) return 0;
  const local = await runV(makeLocalVolume({ root: session.path.itemsDir }));
  let removed = 0;
  try {
    // Deleting what the walk already returned is safe for readdir; memory stays bounded.
    await visitAll(local, async (d) => {
      const r = await local.delete(d)();
      if (E.isLeft(r) && r.left._tag !== 'BlobNotFound') throw volumeFailure(r.left);
      removed++;
      if (removed % 256 === 0) control.progress({ done: removed, total: plan.blobs, phase: 'removing the local copies' });
    });
    await runV(local.flush());
  } finally {
    await local.close()();
  }
  return removed;
};
