import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { downloadArchive, encryptionErrorOf, listArchives, removeArchive, uploadArchive, type S3Error, type S3StoreConfig } from '@zxbackup/volumes-s3';
import { fromEncryptionError } from './encryption-keys';
import { appError, type AppError } from './errors';
import { STORE_ITEMS_DIR } from './volume-config';

/*
 * The non-blob files of a third-party store, beside its `items/`: `accounts/<account>/<ts>.tar.gz`
 * (metadata archives), `server/` (server.json, map files) and `backupstat`. Keys are relative to
 * the store's root (the S3 volume prefix, or the mount point). Every upload is verified by reading
 * the object back and comparing size and SHA-256.
 */

export interface RemoteObject {
  readonly key: string;
  readonly size: number;
}

export interface FileDigest {
  readonly size: number;
  readonly sha256: string;
}

export interface RemoteStore {
  /** `s3:<bucket>/<prefix>` or `local:<mount>`; never holds a credential. */
  readonly name: string;
  /** Uploads a local file to `key`, then reads it back: Left unless size and digest match. */
  putFile(key: string, file: string): TE.TaskEither<AppError, FileDigest>;
  /** Objects under `under` (a folder key ending in `/`), sorted by key. */
  list(under: string): TE.TaskEither<AppError, ReadonlyArray<RemoteObject>>;
  /** A missing key is `NotFound`. */
  get(key: string): TE.TaskEither<AppError, Readable>;
  /** Removing a missing key succeeds. */
  remove(key: string): TE.TaskEither<AppError, void>;
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export const digestOf = async (stream: Readable): Promise<FileDigest> => {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    size += b.length;
    hash.update(b);
  }
  return { size, sha256: hash.digest('hex') };
};

export const fileDigest = (file: string): Promise<FileDigest> => digestOf(createReadStream(file));

const checkKey = (key: string): TE.TaskEither<AppError, string> =>
  key === '' || key.startsWith('/') || key.split('/').some((s) => s === '..' || s === '.' || s === '')
    ? TE.left(appError('Failed', `"${key}" is not a valid key in a third-party store`))
    : TE.right(key);

const verify = (store: RemoteStore, key: string, expected: FileDigest): TE.TaskEither<AppError, FileDigest> =>
  pipe(
    store.get(key),
    TE.flatMap((body) => TE.tryCatch(() => digestOf(body), (e) => appError('Failed', `reading back ${key} from ${store.name}: ${describe(e)}`))),
    TE.flatMap((got) =>
      got.size === expected.size && got.sha256 === expected.sha256
        ? TE.right(got)
        : TE.left(appError('Failed', `${key} on ${store.name} does not match what was uploaded (size ${got.size} vs ${expected.size}); run the command again`)),
    ),
  );

const fromS3 = (store: string) => (e: S3Error): AppError => {
  const enc = encryptionErrorOf(e);
  if (enc !== undefined) {
    const tagged = fromEncryptionError(enc);
    return { ...tagged, message: `${store}: ${tagged.message}` };
  }
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
  const what = `${e.op}${e.key === undefined ? '' : ` ${e.key}`} on ${store}${cause}`;
  switch (e._tag) {
    case 'ObjectNotFound':
      return appError('NotFound', `not found: ${what}`);
    case 'VolumeUnavailable':
      return appError('Failed', `the store is unreachable: ${what}; check the URL and the network, then run the command again`);
    case 'VolumeIOError':
      return appError('Failed', `the store failed: ${what}`);
  }
};

/**
 * The S3 prefix `config.prefix` of `config.bucket` (prefix already normalized: `''` or `x/`);
 * with `config.encryption`, every object is encrypted and read back through the key.
 */
export const makeS3RemoteStore = (config: S3StoreConfig): RemoteStore => {
  const name = `s3:${config.bucket}/${config.prefix}`;
  const s3 = fromS3(name);
  const self: RemoteStore = {
    name,
    putFile: (key, file) =>
      pipe(
        checkKey(key),
        TE.flatMap(() => TE.tryCatch(() => fileDigest(file), (e) => appError('Failed', `reading ${file}: ${describe(e)}`))),
        TE.flatMap((d) =>
          pipe(
            uploadArchive(config, key, createReadStream(file), d.size),
            TE.mapLeft(s3),
            TE.flatMap(() => verify(self, key, d)),
          ),
        ),
      ),
    list: (under) => pipe(listArchives(config, under), TE.mapLeft(s3), TE.map((os) => os.map((o) => ({ key: o.key, size: o.size })))),
    get: (key) => pipe(checkKey(key), TE.flatMap((k) => pipe(downloadArchive(config, k), TE.mapLeft(s3)))),
    remove: (key) => pipe(checkKey(key), TE.flatMap((k) => pipe(removeArchive(config, k), TE.mapLeft(s3)))),
  };
  return self;
};

/**
 * A mount point (NFS/FUSE). Its `items/` folder marks it as mounted: without it nothing is
 * written, so a share that went away is never replaced by files on the bare mount point.
 */
export const makeMountRemoteStore = (mountPath: string): RemoteStore => {
  const root = path.resolve(mountPath);
  const name = `local:${root}`;
  const mounted = TE.tryCatch(
    async () => {
      const st = await fs.stat(path.join(root, STORE_ITEMS_DIR));
      if (!st.isDirectory()) throw new Error(`${path.join(root, STORE_ITEMS_DIR)} is not a directory`);
    },
    (e) => appError('Failed', `the mount ${root} is not available (${describe(e)}): mount the share, then run the command again`),
  );
  const self: RemoteStore = {
    name,
    putFile: (key, file) =>
      pipe(
        checkKey(key),
        TE.tap(() => mounted),
        TE.flatMap((k) =>
          TE.tryCatch(
            async () => {
              const dest = path.join(root, k);
              await fs.mkdir(path.dirname(dest), { recursive: true });
              const tmp = `${dest}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
              try {
                await fs.copyFile(file, tmp, fs.constants.COPYFILE_EXCL);
                const out = await fs.open(tmp, 'r+');
                await out.sync().finally(() => out.close());
              } catch (e) {
                await fs.rm(tmp, { force: true });
                throw e;
              }
              await fs.rename(tmp, dest);
              const dir = await fs.open(path.dirname(dest), 'r');
              await dir.sync().finally(() => dir.close());
              return fileDigest(file);
            },
            (e) => appError('Failed', `writing ${key} to ${name}: ${describe(e)}`),
          ),
        ),
        TE.flatMap((d) => verify(self, key, d)),
      ),
    list: (under) =>
      pipe(
        mounted,
        TE.flatMap(() =>
          TE.tryCatch(
            async () => {
              const found: RemoteObject[] = [];
              const walk = async (rel: string): Promise<void> => {
                let entries;
                try {
                  entries = await fs.readdir(path.join(root, rel), { withFileTypes: true });
                } catch (e) {
                  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
                  throw e;
                }
                for (const ent of entries) {
                  const key = rel === '' ? ent.name : `${rel}/${ent.name}`;
                  if (ent.isDirectory()) await walk(key);
                  else if (ent.isFile() && !ent.name.endsWith('.tmp')) found.push({ key, size: (await fs.stat(path.join(root, key))).size });
                }
              };
              await walk(under.replace(/\/+$/, ''));
              return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
            },
            (e) => appError('Failed', `listing ${under} on ${name}: ${describe(e)}`),
          ),
        ),
      ),
    get: (key) =>
      pipe(
        checkKey(key),
        TE.tap(() => mounted),
        TE.flatMap((k) =>
          TE.tryCatch(
            async () => {
              const fh = await fs.open(path.join(root, k), 'r');
              return fh.createReadStream() as Readable;
            },
            (e) =>
              (e as NodeJS.ErrnoException).code === 'ENOENT'
                ? appError('NotFound', `not found: ${key} on ${name}`)
                : appError('Failed', `reading ${key} from ${name}: ${describe(e)}`),
          ),
        ),
      ),
    remove: (key) =>
      pipe(
        checkKey(key),
        TE.tap(() => mounted),
        TE.flatMap((k) =>
          TE.tryCatch(
            () => fs.rm(path.join(root, k), { force: true }),
            (e) => appError('Failed', `removing ${key} from ${name}: ${describe(e)}`),
          ),
        ),
      ),
  };
  return self;
};

/** Reads a small text object; `undefined` when it does not exist. */
export const readRemoteText = (store: RemoteStore, key: string, maxBytes = 1024 * 1024): TE.TaskEither<AppError, string | undefined> =>
  pipe(
    store.get(key),
    TE.map((s): Readable | undefined => s),
    TE.orElse((e) => (e._tag === 'NotFound' ? TE.right(undefined) : TE.left(e))),
    TE.flatMap((body) =>
      body === undefined
        ? TE.right(undefined)
        : TE.tryCatch(
            async () => {
              const chunks: Buffer[] = [];
              let size = 0;
              for await (const c of body) {
                size += (c as Buffer).length;
                if (size > maxBytes) {
                  body.destroy();
                  throw new Error(`larger than ${maxBytes} bytes`);
                }
                chunks.push(c as Buffer);
              }
              return Buffer.concat(chunks).toString('utf8');
            },
            (e) => appError('Failed', `reading ${key} from ${store.name}: ${describe(e)}`),
          ),
    ),
  );
