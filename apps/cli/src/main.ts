import { clockFromEnv, runCli } from './cli';

// A reader that stops early (`zxbackup getAvailableAccounts | head -1`) closes the pipe: what is
// left to print has nowhere to go, which is no failure of the command. Node would report it as an
// unhandled 'error' event with a stack trace and exit 1; the command ends quietly instead, with
// the exit code it has so far (results are printed once the work is done, and every command's
// work is safe to stop anyway).
const endQuietlyOnClosedPipe = (stream: NodeJS.WriteStream): void => {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit();
  });
};

const main = async (): Promise<void> => {
  endQuietlyOnClosedPipe(process.stdout);
  endQuietlyOnClosedPipe(process.stderr);
  let now: () => number;
  try {
    now = clockFromEnv(process.env);
  } catch (e) {
    process.stderr.write(`zxbackup: ${(e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  await runCli(process.argv.slice(2), {
    streams: { stdout: process.stdout, stderr: process.stderr },
    env: process.env,
    now,
    setExitCode: (code) => {
      process.exitCode = code;
    },
  });
};

main().catch((e: unknown) => {
  // Only programmer errors reach here: every expected failure is a AppError with its exit code.
  process.stderr.write(`zxbackup: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 70;
});
