import type { CommandModule } from 'yargs';
import type { CliDeps } from '../lib/command';
import type { GlobalArgs } from '../lib/session';

/** Commands that wire the scanners, restore, retention and volumes (added as those land). */
export const commandsFromModules = (_deps: CliDeps): ReadonlyArray<CommandModule<GlobalArgs, GlobalArgs>> => [];
