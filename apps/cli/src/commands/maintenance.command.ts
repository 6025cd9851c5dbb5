import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import { INFINITE_RETENTION_NOTE, formatPurgePlan } from '@zxbackup/retention';
import {
  appError,
  requireAccountArg,
  resolveBackupRoot,
  resolveSource,
  runCoherencyCheck,
  runPurge,
  withWriter,
  type AppError,
  type GlobalArgs,
  type SourceUri,
} from '@zxbackup/runtime';
import { defineCommand, type CliDeps } from '../lib/command';

interface PurgeArgs {
  readonly dryRun?: boolean;
}

export const doPurgeCommand = (deps: CliDeps): CommandModule<GlobalArgs, PurgeArgs> =>
  defineCommand<PurgeArgs>(deps, {
    command: 'doPurge',
    describe: 'Remove deleted items and accounts older than the retention (ZxBackup_DataRetentionDays / ZxBackup_AccountRetentionDays)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .option('dry-run', { type: 'boolean', default: false, describe: 'print the plan (what goes, what stays, why) and change nothing' })
        .example('$0 doPurge --dry-run', 'see what a purge would remove')
        .example('$0 doPurge', '')
        .epilogue(
          'Blobs are deduplicated: one is deleted only when no remaining history references it and it is\n' +
            'older than a grace period (a scan running meanwhile never loses a blob). With both retentions\n' +
            'at 0 (keep forever) the purge exits at once. ZXBACKUP_NOW (ISO-8601) sets the clock for drills.',
        ) as unknown as Argv<PurgeArgs>,
    run: ({ args, out, deps: d }) =>
      withWriter(resolveBackupRoot(args), { initialize: false }, (session) => {
        const sink = out.progress('Purge');
        return pipe(
          runPurge(session, {
            now: d.now(),
            dryRun: args.dryRun === true,
            onProgress: sink.update,
            onFinish: sink.finish,
            onStart: (id) => out.info(`Purge started: operation ${id}`),
          }),
          TE.map((outcome) => {
            switch (outcome.kind) {
              case 'infinite':
                out.result({ purged: false, reason: INFINITE_RETENTION_NOTE }, () => [INFINITE_RETENTION_NOTE]);
                return;
              case 'planned':
                out.result({ dryRun: true, plan: outcome.plan }, () => formatPurgePlan(outcome.plan));
                return;
              case 'executed': {
                const s = outcome.summary;
                out.result({ operation: outcome.id, ...s }, () => [
                  `Purge ${s.stopped ? 'stopped (run it again to finish)' : 'finished'} (operation ${outcome.id})`,
                  `  items removed ${s.itemsRemoved} (kept, changed since the plan: ${s.itemsSkipped}); accounts removed ${s.accountsRemoved} with ${s.historiesOfAccountsRemoved} items`,
                  `  blobs deleted ${s.blobsDeleted} (${(s.bytesFreed / 1048576).toFixed(1)} MiB freed); kept within grace ${s.blobsWithinGrace}, of unknown age ${s.blobsUnknownAge}`,
                ]);
                return;
              }
            }
          }),
        );
      }),
  });

interface CoherencyArgs {
  readonly fix?: boolean;
  readonly deep?: boolean;
  readonly accounts?: string;
}

export const doCoherencyCheckCommand = (deps: CliDeps): CommandModule<GlobalArgs, CoherencyArgs> =>
  defineCommand<CoherencyArgs>(deps, {
    command: 'doCoherencyCheck',
    describe: 'Check every history and blob of the backup; --fix repairs what can be repaired without losing data',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .option('deep', { type: 'boolean', default: false, describe: 'also read every blob and verify its digest' })
        .option('fix', { type: 'boolean', default: false, describe: 'refetch bad blobs from the source, quarantine orphans, rebuild indexes' })
        .option('accounts', { type: 'string', describe: 'comma-separated accounts to check (default: all)' })
        .example('$0 doCoherencyCheck --deep', 'verify every blob')
        .example('$0 doCoherencyCheck --fix --accounts alice@example.test,bob@example.test', '')
        .epilogue('Exits 6 when problems were found (also after --fix, listing what was mended and what is lost).') as unknown as Argv<CoherencyArgs>,
    run: ({ args, out }) =>
      pipe(
        TE.Do,
        TE.bind('accounts', () =>
          args.accounts === undefined
            ? TE.right(undefined)
            : TE.traverseSeqArray(requireAccountArg)(args.accounts.split(',').map((a) => a.trim()).filter((a) => a.length > 0)),
        ),
        TE.flatMap(({ accounts }) =>
          withWriter(resolveBackupRoot(args), { initialize: false }, (session) => {
            const sink = out.progress('CoherencyCheck');
            return pipe(
              // Without a configured source, --fix still quarantines and reindexes; lost blobs are reported.
              args.fix
                ? pipe(
                    resolveSource(session.path),
                    TE.map((s): SourceUri | undefined => s),
                    TE.orElse(() => TE.right<AppError, SourceUri | undefined>(undefined)),
                  )
                : TE.right<AppError, SourceUri | undefined>(undefined),
              TE.flatMap((source) =>
                runCoherencyCheck(session, {
                  deep: args.deep === true,
                  fix: args.fix === true,
                  ...(accounts ? { accounts } : {}),
                  ...(source ? { source } : {}),
                  onProgress: sink.update,
                  onFinish: sink.finish,
                  onStart: (id) => out.info(`CoherencyCheck started: operation ${id}`),
                }),
              ),
            );
          }),
        ),
        TE.flatMap(({ id, report, fix }) => {
          out.result({ operation: id, ...report, ...(fix ? { fix } : {}) }, () => [
            ...report.problems.map(
              (p) => `${p.kind}: ${p.account ?? '-'} ${p.itemId ?? '-'}${p.digest ? ` blob ${p.digest}` : ''}: ${p.detail}`,
            ),
            `checked ${report.accounts} accounts, ${report.histories} histories, ${report.transactions} transactions, ${report.blobsReferenced} blobs referenced${
              report.deep ? `, ${report.blobsRead} read (${(report.bytesRead / 1048576).toFixed(1)} MiB)` : ''
            }: ${report.problems.length} problem(s)`,
            ...(fix
              ? [
                  `fixed: ${fix.mended.length} blob(s) fetched again, ${fix.quarantined.length} orphan(s) quarantined, ${fix.reindexed} index entr(ies) rebuilt`,
                  ...fix.lost.map((l) => `LOST: ${l.account} ${l.itemId} blob ${l.digest}: ${l.why}`),
                  ...(fix.leftAsIs.length > 0 ? [`left as is (needs a person): ${fix.leftAsIs.length}`] : []),
                ]
              : []),
          ]);
          return report.problems.length > 0 ? TE.left(appError('Problems', `${report.problems.length} problem(s) found${fix ? ' (see what was fixed above)' : ': run with --fix to repair what can be repaired'}`)) : TE.right(undefined);
        }),
      ),
  });
