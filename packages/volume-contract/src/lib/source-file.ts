import { constants, openSync, promises as fsp } from 'node:fs';

const O_NOATIME = constants.O_NOATIME ?? 0;
const NOATIME_FLAGS = constants.O_RDONLY | O_NOATIME;
let noAtime = O_NOATIME !== 0;

/** An EPERM for O_NOATIME (not the file's owner, no CAP_FOWNER): plain opens from now on. Other errors are the caller's. */
const refusedNoAtime = (error: unknown): boolean => {
  if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  noAtime = false;
  return true;
};

/**
 * Opens a source file (a mail being backed up) for reading without touching its access time:
 * relatime still writes it on the first read after a change, which would dirty the inode of
 * every new message (write I/O on the mail store) and tell mbox readers a mailbox was read. Only
 * the owner (or CAP_FOWNER) may ask for it: after one EPERM, plain opens.
 */
export const openSourceSync = (file: string): number => {
  if (noAtime) {
    try {
      return openSync(file, NOATIME_FLAGS);
    } catch (error) {
      if (!refusedNoAtime(error)) throw error;
    }
  }
  return openSync(file, 'r');
};

/** `openSourceSync` for a stream: a file handle, opened on libuv's pool. */
export const openSource = async (file: string): Promise<fsp.FileHandle> => {
  if (noAtime) {
    try {
      return await fsp.open(file, NOATIME_FLAGS);
    } catch (error) {
      if (!refusedNoAtime(error)) throw error;
    }
  }
  return fsp.open(file, 'r');
};
