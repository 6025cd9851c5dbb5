/** @zxbackup/cli — the `zxbackup` command line (composition root; no domain logic here). */
export { buildCli, runCli, clockFromEnv } from './cli';
export type { CliDeps } from './lib/command';
export { parseInstant } from './lib/dates';
