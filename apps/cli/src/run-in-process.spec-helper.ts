import { PassThrough } from 'node:stream';
import { runCli } from './cli';

export interface InProcessRun {
  readonly out: string;
  readonly err: string;
  readonly code: number;
  /** stdout parsed as one JSON document (fails with the text when it is not). */
  json(): Record<string, unknown>;
}

/** Runs the CLI in-process with captured streams and a given clock; returns what it printed and its exit code. */
export const runInProcess = async (argv: ReadonlyArray<string>, now: () => number): Promise<InProcessRun> => {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  let code = 0;
  // yargs prints --help and its own usage errors through console.
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void (out += a.join(' ') + '\n'));
  const error = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += a.join(' ') + '\n'));
  try {
    await runCli(argv, { streams: { stdout, stderr }, env: {}, now, setExitCode: (c) => (code = c) });
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
  const json = (): Record<string, unknown> => {
    try {
      return JSON.parse(out) as Record<string, unknown>;
    } catch {
      throw new Error(`not one JSON document: ${out}`);
    }
  };
  return { out, err, code, json };
};
