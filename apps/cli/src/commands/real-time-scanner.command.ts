import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import type { Logger } from '@zxbackup/scanners';
import {
  requireEnabledRealTimeScanner,
  resolveBackupRoot,
  resolveSource,
  runScan,
  smartScanRequired,
  startRealTime,
  withWriter,
  type AppError,
  type GlobalArgs,
} from '@zxbackup/runtime';
import { defineCommand, type CliDeps } from '../lib/command';

interface RealTimeArgs {
  readonly action: string;
  readonly statsEvery?: number;
}

const waitForSignal = (): Promise<NodeJS.Signals> =>
  new Promise((resolve) => {
    // The watches do not keep the process alive (they are not persistent): this timer does,
    // until a signal arrives.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const onSignal = (signal: NodeJS.Signals) => {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

export const realTimeScannerCommand = (deps: CliDeps): CommandModule<GlobalArgs, RealTimeArgs> =>
  defineCommand<RealTimeArgs>(deps, {
    command: 'realTimeScanner <action>',
    describe: 'Run the Real Time Scanner in the foreground until stopped (Ctrl-C / SIGTERM): every change recorded within a second',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('action', { choices: ['run'], demandOption: true })
        .option('stats-every', { type: 'number', default: 60, describe: 'print counters and latency every N seconds (0: never)' })
        .example('$0 realTimeScanner run', 'watch the configured source and record every change')
        .epilogue(
          'When the scanner was (re)enabled with `config set ZxBackup_RealTimeScanner TRUE`, a SmartScan is\n' +
            'required first: this command says so and runs it before watching. When the watcher cannot tell\n' +
            'what happened (an emptied folder, lost events), it runs an Account Scan of that account.',
        ) as unknown as Argv<RealTimeArgs>,
    run: ({ args, out, deps: d }) => {
      const log: Logger = {
        info: (m) => out.info(m),
        warn: (m) => out.info(`warning: ${m}`),
        error: (m) => out.info(`error: ${m}`),
      };
      return withWriter(resolveBackupRoot(args), { initialize: false }, (session) =>
        pipe(
          requireEnabledRealTimeScanner(session),
          TE.flatMap(() => resolveSource(session.path)),
          TE.tap((source) =>
            pipe(
              smartScanRequired(session),
              TE.flatMap((required) => {
                if (!required) return TE.right(undefined);
                out.info('The Real Time Scanner was (re)enabled: a SmartScan is required first; running it now.');
                return pipe(
                  runScan(session, { kind: 'SmartScan', source, clock: d.now, log }),
                  TE.map(() => undefined),
                );
              }),
            ),
          ),
          TE.flatMap((source) => startRealTime(session, { source, clock: () => Date.now(), log })),
          TE.flatMap((running): TE.TaskEither<AppError, void> => async () => {
            out.info(`Real Time Scanner watching ${resolveBackupRoot(args)}; stop with Ctrl-C or SIGTERM`);
            const every = (args.statsEvery ?? 60) * 1000;
            const timer =
              every > 0
                ? setInterval(() => {
                    const s = running.scanner.stats();
                    out.info(`changes ${s.received}, batches ${s.batches}, recorded ${s.recorded}, account scans ${s.accountScans}, latency p50 ${s.latency.p50} ms p99 ${s.latency.p99} ms`);
                  }, every)
                : undefined;
            const signal = await waitForSignal();
            if (timer) clearInterval(timer);
            out.info(`${signal}: applying what is pending and stopping`);
            await running.stop();
            const s = running.scanner.stats();
            out.result(s, () => [`Real Time Scanner stopped: ${s.received} changes, ${s.recorded} transactions recorded`]);
            return { _tag: 'Right', right: undefined } as const;
          }),
        ),
      );
    },
  });
