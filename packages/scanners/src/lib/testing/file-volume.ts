import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { putFileThroughStream, VolumeStreamError, type BlobVolume, type Digest, type VolumeError } from '@zxbackup/volume-contract';

/*
 * A small durable blob volume on a directory, for the kill specs only (a scan in a child
 * process that is SIGKILLed must find its blobs after a restart). Each put is written to a
 * temporary name, fsynced and renamed. The real one is @zxbackup/volumes-local, which this
 * package must not import.
 */
export const makeFileVolume = (dir: string, options: { putDelayMs?: number } = {}): BlobVolume => {
  const pathOf = (d: string): string => join(dir, d.slice(-2), d);
  const io = (op: string) => (cause: unknown): VolumeError => ({ _tag: 'VolumeIOError', op, cause });
  const put: BlobVolume['put'] = (content) =>
    TE.tryCatch(async () => {
      if (options.putDelayMs !== undefined) await new Promise((r) => setTimeout(r, options.putDelayMs));
      await fsp.mkdir(join(dir, 'tmp'), { recursive: true });
      const tmp = join(dir, 'tmp', randomBytes(8).toString('hex'));
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        content,
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            hash.update(chunk);
            size += chunk.length;
            cb(null, chunk);
          },
        }),
        createWriteStream(tmp),
      );
      const digest = hash.digest('hex') as Digest;
      const final = pathOf(digest);
      const exists = await fsp.stat(final).then(
        () => true,
        () => false,
      );
      if (exists) {
        await fsp.unlink(tmp);
        return { digest, size, stored: false };
      }
      const fh = await fsp.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await fsp.mkdir(join(dir, digest.slice(-2)), { recursive: true });
      await fsp.rename(tmp, final);
      return { digest, size, stored: true };
    }, io('put'));
  return {
    name: `test-file:${dir}`,
    supports: { durable: true, remote: false },
    put,
    putFile: putFileThroughStream(put),
    has: (d) => TE.tryCatch(() => fsp.stat(pathOf(d)).then(() => true, () => false), io('has')),
    get: (d) => async () => {
      const st = await fsp.stat(pathOf(d)).catch(() => undefined);
      if (st === undefined) return E.left({ _tag: 'BlobNotFound', op: 'get', key: d });
      const hash = createHash('sha256');
      const verify = new Transform({
        transform(chunk: Buffer, _e, cb) {
          hash.update(chunk);
          cb(null, chunk);
        },
        flush(cb) {
          cb(hash.digest('hex') === d ? null : new VolumeStreamError({ _tag: 'BlobCorrupt', op: 'get', key: d, cause: 'digest mismatch' }));
        },
      });
      return E.right(createReadStream(pathOf(d)).pipe(verify) as Readable);
    },
    stat: (d) => TE.tryCatch(async () => ({ digest: d, size: (await fsp.stat(pathOf(d))).size }), io('stat')),
    delete: (d) => TE.tryCatch(() => fsp.unlink(pathOf(d)), io('delete')),
    list: () => TE.left(io('list')('not implemented in the test volume')),
    flush: () => TE.right(undefined),
    close: () => TE.right(undefined),
  };
};
