/** What `/usr/bin/time -v -o FILE` recorded about one process. */
export interface GnuTime {
  /** Wall clock, seconds. */
  readonly wall: number;
  /** User + system CPU of the process and the children it waited for, seconds. */
  readonly cpu: number;
  readonly rssMB: number;
  readonly code: number;
}

const elapsed = (s: string): number => s.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);

/** Parses GNU time's `-v` report; throws, quoting it, when a field is missing. */
export const parseGnuTime = (text: string): GnuTime => {
  const field = (name: string): string => {
    const m = new RegExp(`^\\s*${name.replace(/[()]/g, '\\$&')}: (.*)$`, 'm').exec(text);
    if (m?.[1] === undefined) throw new Error(`GNU time output without "${name}":\n${text}`);
    return m[1].trim();
  };
  return {
    wall: elapsed(field('Elapsed (wall clock) time (h:mm:ss or m:ss)')),
    cpu: Number(field('User time (seconds)')) + Number(field('System time (seconds)')),
    rssMB: Number(field('Maximum resident set size (kbytes)')) / 1024,
    code: Number(field('Exit status')),
  };
};
