import * as E from 'fp-ts/Either';

/** An instant given on the command line: an epoch-ms number, or `first` / `last`. */
export type InstantArg = number | 'first' | 'last';

const ZXSUITE_FORMAT = /^(\d{2})\/(\d{2})\/(\d{4})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$/;

/**
 * Parses the date forms zxsuite administrators use: ISO-8601 (`2026-11-20T10:00:00Z`,
 * `2026-11-20`), epoch milliseconds (`1763632800000`), zxsuite's `dd/MM/yyyy HH:mm:ss`
 * (local time), and the keywords `first` / `last` where `allowKeywords` says so.
 */
export const parseInstant = (raw: string, allowKeywords: ReadonlyArray<'first' | 'last'> = []): E.Either<string, InstantArg> => {
  const s = raw.trim();
  const keyword = s.toLowerCase();
  if (keyword === 'first' || keyword === 'last') {
    return allowKeywords.includes(keyword)
      ? E.right(keyword)
      : E.left(`"${raw}" is not accepted here: give a date (ISO-8601, epoch ms or "dd/MM/yyyy HH:mm:ss")`);
  }
  if (/^\d{10,}$/.test(s)) return E.right(Number(s));
  const zx = ZXSUITE_FORMAT.exec(s);
  if (zx) {
    const [, dd, mm, yyyy, hh = '00', mi = '00', ss = '00'] = zx;
    const d = new Date(Number(yyyy), Number(mm) - 1, Number(dd), Number(hh), Number(mi), Number(ss));
    const valid = d.getDate() === Number(dd) && d.getMonth() === Number(mm) - 1 && Number(hh) < 24 && Number(mi) < 60 && Number(ss) < 60;
    return valid ? E.right(d.getTime()) : E.left(`"${raw}" is not a valid date in the form dd/MM/yyyy HH:mm:ss`);
  }
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s)) {
    const ms = Date.parse(s);
    if (!Number.isNaN(ms)) return E.right(ms);
  }
  return E.left(
    `"${raw}" is not a date: use ISO-8601 (2026-11-20T10:00:00Z), epoch milliseconds, or "dd/MM/yyyy HH:mm:ss"` +
      (allowKeywords.length > 0 ? `, or ${allowKeywords.join(' / ')}` : ''),
  );
};

/** Resolves `first` / `last` against a clock: `first` is the epoch, `last` is now. */
export const resolveInstant = (arg: InstantArg, now: number): number =>
  arg === 'first' ? 0 : arg === 'last' ? now : arg;

export const formatInstant = (ms: number | null | undefined): string =>
  ms === null || ms === undefined ? '-' : new Date(ms).toISOString();
