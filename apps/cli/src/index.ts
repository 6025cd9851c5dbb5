/** @zxbackup/cli — the `zxbackup` command line (composition root; no domain logic here). */
export { buildCli, runCli, clockFromEnv } from './cli';
export type { CliDeps } from './lib/command';
export { EXIT_CODES, EXIT_STATUS_HELP } from './lib/exit-codes';
