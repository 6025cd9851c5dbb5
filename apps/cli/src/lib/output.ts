import { SingleBar, Presets } from 'cli-progress';

export interface ProgressUpdate {
  readonly done: number;
  readonly total?: number;
  readonly phase?: string;
  readonly message?: string;
}

export interface ProgressSink {
  update(p: ProgressUpdate): void;
  finish(): void;
}

/**
 * Everything a command prints goes through here: results as JSON (`--json`) or as lines for
 * people, progress as a bar on a terminal or as plain lines otherwise (never on stdout in JSON
 * mode, so scripts can parse stdout).
 */
export interface Output {
  readonly json: boolean;
  result(value: unknown, human: () => ReadonlyArray<string>): void;
  /** Whether `result` printed already (then a JSON error goes to stderr, keeping stdout one document). */
  readonly printedResult: () => boolean;
  info(line: string): void;
  progress(label: string): ProgressSink;
}

export interface OutputStreams {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const PLAIN_PROGRESS_INTERVAL_MS = 2000;

export const makeOutput = (json: boolean, streams: OutputStreams = { stdout: process.stdout, stderr: process.stderr }): Output => {
  let printed = false;
  return {
    json,
    printedResult: () => printed,
    result: (value, human) => {
      printed = true;
      if (json) streams.stdout.write(JSON.stringify(value, null, 2) + '\n');
      else for (const line of human()) streams.stdout.write(line + '\n');
    },
    info: (line) => {
      streams.stderr.write(line + '\n');
    },
    progress: (label) => (streams.stderr.isTTY && !json ? barProgress(label, streams.stderr) : plainProgress(label, streams.stderr)),
  };
};

const barProgress = (label: string, stream: NodeJS.WritableStream): ProgressSink => {
  const bar = new SingleBar(
    { format: `${label} [{bar}] {value}/{total} {phase}`, stream: stream as NodeJS.WritableStream & { isTTY: boolean }, hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update: (p) => {
      const total = p.total ?? Math.max(p.done, 1);
      if (!started) {
        bar.start(total, p.done, { phase: p.phase ?? '' });
        started = true;
      }
      bar.setTotal(total);
      bar.update(p.done, { phase: p.message ?? p.phase ?? '' });
    },
    finish: () => {
      if (started) bar.stop();
    },
  };
};

const plainProgress = (label: string, stream: NodeJS.WritableStream): ProgressSink => {
  let last = 0;
  let lastLine = '';
  const line = (p: ProgressUpdate) =>
    `${label}: ${p.done}${p.total === undefined ? '' : `/${p.total}`}${p.phase ? ` ${p.phase}` : ''}${p.message ? ` ${p.message}` : ''}`;
  let pending: ProgressUpdate | undefined;
  return {
    update: (p) => {
      pending = p;
      const now = Date.now();
      if (now - last >= PLAIN_PROGRESS_INTERVAL_MS) {
        last = now;
        lastLine = line(p);
        stream.write(lastLine + '\n');
        pending = undefined;
      }
    },
    finish: () => {
      if (pending && line(pending) !== lastLine) stream.write(line(pending) + '\n');
    },
  };
};
