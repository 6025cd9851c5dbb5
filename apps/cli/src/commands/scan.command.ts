import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import { makeScanEngine, type ScanProgress, type ScanSummary } from '@zxbackup/scanners';
import {
  appError,
  fromPackageError,
  makeSource,
  requireAccountArg,
  resolveBackupRoot,
  resolveSource,
  runOperation,
  withWriter,
  type AppError,
  type GlobalArgs,
  type WriterSession,
} from '@zxbackup/runtime';
import { defineCommand, type CommandContext } from '../lib/command';

const progressOf = (p: ScanProgress) => ({
  done: p.accountsDone,
  total: p.accountsTotal,
  phase: p.phase,
  message: `${p.account} folders ${p.foldersDone} messages ${p.messagesRead} changes ${p.changes}`,
});

const summaryLines = (kind: string, id: string, s: ScanSummary): string[] => [
  `${kind} ${s.stopped ? 'stopped' : s.failures.length > 0 ? 'finished with failures' : 'finished'} (operation ${id})`,
  `  accounts ${s.accounts} (deleted ${s.accountsDeleted}), folders scanned ${s.foldersScanned}, skipped unchanged ${s.foldersSkipped}, renamed ${s.foldersRenamed}`,
  `  items created ${s.created}, updated ${s.updated}, moved ${s.moved}, deleted ${s.deleted}; transactions recorded ${s.recorded}`,
  `  messages read ${s.messagesRead} (${(s.bytesRead / 1048576).toFixed(1)} MiB), new blobs ${s.blobsStored}`,
  ...s.failures.map((f) => `  FAILED ${f.account}: ${(f.error as { message?: string }).message ?? f.error._tag}`),
];

/** Runs one scan as a persisted operation and prints its summary; failures of accounts make exit 1. */
const runScan = <A>(
  ctx: CommandContext<A>,
  kind: 'SmartScan' | 'AccountScan',
  params: Record<string, unknown>,
  sourceOverride: string | undefined,
  scan: (session: WriterSession, engine: ReturnType<typeof makeScanEngine>) => TE.TaskEither<unknown, ScanSummary>,
): TE.TaskEither<AppError, void> =>
  withWriter(resolveBackupRoot(ctx.args), { initialize: kind === 'SmartScan' }, (session) =>
    pipe(
      resolveSource(session.path, sourceOverride),
      TE.flatMap((uri) => {
        const sink = ctx.out.progress(kind);
        return pipe(
          runOperation(
            { backupRoot: session.path.root, operations: session.path.operations, onProgress: sink.update, onFinish: sink.finish, onStart: (id) => ctx.out.info(`${kind} started: operation ${id}`) },
            kind,
            { ...params, source: `maildir:${uri.root}` },
            (control) =>
              pipe(
                scan(
                  session,
                  makeScanEngine({
                    store: session.store,
                    volume: session.volume,
                    txIds: session.txIds,
                    source: makeSource(uri),
                    clock: ctx.deps.now,
                    onProgress: (p) => control.progress(progressOf(p)),
                    shouldStop: control.shouldStop,
                  }),
                ),
                TE.map((summary) => ({ ...summary }) as ScanSummary & Record<string, unknown>),
              ),
          ),
          TE.mapLeft(fromPackageError),
        );
      }),
      TE.flatMap(({ id, result }) => {
        ctx.out.result({ operation: id, ...result }, () => summaryLines(kind, id, result));
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
}

export const doSmartScanCommand = (deps: CommandContext<unknown>['deps']): CommandModule<GlobalArgs, SmartScanArgs> =>
  defineCommand<SmartScanArgs>(deps, {
    command: 'doSmartScan <action>',
    describe: 'Back up what changed since the last scan (the first run initializes the backup path and copies everything)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('action', { choices: ['start'], demandOption: true, describe: 'start' })
        .option('source', { type: 'string', describe: 'the mail server, e.g. maildir:/var/vmail (stored as ZxBackup_Source on first use)' })
        .option('deep', { type: 'boolean', default: false, describe: 'read every folder, ignoring the scan cursors' })
        .example('$0 doSmartScan start --source maildir:/var/vmail', 'first run: initialize and copy everything')
        .example('$0 doSmartScan start', 'daily incremental run') as unknown as Argv<SmartScanArgs>,
    run: (ctx) => runScan(ctx, 'SmartScan', { deep: ctx.args.deep === true }, ctx.args.source, (_s, engine) => engine.smartScan({ full: ctx.args.deep === true })),
  });

interface AccountScanArgs {
  readonly account: string;
  readonly deep?: boolean;
}

export const doAccountScanCommand = (deps: CommandContext<unknown>['deps']): CommandModule<GlobalArgs, AccountScanArgs> =>
  defineCommand<AccountScanArgs>(deps, {
    command: 'doAccountScan <account>',
    describe: 'Scan one account fully (the Safety Scan), e.g. after an emptied folder',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true, describe: 'the account address' })
        .option('deep', { type: 'boolean', default: false, describe: 'accepted for zxsuite compatibility: an Account Scan always reads every folder' })
        .example('$0 doAccountScan alice@example.test', '') as unknown as Argv<AccountScanArgs>,
    run: (ctx) =>
      pipe(
        requireAccountArg(ctx.args.account),
        TE.flatMap((account) => runScan(ctx, 'AccountScan', { account }, undefined, (_s, engine) => engine.accountScan(account))),
      ),
  });
