import { promises as fs } from 'node:fs';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import type { AccountId } from '@zxbackup/item-store';
import {
  appError,
  bucketsFilePath,
  createEncryptionKeyFile,
  executeVolumeMigrationPlan,
  formatInstant,
  fromPackageError,
  listBucketSummaries,
  planVolumeMigration,
  requireAccountArg,
  resolveBackupRoot,
  retrieveMetadataFromArchive,
  runOperation,
  setBackupVolume,
  withWriter,
  type AppError,
  type GlobalArgs,
  type VolumeTargetSpec,
} from '@zxbackup/runtime';
import { defineCommand, type CliDeps, type CommandContext } from '../lib/command';
import { EXIT_STATUS_HELP } from '../lib/exit-codes';

/*
 * The third-party store commands (the seed's "Backup on a Third Party Store"): setBackupVolume,
 * migrateBackupVolume, listBuckets, retrieveMetadataFromArchive. Secrets given here go to the
 * bucket configuration file (mode 0600) and nowhere else: never printed, never in errors.
 */

interface VolumeArgs {
  readonly type: string;
  readonly mountPath?: string;
  readonly bucketName?: string;
  readonly accessKey?: string;
  readonly secret?: string;
  readonly secretFile?: string;
  readonly region?: string;
  readonly url?: string;
  readonly volumePrefix?: string;
  readonly bucketConfigurationId?: string;
  readonly encryptionKeyFile?: string;
}

const volumeOptions = <A>(y: Argv<GlobalArgs>, verb: string): Argv<A> =>
  y
    .positional('type', { type: 'string', demandOption: true, describe: 'S3 (a bucket) or Local (an NFS/FUSE mount point)' })
    .positional('mountPath', { type: 'string', describe: `Local only: the mount point of the share to ${verb}` })
    .option('bucket-name', { type: 'string', describe: 'S3: the bucket (created when missing)' })
    .option('access-key', { type: 'string', describe: 'S3: the access key' })
    .option('secret', { type: 'string', describe: 'S3: the secret key (stored with mode 0600, never printed); see --secret-file' })
    .option('secret-file', { type: 'string', describe: 'S3: read the secret key from this file instead (keeps it out of `ps`)' })
    .option('region', { type: 'string', describe: 'S3: the region, e.g. us-east-1' })
    .option('url', { type: 'string', describe: 'S3: the endpoint as a full URL, e.g. https://s3.example.com or http://127.0.0.1:9000' })
    .option('volume-prefix', { type: 'string', describe: "S3: this server's folder in the bucket, e.g. server1 (one prefix per server)" })
    .option('bucket-configuration-id', {
      type: 'string',
      describe: 'S3: reuse a stored bucket configuration (see listBuckets); with the bucket options: store them under this id',
    })
    .option('encryption-key-file', {
      type: 'string',
      describe:
        'S3: encrypt blobs and metadata archives client-side (AES-256-GCM) with the key in this file (see generateEncryptionKey); only its path is stored',
    }) as unknown as Argv<A>;

/** Reads `--secret-file` and turns the arguments into a target; the type is case-insensitive. */
const targetSpec = (args: VolumeArgs): TE.TaskEither<AppError, VolumeTargetSpec> => {
  const type = args.type.toLowerCase();
  if (type === 'local') {
    if (args.mountPath === undefined || args.mountPath === '') return TE.left(appError('Usage', 'Local needs the mount point: e.g. `Local /mnt/backup`'));
    if (args.encryptionKeyFile !== undefined)
      return TE.left(appError('Usage', '--encryption-key-file is for S3 only: the Local (mount) volume is not encrypted; encrypt the share itself'));
    const s3Only = (['bucketName', 'accessKey', 'secret', 'secretFile', 'region', 'url', 'volumePrefix', 'bucketConfigurationId'] as const).filter(
      (k) => args[k] !== undefined,
    );
    if (s3Only.length > 0) return TE.left(appError('Usage', 'the bucket options are for S3 only; Local takes just the mount point'));
    return TE.right({ type: 'external-local', mountPath: args.mountPath });
  }
  if (type !== 's3') return TE.left(appError('Usage', `unknown volume type "${args.type}": use S3 or Local`));
  if (args.mountPath !== undefined) return TE.left(appError('Usage', `unexpected argument "${args.mountPath}": S3 takes options only (see --help)`));
  if (args.secret !== undefined && args.secretFile !== undefined) return TE.left(appError('Usage', 'give --secret or --secret-file, not both'));
  const secret: TE.TaskEither<AppError, string | undefined> =
    args.secretFile === undefined
      ? TE.right(args.secret)
      : TE.tryCatch(
          async () => (await fs.readFile(args.secretFile as string, 'utf8')).trim(),
          () => appError('Usage', `cannot read the secret file ${args.secretFile}`),
        );
  return pipe(
    secret,
    TE.map((s): VolumeTargetSpec => ({
      type: 's3',
      bucket: {
        ...(args.bucketName === undefined ? {} : { bucketName: args.bucketName }),
        ...(args.accessKey === undefined ? {} : { accessKey: args.accessKey }),
        ...(s === undefined ? {} : { secret: s }),
        ...(args.region === undefined ? {} : { region: args.region }),
        ...(args.url === undefined ? {} : { url: args.url }),
        ...(args.bucketConfigurationId === undefined ? {} : { bucketConfigurationId: args.bucketConfigurationId }),
      },
      ...(args.volumePrefix === undefined ? {} : { prefix: args.volumePrefix }),
      ...(args.encryptionKeyFile === undefined ? {} : { encryptionKeyFile: args.encryptionKeyFile }),
    })),
  );
};

const S3_EXAMPLE =
  '--bucket-name zxbackup --access-key AKIA... --secret-file /root/s3.secret --region us-east-1 --url https://s3.example.com --volume-prefix server1';

export const setBackupVolumeCommand = (deps: CliDeps): CommandModule<GlobalArgs, VolumeArgs> =>
  defineCommand<VolumeArgs>(deps, {
    command: 'setBackupVolume <type> [mountPath]',
    describe: 'Keep the blobs of a new backup on S3 or an NFS/FUSE mount (metadata stay local); an existing backup needs migrateBackupVolume',
    builder: (y: Argv<GlobalArgs>) =>
      volumeOptions<VolumeArgs>(y, 'use')
        .example(`$0 setBackupVolume S3 ${S3_EXAMPLE}`, 'server 1: store a new bucket configuration (the bucket is created when missing)')
        .example('$0 setBackupVolume S3 --bucket-configuration-id 4f2a9c01d3e7 --volume-prefix server2', 'server 2: same bucket, its own prefix')
        .example('$0 generateEncryptionKey /root/zxbackup.key', 'once: a key for client-side encryption (keep a copy off this server)')
        .example(`$0 setBackupVolume S3 ${S3_EXAMPLE} --encryption-key-file /root/zxbackup.key`, 'the bucket holds only encrypted blobs and archives')
        .example('$0 setBackupVolume Local /mnt/zxbackup', 'blobs on a mounted NFS share')
        .epilogue(
          'Bucket configurations (with their credentials) are kept in $ZXBACKUP_BUCKETS_FILE, else\n' +
            '/etc/zxbackup/buckets.json (mode 0600); `zxbackup listBuckets` shows them without secrets. Blobs are\n' +
            'written to a local cache under the backup path first and sent to the store as soon as possible, so\n' +
            'scans go on while it is away. With --encryption-key-file every object is encrypted before it leaves this\n' +
            'server; the backup path records the key file\'s path and fingerprint, never the key. Without the key file\n' +
            `the backup cannot be read: keep a copy of it off this server.\n\n${EXIT_STATUS_HELP}`,
        ) as unknown as Argv<VolumeArgs>,
    run: (ctx) =>
      pipe(
        targetSpec(ctx.args),
        TE.flatMap((spec) => setBackupVolume(resolveBackupRoot(ctx.args), spec, { env: ctx.deps.env, now: ctx.deps.now() })),
        TE.map((s) =>
          ctx.out.result(s, () => [
            `${s.backupPath}: blobs ${s.changed ? 'now go to' : 'already go to'} ${s.description}${s.initialized ? ' (backup path initialized)' : ''}`,
            ...(s.volume.type === 's3' && s.volume.encryption !== undefined
              ? [`  encrypted with the key ${s.volume.encryption.keyId} from ${s.volume.encryption.keyFile}: keep a copy of that file off this server`]
              : []),
            ...(s.bucketConfigurationId === undefined
              ? []
              : [`  bucket configuration ${s.bucketConfigurationId}${s.bucketCreated ? ' (bucket created)' : ''}: other servers reuse it with --bucket-configuration-id ${s.bucketConfigurationId} and their own --volume-prefix`]),
          ]),
        ),
      ),
  });

interface MigrateArgs extends VolumeArgs {
  readonly dryRun?: boolean;
}

export const migrateBackupVolumeCommand = (deps: CliDeps): CommandModule<GlobalArgs, MigrateArgs> =>
  defineCommand<MigrateArgs>(deps, {
    command: 'migrateBackupVolume <type> [mountPath]',
    describe: "Move an existing backup's blobs, metadata archives, server configuration and map files to S3 or an NFS/FUSE mount",
    builder: (y: Argv<GlobalArgs>) =>
      volumeOptions<MigrateArgs>(y, 'move to')
        .option('dry-run', { type: 'boolean', default: false, describe: 'print what would move, change nothing' })
        .example(`$0 migrateBackupVolume S3 ${S3_EXAMPLE}`, '')
        .example('$0 migrateBackupVolume Local /mnt/zxbackup --dry-run', 'see what would move')
        .example(
          '$0 migrateBackupVolume S3 --bucket-configuration-id 4f2a9c01d3e7 --volume-prefix server1-enc --encryption-key-file /root/zxbackup.key',
          'encrypt an existing S3 backup: move it to a new prefix, encrypted',
        )
        .epilogue(
          'Every blob is written with its digest checked and confirmed by the store; the backup switches to the new\n' +
            'volume only when everything is there, then the local copies are removed. Interrupted (killed, doStopOperation,\n' +
            `store away)? Run the same command again: it continues. No SmartScan runs at the end.\n\n${EXIT_STATUS_HELP}`,
        ) as unknown as Argv<MigrateArgs>,
    run: (ctx) =>
      pipe(
        targetSpec(ctx.args),
        TE.flatMap((spec) =>
          withWriter(resolveBackupRoot(ctx.args), { initialize: false }, (session) =>
            pipe(
              planVolumeMigration(session, spec, { env: ctx.deps.env, now: ctx.deps.now() }),
              TE.flatMap((planned) => {
                const p = planned.plan;
                const planLines = [
                  `from   ${p.fromDescription}`,
                  `to     ${p.toDescription}`,
                  `blobs  ${p.blobs}, accounts ${p.accounts}${p.alreadyThere ? ' (already on this volume: only local leftovers are removed)' : ''}`,
                ];
                if (ctx.args.dryRun === true) {
                  ctx.out.result({ dryRun: true, ...p }, () => ['migration plan (dry run, nothing changed):', ...planLines.map((l) => `  ${l}`)]);
                  return TE.right(undefined);
                }
                const sink = ctx.out.progress('VolumeMigration');
                return pipe(
                  runOperation(
                    {
                      backupRoot: session.path.root,
                      operations: session.path.operations,
                      onProgress: sink.update,
                      onFinish: sink.finish,
                      onStart: (id) => ctx.out.info(`VolumeMigration started: operation ${id}`),
                    },
                    'VolumeMigration',
                    { from: p.fromDescription, to: p.toDescription },
                    (control) =>
                      pipe(
                        executeVolumeMigrationPlan(session, planned, control, { env: ctx.deps.env, now: ctx.deps.now }),
                        TE.map((r) => ({ ...r })),
                      ),
                  ),
                  TE.mapLeft((e) => ('message' in e && '_tag' in e && e._tag !== 'OperationStoreError' ? (e as AppError) : fromPackageError(e))),
                  TE.flatMap(({ id, result }) => {
                    ctx.out.result({ operation: id, ...p, ...result }, () => [
                      `VolumeMigration ${result.stopped ? 'stopped' : result.switched ? 'finished' : 'had nothing to move'} (operation ${id})`,
                      ...planLines.map((l) => `  ${l}`),
                      `  blobs copied ${result.copied}, already on the target ${result.alreadyOnTarget}; metadata archives ${result.archives}; server files ${result.serverFiles}; local copies removed ${result.removedLocal}`,
                    ]);
                    return result.stopped
                      ? TE.left(appError('Failed', 'the migration was stopped before the switch: the backup still uses the old volume; run the same command again to continue'))
                      : TE.right(undefined);
                  }),
                );
              }),
            ),
          ),
        ),
      ),
  });

interface ListBucketsArgs {
  readonly which?: string;
}

export const listBucketsCommand = (deps: CliDeps): CommandModule<GlobalArgs, ListBucketsArgs> =>
  defineCommand<ListBucketsArgs>(deps, {
    command: 'listBuckets [which]',
    describe: 'List the stored S3 bucket configurations (id, bucket, URL, region, prefixes in use; never the credentials)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('which', { type: 'string', choices: ['all', 'backup'], default: 'all', describe: 'accepted for zxsuite compatibility' })
        .example('$0 listBuckets', '')
        .example('$0 listBuckets all --json', '')
        .epilogue(`Reads $ZXBACKUP_BUCKETS_FILE, else /etc/zxbackup/buckets.json.\n\n${EXIT_STATUS_HELP}`) as unknown as Argv<ListBucketsArgs>,
    run: (ctx: CommandContext<ListBucketsArgs>) => {
      const file = bucketsFilePath(ctx.deps.env);
      return pipe(
        listBucketSummaries(file),
        TE.map((buckets) =>
          ctx.out.result({ file, buckets }, () =>
            buckets.length === 0
              ? [`no bucket configuration in ${file}: create one with \`zxbackup setBackupVolume S3 ...\``]
              : buckets.flatMap((b) => [
                  `${b.id}  bucket ${b.bucket}  ${b.url}  region ${b.region}  created ${formatInstant(b.createdAt)}`,
                  ...(b.prefixes.length === 0
                    ? ['    no prefix in use']
                    : b.prefixes.map((u) => `    prefix "${u.prefix}"  server ${u.serverId}  backup path ${u.backupPath}`)),
                ]),
          ),
        ),
      );
    },
  });

interface RetrieveArgs extends VolumeArgs {
  readonly accounts?: string;
}

export const retrieveMetadataFromArchiveCommand = (deps: CliDeps): CommandModule<GlobalArgs, RetrieveArgs> =>
  defineCommand<RetrieveArgs>(deps, {
    command: 'retrieveMetadataFromArchive <type> [mountPath]',
    describe: 'Disaster recovery: download the newest metadata archives from S3 or a mount into the backup path and rebuild its metadata',
    builder: (y: Argv<GlobalArgs>) =>
      volumeOptions<RetrieveArgs>(y, 'read')
        .option('accounts', { type: 'string', describe: 'only these accounts, comma-separated (default: every account in the store)' })
        .example(`$0 --backup-path /var/lib/zxbackup/backup retrieveMetadataFromArchive S3 ${S3_EXAMPLE}`, 'a new machine after a disaster')
        .example('$0 retrieveMetadataFromArchive S3 --bucket-configuration-id 4f2a9c01d3e7 --volume-prefix server1 --accounts alice@example.test', 'mend one account')
        .example(
          `$0 --backup-path /var/lib/zxbackup/backup retrieveMetadataFromArchive S3 ${S3_EXAMPLE} --encryption-key-file /root/zxbackup.key`,
          'an encrypted backup: the same key file (a wrong one is refused before anything is written)',
        )
        .example('$0 retrieveMetadataFromArchive Local /mnt/zxbackup', '')
        .epilogue(
          'The backup path may be missing or empty (it is initialized for this server). When the archives come from\n' +
            'another server, the path records it in map_<old server id>, and the store is taken over by this server.\n' +
            `Afterwards the blobs are read from the store: restore right away, e.g. \`zxbackup doRestoreOnNewAccount ...\`.\n\n${EXIT_STATUS_HELP}`,
        ) as unknown as Argv<RetrieveArgs>,
    run: (ctx) =>
      pipe(
        TE.Do,
        TE.bind('spec', () => targetSpec(ctx.args)),
        TE.bind('accounts', () =>
          ctx.args.accounts === undefined
            ? TE.right<AppError, ReadonlyArray<AccountId> | undefined>(undefined)
            : pipe(
                ctx.args.accounts
                  .split(',')
                  .map((a) => a.trim())
                  .filter((a) => a !== '')
                  .map(requireAccountArg),
                TE.sequenceArray,
              ),
        ),
        TE.flatMap(({ spec, accounts }) => {
          const sink = ctx.out.progress('retrieveMetadataFromArchive');
          return pipe(
            retrieveMetadataFromArchive(resolveBackupRoot(ctx.args), spec, {
              ...(accounts === undefined ? {} : { accounts }),
              env: ctx.deps.env,
              now: ctx.deps.now(),
              onProgress: (p) => sink.update({ done: p.done, total: p.total, message: p.account }),
            }),
            TE.tapIO(() => () => sink.finish()),
            TE.orElseFirstIOK(() => () => sink.finish()),
          );
        }),
        TE.map((s) =>
          ctx.out.result(s, () => [
            `retrieved the metadata of ${s.accounts} account(s) (${s.items} items) from ${s.store} into ${s.backupPath}${s.initialized ? ' (initialized)' : ''}`,
            ...(s.previousServer ? [`  the backup of server ${s.previousServer.serverId} (${s.previousServer.host}); recorded in ${s.mapFile ?? 'a map file'}`] : []),
            ...(s.missing.length > 0 ? [`  no archive for: ${s.missing.join(', ')}`] : []),
            '  blobs are read from the store; restore with doRestoreOnNewAccount / doItemRestore',
          ]),
        ),
      ),
  });

interface GenerateKeyArgs {
  readonly file: string;
}

export const generateEncryptionKeyCommand = (deps: CliDeps): CommandModule<GlobalArgs, GenerateKeyArgs> =>
  defineCommand<GenerateKeyArgs>(deps, {
    command: 'generateEncryptionKey <file>',
    describe: 'Write a new random key for the client-side encryption of an S3 volume (mode 0600; an existing file is never overwritten)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('file', { type: 'string', demandOption: true, describe: 'where to write the key (one line of base64)' })
        .example('$0 generateEncryptionKey /root/zxbackup.key', '')
        .example(`$0 setBackupVolume S3 ${S3_EXAMPLE} --encryption-key-file /root/zxbackup.key`, 'then use it')
        .epilogue(
          'The key never leaves the file: the backup path records its path and fingerprint only. Anyone with the\n' +
            'file can read the backup; without it nobody can, not even you: keep a copy in a safe place off this\n' +
            `server (a password manager, a printed copy in a safe), or a disaster recovery is impossible.\n\n${EXIT_STATUS_HELP}`,
        ) as unknown as Argv<GenerateKeyArgs>,
    run: (ctx) =>
      pipe(
        createEncryptionKeyFile(ctx.args.file),
        TE.map((k) =>
          ctx.out.result(k, () => [
            `wrote a new encryption key to ${k.keyFile} (mode 0600), fingerprint ${k.keyId}`,
            '  keep a copy of this file off this server: without it the encrypted backup cannot be read, not even for a disaster recovery',
          ]),
        ),
      ),
  });
