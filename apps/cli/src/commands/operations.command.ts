import * as fs from 'node:fs';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import type { OperationRecord } from '@zxbackup/item-store';
import { appError, fromPackageError } from '@zxbackup/runtime';
import { defineCommand, type CliDeps } from '../lib/command';
import { formatInstant } from '@zxbackup/runtime';
import { effectiveState, stopMarkerPath } from '@zxbackup/runtime';
import { openForReading, resolveBackupRoot, type GlobalArgs } from '@zxbackup/runtime';

const FOLLOW_POLL_MS = 1000;

const view = (op: OperationRecord) => ({ ...op, state: effectiveState(op) });

const describeProgress = (op: OperationRecord): string =>
  `${op.progress.done}${op.progress.total === undefined ? '' : `/${op.progress.total}`}${op.progress.phase ? ` ${op.progress.phase}` : ''}${
    op.progress.message ? ` ${op.progress.message}` : ''
  }`;

const humanLine = (op: OperationRecord): string =>
  `${op.id}  ${op.kind.padEnd(16)} ${String(effectiveState(op)).padEnd(11)} started ${formatInstant(op.startedAt)}  ${describeProgress(op)}${
    op.error ? `  error: ${op.error}` : ''
  }`;

export const getAllOperationsCommand = (deps: CliDeps): CommandModule<GlobalArgs, GlobalArgs> =>
  defineCommand<GlobalArgs>(deps, {
    command: 'getAllOperations',
    describe: 'List running and past operations (SmartScans, restores, purges...), newest first',
    builder: (y: Argv<GlobalArgs>) => y.example('$0 getAllOperations --json', ''),
    run: ({ args, out }) =>
      pipe(
        openForReading(resolveBackupRoot(args)),
        TE.flatMap((bp) => pipe(bp.operations.list(), TE.mapLeft(fromPackageError))),
        TE.map((ops) => {
          const sorted = [...ops].sort((a, b) => b.startedAt - a.startedAt);
          out.result(sorted.map(view), () => (sorted.length === 0 ? ['no operations'] : sorted.map(humanLine)));
        }),
      ),
  });

interface MonitorArgs {
  readonly uuid: string;
  readonly follow?: boolean;
}

export const monitorCommand = (deps: CliDeps): CommandModule<GlobalArgs, MonitorArgs> =>
  defineCommand<MonitorArgs>(deps, {
    command: 'monitor <uuid>',
    describe: 'Show the state and progress of one operation (from any process)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('uuid', { type: 'string', demandOption: true })
        .option('follow', { type: 'boolean', default: false, describe: 'keep watching until the operation ends' })
        .example('$0 monitor 0b5e... --follow', 'watch a running SmartScan') as unknown as Argv<MonitorArgs>,
    run: ({ args, out }) =>
      pipe(
        openForReading(resolveBackupRoot(args)),
        TE.flatMap((bp) => {
          const fetch = pipe(
            bp.operations.get(args.uuid),
            TE.mapLeft(fromPackageError),
            TE.flatMap(O.match(() => TE.left(appError('NotFound', `no operation ${args.uuid}: see zxbackup getAllOperations`)), (op) => TE.right(op))),
          );
          if (!args.follow) {
            return pipe(
              fetch,
              TE.map((op) => out.result(view(op), () => [humanLine(op)])),
            );
          }
          return async () => {
            const sink = out.progress(`operation ${args.uuid.slice(0, 8)}`);
            for (;;) {
              const current = await fetch();
              if (current._tag === 'Left') {
                sink.finish();
                return current;
              }
              const op = current.right;
              sink.update(op.progress);
              if (effectiveState(op) !== 'running' && effectiveState(op) !== 'queued') {
                sink.finish();
                out.result(view(op), () => [humanLine(op)]);
                return { _tag: 'Right', right: undefined } as const;
              }
              await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
            }
          };
        }),
      ),
  });

export const doStopOperationCommand = (deps: CliDeps): CommandModule<GlobalArgs, MonitorArgs> =>
  defineCommand<MonitorArgs>(deps, {
    command: 'doStopOperation <uuid>',
    describe: 'Ask a running operation to stop cleanly (it finishes its current batch first)',
    builder: (y: Argv<GlobalArgs>) =>
      y.positional('uuid', { type: 'string', demandOption: true }).example('$0 doStopOperation 0b5e...', '') as unknown as Argv<MonitorArgs>,
    run: ({ args, out }) =>
      pipe(
        openForReading(resolveBackupRoot(args)),
        TE.flatMap((bp) =>
          pipe(
            bp.operations.get(args.uuid),
            TE.mapLeft(fromPackageError),
            TE.flatMap(O.match(() => TE.left(appError('NotFound', `no operation ${args.uuid}: see zxbackup getAllOperations`)), (op) => TE.right(op))),
            TE.flatMap((op) =>
              effectiveState(op) === 'running'
                ? TE.tryCatch(
                    () => fs.promises.writeFile(stopMarkerPath(bp.root, op.id), String(deps.now())),
                    (e) => appError('Failed', `could not request the stop: ${(e as Error).message}`),
                  )
                : TE.left(appError('Failed', `operation ${op.id} is not running (it is ${effectiveState(op)})`)),
            ),
            TE.map(() => out.result({ id: args.uuid, stopRequested: true }, () => [`stop requested for ${args.uuid}`])),
          ),
        ),
      ),
  });
