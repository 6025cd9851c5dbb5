import { clockFromEnv, runCli } from './cli';

const main = async (): Promise<void> => {
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
