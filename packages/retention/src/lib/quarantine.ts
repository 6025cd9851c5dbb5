import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { VolumeStreamError, type BlobVolume, type Digest } from '@zxbackup/volume-contract';
import { causeText, volumeFailed, type RetentionError } from './errors';
import { run } from './steps';

/*
 * Quarantine: where a coherency fix puts a blob it takes off the main volume. Nothing is
 * deleted from the volume before its bytes are safely elsewhere.
 */

export type QuarantineReason = 'orphan' | 'corrupt';

export interface Quarantine {
  /** Copy the blob's stored bytes out of the main volume, make the copy durable, then delete it from the volume. */
  moveToQuarantine(digest: Digest, reason: QuarantineReason): TE.TaskEither<RetentionError, void>;
}

export interface DirQuarantineOptions {
  /** Directory for the copies (`<dir>/<digest>` and `<dir>/<digest>.json`); created if needed. */
  readonly dir: string;
  readonly volume: BlobVolume;
  readonly now?: () => number;
}

const failed = (digest: Digest, message: string, cause?: unknown): RetentionError => ({
  _tag: 'QuarantineFailed',
  op: 'moveToQuarantine',
  key: digest,
  message: `${digest}: ${message}${cause === undefined ? '' : `: ${causeText(cause)}`}`,
  ...(cause === undefined ? {} : { cause }),
});

/**
 * A quarantine directory. An orphan's copy must hash to its digest; a corrupt blob's copy holds
 * whatever bytes the volume streamed before it reported the mismatch, and must be as long as the
 * volume says the blob is. Copies are written to a temporary name, fsynced and renamed.
 */
export const makeDirQuarantine = (options: DirQuarantineOptions): Quarantine => ({
  moveToQuarantine: (digest, reason) => async () => {
    const { dir, volume } = options;
    const stat = await run(volume.stat(digest));
    if (E.isLeft(stat)) {
      if (stat.left._tag === 'BlobNotFound') return E.right(undefined); // nothing left to move
      if (stat.left._tag === 'BlobCorrupt') return E.left(failed(digest, 'the volume cannot read it, so it cannot be copied; it stays on the volume', stat.left.cause));
      return E.left(volumeFailed('stat', digest)(stat.left));
    }
    const opened = await run(volume.get(digest));
    if (E.isLeft(opened) && !(reason === 'corrupt' && opened.left._tag === 'BlobCorrupt')) return E.left(volumeFailed('get', digest)(opened.left));
    const target = path.join(dir, digest);
    const temp = `${target}.tmp-${process.pid}`;
    let bytes = 0;
    const hash = createHash('sha256');
    try {
      await fs.mkdir(dir, { recursive: true });
      const file = await fs.open(temp, 'w');
      try {
        if (E.isRight(opened)) {
          try {
            for await (const chunk of opened.right) {
              const b = chunk as Buffer;
              hash.update(b);
              bytes += b.length;
              await file.write(b);
            }
          } catch (e) {
            // A corrupt blob's stream fails at its end, once every byte went through.
            if (!(reason === 'corrupt' && e instanceof VolumeStreamError && e.volumeError._tag === 'BlobCorrupt')) throw e;
          }
        }
        await file.sync();
      } finally {
        await file.close();
      }
      const actual = hash.digest('hex');
      if (reason === 'orphan' && actual !== digest) throw new Error(`the copy hashes to ${actual}`);
      // An orphan is intact and must be copied whole. A corrupt blob is copied as far as the volume
      // can still read it (a compressed one may fail at its first bytes): its content is wrong by
      // definition, and the note records how much of it was saved.
      const expectedBytes = stat.right.size;
      if (reason === 'orphan' && bytes !== expectedBytes) throw new Error(`copied ${bytes} bytes, the volume holds ${expectedBytes}`);
      await fs.writeFile(
        `${temp}.json`,
        JSON.stringify({ format: 1, digest, reason, bytes, complete: bytes === expectedBytes, sha256: actual, volume: volume.name, quarantinedAt: (options.now ?? Date.now)() }),
      );
      await fs.rename(temp, target);
      await fs.rename(`${temp}.json`, `${target}.json`);
      const d = await fs.open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (e) {
      await fs.rm(temp, { force: true });
      await fs.rm(`${temp}.json`, { force: true });
      return E.left(failed(digest, 'copy to quarantine failed, the blob stays on the volume', e));
    }
    const deleted = await run(volume.delete(digest));
    if (E.isLeft(deleted) && deleted.left._tag !== 'BlobNotFound') return E.left(volumeFailed('delete', digest)(deleted.left));
    return E.right(undefined);
  },
});
