import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import type { CommandModule } from 'yargs';
import type { AppError } from '@zxbackup/runtime';
import { EXIT_CODES } from './exit-codes';
import { makeOutput, type Output, type OutputStreams } from './output';
import type { GlobalArgs } from '@zxbackup/runtime';

/** What every command gets from the composition root: the streams, the environment and a clock. */
export interface CliDeps {
  readonly streams: OutputStreams;
  readonly env: NodeJS.ProcessEnv;
  /** `ZXBACKUP_NOW` (ISO-8601) pins it for tests and drills. */
  readonly now: () => number;
  /** Set by the handler: the process exit code. */
  setExitCode(code: number): void;
}

export interface CommandContext<A> {
  readonly args: A & GlobalArgs;
  readonly out: Output;
  readonly deps: CliDeps;
}

/**
 * Builds a yargs command whose handler is a TaskEither: a Left is printed as one line
 * (`zxbackup: <message>`, or `{"error":...}` with --json) and becomes the tag's exit code.
 */
export const defineCommand = <A>(
  deps: CliDeps,
  spec: Omit<CommandModule<GlobalArgs, A>, 'handler'> & { readonly run: (ctx: CommandContext<A>) => TE.TaskEither<AppError, void> },
): CommandModule<GlobalArgs, A> => ({
  command: spec.command,
  describe: spec.describe,
  builder: spec.builder,
  handler: async (args) => {
    const out = makeOutput(args.json === true, deps.streams);
    const outcome = await spec.run({ args: args as unknown as A & GlobalArgs, out, deps })();
    if (E.isLeft(outcome)) reportError(outcome.left, out, deps);
  },
});

export const reportError = (error: AppError, out: Output, deps: CliDeps): void => {
  if (out.json) {
    const target = out.printedResult() ? deps.streams.stderr : deps.streams.stdout;
    target.write(JSON.stringify({ error: { kind: error._tag, message: error.message } }) + '\n');
  }
  else deps.streams.stderr.write(`zxbackup: ${error.message}\n`);
  deps.setExitCode(EXIT_CODES[error._tag]);
};
