import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import type { AccountId } from '@zxbackup/item-store';
import { describeEngineError, type ScanSummary } from '@zxbackup/scanners';
import {
  ARCHIVES_KEPT_PER_ACCOUNT,
  appError,
  requireAccountArg,
  resolveBackupRoot,
  resolveSource,
  runScan,
  uploadMetadataArchives,
  withWriter,
  type AppError,
  type GlobalArgs,
  type MetadataUploadSummary,
  type ScanKind,
} from '@zxbackup/runtime';
import { defineCommand, type CommandContext } from '../lib/command';

const summaryLines = (kind: string, id: string, s: ScanSummary): string[] => [
  `${kind} ${s.stopped ? 'stopped' : s.failures.length > 0 ? 'finished with failures' : 'finished'} (operation ${id})`,
  `  accounts ${s.accounts} (deleted ${s.accountsDeleted}), folders scanned ${s.foldersScanned}, skipped unchanged ${s.foldersSkipped}, renamed ${s.foldersRenamed}`,
  `  items created ${s.created}, updated ${s.updated}, moved ${s.moved}, deleted ${s.deleted}; transactions recorded ${s.recorded}`,
  `  messages read ${s.messagesRead} (${(s.bytesRead / 1048576).toFixed(1)} MiB), new blobs ${s.blobsStored}`,
  ...s.failures.map((f) => `  FAILED ${f.account}: ${describeEngineError(f.error)}`),
];

/** Runs one scan as a persisted operation and prints its summary; failed accounts make exit 1. */
const scanCommand = <A>(
  ctx: CommandContext<A>,
  request: { readonly kind: ScanKind; readonly full?: boolean; readonly account?: AccountId },
  options: { readonly sourceOverride?: string; readonly uploadMetadata: boolean },
): TE.TaskEither<AppError, void> =>
  withWriter(resolveBackupRoot(ctx.args), { initialize: request.kind === 'SmartScan' }, (session) =>
    pipe(
      resolveSource(session.path, options.sourceOverride),
      TE.flatMap((source) => {
        const sink = ctx.out.progress(request.kind);
        return runScan(session, {
          ...request,
          source,
          clock: ctx.deps.now,
          onProgress: sink.update,
          onFinish: sink.finish,
          onStart: (id) => ctx.out.info(`${request.kind} started: operation ${id}`),
        });
      }),
      TE.flatMap(({ id, result }): TE.TaskEither<AppError, { id: string; result: ScanSummary; upload: MetadataUploadSummary | undefined }> =>
        options.uploadMetadata && !result.stopped
          ? pipe(
              uploadMetadataArchives(session, { clock: ctx.deps.now, ...(request.account ? { accounts: [request.account] } : {}) }),
              TE.map((upload) => ({ id, result, upload })),
            )
          : TE.right({ id, result, upload: undefined }),
      ),
      TE.flatMap(({ id, result, upload }) => {
        ctx.out.result({ operation: id, ...result, ...(upload ? { metadataUpload: upload } : {}) }, () => [
          ...summaryLines(request.kind, id, result),
          ...(upload === undefined
            ? []
            : upload.store === null
              ? ['  metadata archives: the backup path has no third-party volume (setBackupVolume), nothing to upload']
              : [
                  `  metadata archives to ${upload.store}: ${upload.uploaded} uploaded (${(upload.bytes / 1048576).toFixed(1)} MiB), ${upload.unchanged} unchanged, ${upload.pruned} older removed (the ${ARCHIVES_KEPT_PER_ACCOUNT} newest of each account are kept)`,
                  ...upload.failures.map((f) => `  FAILED archive ${f.account}: ${f.message}`),
                ]),
        ]);
        if (upload && upload.failures.length > 0) {
          return TE.left(appError('Failed', `${upload.failures.length} metadata archive(s) could not be uploaded; they are retried by the next upload`));
        }
        return result.failures.length > 0
          ? TE.left(appError('Failed', `${result.failures.length} account(s) could not be scanned; see above, fix the cause and run the scan again`))
          : TE.right(undefined);
      }),
    ),
  );

interface SmartScanArgs {
  readonly action: string;
  readonly source?: string;
  readonly deep?: boolean;
  readonly remoteMetadataUpload?: boolean;
}

export const doSmartScanCommand = (deps: CommandContext<unknown>['deps']): CommandModule<GlobalArgs, SmartScanArgs> =>
  defineCommand<SmartScanArgs>(deps, {
    command: 'doSmartScan <action>',
    describe: 'Back up what changed since the last scan (the first run initializes the backup path and copies everything)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('action', { choices: ['start'], demandOption: true, describe: 'start' })
        .option('source', { type: 'string', describe: 'the mail server, e.g. maildir:/var/vmail (stored as ZxBackup_Source on first use)' })
        .option('deep', { type: 'boolean', default: false, describe: 'read every folder, ignoring the scan cursors; also uploads the metadata archives' })
        .option('remote-metadata-upload', { type: 'boolean', default: false, describe: 'upload the metadata archives of changed accounts to the third-party volume' })
        .example('$0 doSmartScan start --source maildir:/var/vmail', 'first run: initialize and copy everything')
        .example('$0 doSmartScan start', 'daily incremental run') as unknown as Argv<SmartScanArgs>,
    run: (ctx) =>
      scanCommand(ctx, { kind: 'SmartScan', full: ctx.args.deep === true }, {
        ...(ctx.args.source === undefined ? {} : { sourceOverride: ctx.args.source }),
        uploadMetadata: ctx.args.deep === true || ctx.args.remoteMetadataUpload === true,
      }),
  });

interface AccountScanArgs {
  readonly account: string;
  readonly deep?: boolean;
  readonly remoteMetadataUpload?: boolean;
}

export const doAccountScanCommand = (deps: CommandContext<unknown>['deps']): CommandModule<GlobalArgs, AccountScanArgs> =>
  defineCommand<AccountScanArgs>(deps, {
    command: 'doAccountScan <account>',
    describe: 'Scan one account fully (the Safety Scan), e.g. after an emptied folder',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true, describe: 'the account address' })
        .option('deep', { type: 'boolean', default: false, describe: 'accepted for zxsuite compatibility: an Account Scan always reads every folder' })
        .option('remote-metadata-upload', { type: 'boolean', default: false, describe: "upload the account's metadata archive to the third-party volume" })
        .example('$0 doAccountScan alice@example.test', '') as unknown as Argv<AccountScanArgs>,
    run: (ctx) =>
      pipe(
        requireAccountArg(ctx.args.account),
        TE.flatMap((account) => scanCommand(ctx, { kind: 'AccountScan', account }, { uploadMetadata: ctx.args.remoteMetadataUpload === true })),
      ),
  });
