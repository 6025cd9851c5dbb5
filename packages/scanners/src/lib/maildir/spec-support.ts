import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';

/* Helpers for the maildir specs (not part of the public surface). */

export const expectRight = <A>(e: E.Either<unknown, A>): A => {
  if (E.isLeft(e)) throw new Error(`expected Right, got Left ${JSON.stringify(e.left)}`);
  return e.right;
};

export const expectLeft = <L>(e: E.Either<L, unknown>): L => {
  if (E.isRight(e)) throw new Error(`expected Left, got Right ${JSON.stringify(e.right)}`);
  return e.left;
};

export const run = async <A>(te: TE.TaskEither<unknown, A>): Promise<A> => expectRight(await te());
export const runLeft = async <L>(te: TE.TaskEither<L, unknown>): Promise<L> => expectLeft(await te());

export const makeTempDirs = (): { readonly make: () => string; readonly cleanup: () => void } => {
  const made: string[] = [];
  return {
    make: () => {
      const dir = mkdtempSync(join(tmpdir(), 'zxb-maildir-'));
      made.push(dir);
      return dir;
    },
    cleanup: () => {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
};

/** Create a Maildir folder directory (cur/new/tmp, plus `maildirfolder` for a subfolder). */
export const mkFolder = (maildir: string, key: string): string => {
  const dir = key === '' ? maildir : join(maildir, key);
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  if (key !== '') writeFileSync(join(dir, 'maildirfolder'), '');
  return dir;
};

/** Write a message file with a given mtime (ms). */
export const putMessage = (path: string, content: string | Buffer, mtimeMs: number): void => {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  utimesSync(path, mtimeMs / 1000, mtimeMs / 1000);
};

/** Set a directory's mtime (an "old" folder that a cursor may skip). */
export const age = (path: string, mtimeMs: number): void => utimesSync(path, mtimeMs / 1000, mtimeMs / 1000);

export const readAll = async (stream: NodeJS.ReadableStream): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks);
};

export const streamOf = (data: Buffer): Readable => Readable.from([data.subarray(0, 7), data.subarray(7)]);
