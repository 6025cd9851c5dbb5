import type { AppError } from '@zxbackup/runtime';

/** Exit codes per error tag; documented in every command's --help. */
export const EXIT_CODES: Record<AppError['_tag'], number> = {
  Failed: 1,
  Usage: 2,
  BackupPath: 3,
  Busy: 4,
  NotFound: 5,
  Problems: 6,
};

export const EXIT_STATUS_HELP = [
  'EXIT STATUS',
  '  0  success',
  '  1  the operation failed (the message says why)',
  '  2  bad input: unknown option, bad date, bad account name...',
  '  3  the backup path is missing, not initialized, foreign or unusable',
  '  4  another process holds the backup path (a scan, the service)',
  '  5  the account, item or operation does not exist',
  '  6  a check found problems (doCoherencyCheck)',
].join('\n');
