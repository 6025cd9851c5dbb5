import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs, { type Argv, type CommandModule } from 'yargs';
import { EXIT_STATUS_HELP } from './lib/exit-codes';
import type { CliDeps } from './lib/command';
import type { GlobalArgs } from '@zxbackup/runtime';
import { configCommand } from './commands/config.command';
import { doStopOperationCommand, getAllOperationsCommand, monitorCommand } from './commands/operations.command';
import { commandsFromModules } from './commands/registry';

/** This CLI's version, from its package.json (beside `src/` and `dist/` alike). */
const cliVersion = (): string => {
  try {
    const parsed = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof parsed.version === 'string' ? parsed.version : 'unknown';
  } catch {
    return 'unknown';
  }
};

/**
 * The `zxbackup` command line: names and positionals follow `zxsuite backup`, so a Zextras
 * administrator feels at home. Composition root only: commands wire packages together.
 */
export const buildCli = (argv: ReadonlyArray<string>, deps: CliDeps): Argv<GlobalArgs> => {
  let cli = yargs([...argv])
    .scriptName('zxbackup')
    .usage('zxbackup [--backup-path P] [--json] <command>\n\nItem-level, point-in-time backup of a mail server.')
    .option('backup-path', {
      type: 'string',
      describe: 'the backup path (default: $ZXBACKUP_PATH, else /var/lib/zxbackup/backup)',
      global: true,
    })
    .option('json', { type: 'boolean', default: false, describe: 'print results as JSON for scripts', global: true })
    .command(configCommand(deps))
    .command(getAllOperationsCommand(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>)
    .command(monitorCommand(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>)
    .command(doStopOperationCommand(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>);
  for (const command of commandsFromModules(deps)) cli = cli.command(command);
  return cli
    .demandCommand(1, 'name a command; see zxbackup --help')
    .strict()
    .recommendCommands()
    .epilogue(`Environment: ZXBACKUP_PATH (backup path), ZXBACKUP_NOW (ISO-8601: pins the clock for tests and drills), ZXBACKUP_IO_THREADS (1-16: the local volume's I/O threads, default one per core up to 2).\n\n${EXIT_STATUS_HELP}`)
    .example('$0 config set ZxBackup_Source maildir:/var/vmail', 'choose what to back up')
    .example('$0 doSmartScan start', 'first run: initialize the backup path and copy everything')
    .example('$0 doRestoreOnNewAccount alice@example.test alice.restored@example.test "20/11/2026 10:00:00"', 'restore an account as it was')
    .help()
    .alias('help', 'h')
    .version(cliVersion())
    .exitProcess(false)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((message, error, y) => {
      if (error) throw error;
      deps.streams.stderr.write(`zxbackup: ${message}\n\n`);
      deps.streams.stderr.write(`Run "zxbackup ${commandPath(argv)} --help" for usage.\n`);
      void y;
      deps.setExitCode(2);
    }) as unknown as Argv<GlobalArgs>;
};

const commandPath = (argv: ReadonlyArray<string>): string => argv.filter((a) => !a.startsWith('-')).slice(0, 1).join(' ');

/** `ZXBACKUP_NOW` pins the clock that retention, purge, restore keywords and the scheduler read. */
export const clockFromEnv = (env: NodeJS.ProcessEnv): (() => number) => {
  const pinned = env['ZXBACKUP_NOW'];
  if (pinned === undefined || pinned === '') return () => Date.now();
  const ms = Date.parse(pinned);
  if (Number.isNaN(ms)) throw new Error(`ZXBACKUP_NOW="${pinned}" is not an ISO-8601 date`);
  return () => ms;
};

export const runCli = async (argv: ReadonlyArray<string>, deps: CliDeps): Promise<void> => {
  await buildCli(argv, deps).parseAsync();
};
