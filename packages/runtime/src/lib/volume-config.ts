import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import type { BackupPath } from '@zxbackup/item-store';
import type { BlobVolume } from '@zxbackup/volume-contract';
import { makeLocalVolume } from '@zxbackup/volumes-local';
import { makeS3Volume, type S3StoreConfig } from '@zxbackup/volumes-s3';
import { EncryptionSettings, encryptionAppError } from './encryption-keys';
import { appError, fromPackageError, type AppError } from './errors';
import { makeMountVolume } from './mount-volume';

/*
 * Where a backup path keeps its blobs, as the seed's "Backup on a Third Party Store":
 *   <path>/volume.json   { format, volume }: local (default, <path>/items), an NFS/FUSE mount,
 *                        or a prefix of a stored S3 bucket configuration
 *   buckets file         the server-wide S3 bucket configurations (credentials), by id, so a
 *                        second backup path reuses a bucket with `--bucket-configuration-id`;
 *                        `$ZXBACKUP_BUCKETS_FILE`, else /etc/zxbackup/buckets.json
 * Both are written atomically with mode 0600. Secrets never leave these files: not in errors,
 * not in listings, not in logs.
 */

export const VOLUME_FILE = 'volume.json';
export const BUCKETS_FILE_ENV = 'ZXBACKUP_BUCKETS_FILE';
export const DEFAULT_BUCKETS_FILE = '/etc/zxbackup/buckets.json';
const FORMAT = 1;

/** Folders of a third-party store, relative to its prefix (the seed's layout). */
export const STORE_ITEMS_DIR = 'items';
export const STORE_ACCOUNTS_DIR = 'accounts';
export const STORE_SERVER_DIR = 'server';

export const VolumeSettings = t.union([
  t.type({ type: t.literal('local') }),
  t.type({ type: t.literal('external-local'), mountPath: t.string }),
  t.intersection([
    t.type({ type: t.literal('s3'), bucketConfigurationId: t.string, prefix: t.string }),
    /** Absent: objects are stored as they are. */
    t.partial({ encryption: EncryptionSettings }),
  ]),
]);
export type VolumeSettings = t.TypeOf<typeof VolumeSettings>;

const VolumeFile = t.type({ format: t.number, volume: VolumeSettings });

const PrefixUse = t.type({ prefix: t.string, serverId: t.string, backupPath: t.string });

export const BucketConfiguration = t.type({
  id: t.string,
  bucket: t.string,
  /** `http(s)://host[:port]` */
  url: t.string,
  region: t.string,
  accessKey: t.string,
  secretKey: t.string,
  createdAt: t.number,
  /** Prefixes this machine has put to use, for `listBuckets`. */
  uses: t.array(PrefixUse),
});
export type BucketConfiguration = t.TypeOf<typeof BucketConfiguration>;

const BucketsFile = t.type({ format: t.number, buckets: t.array(BucketConfiguration) });
type BucketsFile = t.TypeOf<typeof BucketsFile>;

/** What `listBuckets` shows: everything but the credentials. */
export interface BucketSummary {
  readonly id: string;
  readonly bucket: string;
  readonly url: string;
  readonly region: string;
  readonly createdAt: number;
  readonly prefixes: ReadonlyArray<{ readonly prefix: string; readonly serverId: string; readonly backupPath: string }>;
}

export const bucketsFilePath = (env: NodeJS.ProcessEnv = process.env): string => {
  const fromEnv = env[BUCKETS_FILE_ENV]?.trim();
  return path.resolve(fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_BUCKETS_FILE);
};

// ---------------------------------------------------------------- pure helpers

/** `server1`, `/server1/` and `server1/` all mean the folder `server1/`; `''` is the bucket root. */
export const normalizePrefix = (prefix: string): E.Either<string, string> => {
  const p = prefix.trim().replace(/^\/+|\/+$/g, '');
  if (p === '') return E.right('');
  const parts = p.split('/');
  if (parts.some((s) => s === '' || s === '.' || s === '..')) return E.left(`volume prefix "${prefix}" has an empty, "." or ".." folder`);
  // A prefix named like a folder of the layout would nest one server's data in another's.
  if ([STORE_ITEMS_DIR, STORE_ACCOUNTS_DIR, STORE_SERVER_DIR].includes(parts[0] as string))
    return E.left(`volume prefix "${prefix}" must not start with ${STORE_ITEMS_DIR}/, ${STORE_ACCOUNTS_DIR}/ or ${STORE_SERVER_DIR}/`);
  return E.right(`${p}/`);
};

export interface ParsedUrl {
  readonly endPoint: string;
  readonly port: number;
  readonly useSSL: boolean;
}

/** `http://127.0.0.1:9000`, `https://s3.example.com`; a bare host name means https. */
export const parseStoreUrl = (raw: string): E.Either<string, ParsedUrl> => {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw.trim()) ? raw.trim() : `https://${raw.trim()}`;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return E.left(`--url "${raw}" is not a URL: use e.g. https://s3.example.com or http://127.0.0.1:9000`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return E.left(`--url "${raw}": only http:// and https:// are supported`);
  if (u.username !== '' || u.password !== '') return E.left('--url must not carry credentials: use --access-key and --secret');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '') return E.left(`--url "${raw}" must be scheme://host[:port] only (requests are path-style)`);
  const useSSL = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return E.right({ endPoint: host, port: u.port === '' ? (useSSL ? 443 : 80) : Number(u.port), useSSL });
};

/** The minio-level configuration of one prefix of a stored bucket (encrypted with `encryption`'s key). */
export const storeConfigOf = (b: BucketConfiguration, prefix: string, encryption?: EncryptionSettings): E.Either<AppError, S3StoreConfig> =>
  pipe(
    parseStoreUrl(b.url),
    E.mapLeft((m) => appError('Failed', `bucket configuration ${b.id}: ${m}`)),
    E.map((u) => ({
      ...u,
      accessKey: b.accessKey,
      secretKey: b.secretKey,
      region: b.region,
      bucket: b.bucket,
      prefix,
      pathStyle: true,
      ...(encryption === undefined ? {} : { encryption: { keyFile: encryption.keyFile, keyId: encryption.keyId } }),
    })),
  );

export const describeVolume = (v: VolumeSettings, buckets?: ReadonlyArray<BucketConfiguration>): string => {
  switch (v.type) {
    case 'local':
      return 'local (the backup path)';
    case 'external-local':
      return `local mount ${v.mountPath}`;
    case 's3': {
      const b = buckets?.find((x) => x.id === v.bucketConfigurationId);
      const sealed = v.encryption === undefined ? '' : `, encrypted (key ${v.encryption.keyId})`;
      return `s3 ${b === undefined ? `bucket configuration ${v.bucketConfigurationId}` : `${b.url}/${b.bucket}`} prefix "${v.prefix}"${sealed}`;
    }
  }
};

export const sameVolume = (a: VolumeSettings, b: VolumeSettings): boolean =>
  a.type === b.type &&
  (a.type === 'local' ||
    (a.type === 'external-local' && b.type === 'external-local' && path.resolve(a.mountPath) === path.resolve(b.mountPath)) ||
    (a.type === 's3' && b.type === 's3' && sameS3Place(a, b) && a.encryption?.keyId === b.encryption?.keyId));

type S3Settings = Extract<VolumeSettings, { readonly type: 's3' }>;

/** The same bucket folder, whatever its encryption. */
export const sameS3Place = (a: S3Settings, b: S3Settings): boolean => a.bucketConfigurationId === b.bucketConfigurationId && a.prefix === b.prefix;

const summaryOf = (b: BucketConfiguration): BucketSummary => ({
  id: b.id,
  bucket: b.bucket,
  url: b.url,
  region: b.region,
  createdAt: b.createdAt,
  prefixes: b.uses.map((u) => ({ prefix: u.prefix, serverId: u.serverId, backupPath: u.backupPath })),
});

// ---------------------------------------------------------------- files

/** Temp file (0600) + fsync + rename + directory fsync: a reader sees the old or the new file. */
export const writePrivateFileAtomic = async (file: string, text: string): Promise<void> => {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
};

const ioFailure = (what: string) => (e: unknown): AppError =>
  appError('Failed', `${what}: ${e instanceof Error ? e.message : String(e)}`);

/** Reads and decodes a JSON file; `undefined` when it does not exist. Never echoes the content. */
const readJson = <A>(file: string, codec: t.Decoder<unknown, A>, what: string): TE.TaskEither<AppError, A | undefined> =>
  pipe(
    TE.tryCatch(
      () =>
        fs.readFile(file, 'utf8').then(
          (s) => s as string | undefined,
          (e: unknown) => {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
            throw e;
          },
        ),
      ioFailure(`reading ${what} ${file}`),
    ),
    TE.flatMap((text) => {
      if (text === undefined) return TE.right(undefined);
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return TE.left(appError('Failed', `${what} ${file} is not valid JSON; fix or remove it`));
      }
      const decoded = codec.decode(raw);
      if (E.isLeft(decoded)) return TE.left(appError('Failed', `${what} ${file} is not a valid ${what} (format ${FORMAT})`));
      return TE.right(decoded.right);
    }),
  );

const checkFormat = <A extends { readonly format: number }>(file: string, what: string) => (a: A | undefined): TE.TaskEither<AppError, A | undefined> =>
  a !== undefined && a.format !== FORMAT
    ? TE.left(appError('Failed', `${what} ${file} has format ${a.format}; this zxbackup reads format ${FORMAT}`))
    : TE.right(a);

export const volumeFilePath = (root: string): string => path.join(root, VOLUME_FILE);

/** The configured volume of a backup path; `local` when none was ever set. */
export const readVolumeSettings = (root: string): TE.TaskEither<AppError, VolumeSettings> => {
  const file = volumeFilePath(root);
  return pipe(
    readJson(file, VolumeFile, 'volume configuration'),
    TE.flatMap(checkFormat(file, 'volume configuration')),
    TE.map((f) => f?.volume ?? { type: 'local' }),
  );
};

export const writeVolumeSettings = (root: string, volume: VolumeSettings): TE.TaskEither<AppError, void> =>
  TE.tryCatch(
    () => writePrivateFileAtomic(volumeFilePath(root), `${JSON.stringify({ format: FORMAT, volume }, null, 2)}\n`),
    ioFailure(`writing ${volumeFilePath(root)}`),
  );

export const readBuckets = (file: string): TE.TaskEither<AppError, ReadonlyArray<BucketConfiguration>> =>
  pipe(
    readJson(file, BucketsFile, 'bucket configuration file'),
    TE.flatMap(checkFormat(file, 'bucket configuration file')),
    TE.map((f) => f?.buckets ?? []),
  );

const writeBuckets = (file: string, buckets: ReadonlyArray<BucketConfiguration>): TE.TaskEither<AppError, void> =>
  TE.tryCatch(async () => {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const content: BucketsFile = { format: FORMAT, buckets: [...buckets] };
    await writePrivateFileAtomic(file, `${JSON.stringify(content, null, 2)}\n`);
  }, ioFailure(`writing the bucket configuration file ${file}`));

export const listBucketSummaries = (file: string): TE.TaskEither<AppError, ReadonlyArray<BucketSummary>> =>
  pipe(readBuckets(file), TE.map((bs) => bs.map(summaryOf)));

export const findBucket = (file: string, id: string): TE.TaskEither<AppError, BucketConfiguration> =>
  pipe(
    readBuckets(file),
    TE.flatMap((bs) => {
      const found = bs.find((b) => b.id === id);
      return found !== undefined
        ? TE.right(found)
        : TE.left(
            appError(
              'NotFound',
              `bucket configuration ${id} is not in ${file}: list them with \`zxbackup listBuckets\`, or give the bucket options (--bucket-name, --access-key, --secret, --region, --url) to store it on this machine`,
            ),
          );
    }),
  );

/** The bucket options of `setBackupVolume S3` and `retrieveMetadataFromArchive S3`. */
export interface BucketOptions {
  readonly bucketName?: string;
  readonly accessKey?: string;
  readonly secret?: string;
  readonly region?: string;
  readonly url?: string;
  readonly bucketConfigurationId?: string;
}

const newBucketId = (): string => randomBytes(6).toString('hex');

const sameBucket = (a: BucketConfiguration, b: Omit<BucketConfiguration, 'id' | 'createdAt' | 'uses'>): boolean =>
  a.bucket === b.bucket && a.url === b.url && a.region === b.region && a.accessKey === b.accessKey && a.secretKey === b.secretKey;

/**
 * The bucket configuration the options name: with only `bucketConfigurationId`, a stored one;
 * with the full options, a new one (stored by `saveBucket`) — or the stored one with the same
 * values, so running a command twice does not pile up copies.
 */
export const resolveBucket = (
  file: string,
  opts: BucketOptions,
  now: number,
): TE.TaskEither<AppError, { readonly bucket: BucketConfiguration; readonly stored: boolean }> => {
  const given = {
    bucketName: opts.bucketName,
    accessKey: opts.accessKey,
    secret: opts.secret,
    region: opts.region,
    url: opts.url,
  };
  const present = Object.entries(given).filter(([, v]) => v !== undefined && v !== '');
  const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (present.length === 0) {
    if (opts.bucketConfigurationId === undefined || opts.bucketConfigurationId === '')
      return TE.left(appError('Usage', 'give --bucket-configuration-id ID, or all of --bucket-name, --access-key, --secret, --region and --url'));
    return pipe(
      findBucket(file, opts.bucketConfigurationId),
      TE.map((bucket) => ({ bucket, stored: true })),
    );
  }
  const missing = Object.entries(given).filter(([, v]) => v === undefined || v === '').map(([k]) => (k === 'secret' ? '--secret' : flag(k)));
  if (missing.length > 0) return TE.left(appError('Usage', `missing ${missing.join(', ')} (a new bucket configuration needs all of the bucket options)`));
  const url = parseStoreUrl(given.url as string);
  if (E.isLeft(url)) return TE.left(appError('Usage', url.left));
  const u = url.right;
  const values = {
    bucket: given.bucketName as string,
    url: `${u.useSSL ? 'https' : 'http'}://${u.endPoint.includes(':') ? `[${u.endPoint}]` : u.endPoint}:${u.port}`,
    region: given.region as string,
    accessKey: given.accessKey as string,
    secretKey: given.secret as string,
  };
  return pipe(
    readBuckets(file),
    TE.flatMap((bs) => {
      const wanted = opts.bucketConfigurationId;
      if (wanted !== undefined && wanted !== '') {
        const existing = bs.find((b) => b.id === wanted);
        if (existing !== undefined && !sameBucket(existing, values))
          return TE.left(appError('Usage', `bucket configuration ${wanted} exists with other values; choose another id, or give only --bucket-configuration-id to reuse it`));
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(wanted)) return TE.left(appError('Usage', `--bucket-configuration-id "${wanted}": use letters, digits, ".", "_" and "-"`));
        return TE.right({ bucket: existing ?? { ...values, id: wanted, createdAt: now, uses: [] }, stored: existing !== undefined });
      }
      const same = bs.find((b) => sameBucket(b, values));
      return TE.right(same !== undefined ? { bucket: same, stored: true } : { bucket: { ...values, id: newBucketId(), createdAt: now, uses: [] }, stored: false });
    }),
  );
};

/** Stores (or updates) a bucket configuration and records which backup path uses which prefix. */
export const saveBucket = (
  file: string,
  bucket: BucketConfiguration,
  use?: { readonly prefix: string; readonly serverId: string; readonly backupPath: string },
): TE.TaskEither<AppError, void> =>
  pipe(
    readBuckets(file),
    TE.flatMap((bs) => {
      const current = bs.find((b) => b.id === bucket.id) ?? bucket;
      const uses =
        use === undefined
          ? current.uses
          : [...current.uses.filter((u) => !(u.backupPath === use.backupPath && u.serverId === use.serverId)), use];
      const next = { ...bucket, uses };
      return writeBuckets(file, [...bs.filter((b) => b.id !== bucket.id), next]);
    }),
  );

/** Forgets a backup path's prefix use (after it moved to another volume). */
export const releaseBucketUse = (file: string, bucketId: string, backupPath: string): TE.TaskEither<AppError, void> =>
  pipe(
    readBuckets(file),
    TE.flatMap((bs) =>
      bs.some((b) => b.id === bucketId && b.uses.some((u) => u.backupPath === backupPath))
        ? writeBuckets(
            file,
            bs.map((b) => (b.id === bucketId ? { ...b, uses: b.uses.filter((u) => u.backupPath !== backupPath) } : b)),
          )
        : TE.right(undefined),
    ),
  );

// ---------------------------------------------------------------- opening volumes

export const s3CacheDir = (root: string): string => path.join(root, 'cache', 's3');
export const mountCacheDir = (root: string): string => path.join(root, 'cache', 'mount');
export const mountItemsDir = (mountPath: string): string => path.join(mountPath, STORE_ITEMS_DIR);

/** Opens the blob volume a settings record describes, for the backup path `root`. */
export const openVolume = (
  root: string,
  settings: VolumeSettings,
  env: NodeJS.ProcessEnv = process.env,
): TE.TaskEither<AppError, BlobVolume> => {
  switch (settings.type) {
    case 'local':
      return pipe(makeLocalVolume({ root: path.join(root, 'items') }), TE.mapLeft(fromPackageError));
    case 'external-local':
      return pipe(
        makeMountVolume({ mountItemsDir: mountItemsDir(settings.mountPath), cacheDir: mountCacheDir(root) }),
        TE.mapLeft(fromPackageError),
      );
    case 's3':
      return pipe(
        findBucket(bucketsFilePath(env), settings.bucketConfigurationId),
        TE.flatMap((b) => TE.fromEither(storeConfigOf(b, settings.prefix, settings.encryption))),
        TE.flatMap((c) => pipe(makeS3Volume({ ...c, cacheDir: s3CacheDir(root) }), TE.mapLeft((e) => encryptionAppError(e) ?? fromPackageError(e)))),
      );
  }
};

/** The volume `volume.json` names (the local `items/` when there is none): what sessions write to. */
export const openConfiguredVolume = (bp: BackupPath, env: NodeJS.ProcessEnv = process.env): TE.TaskEither<AppError, BlobVolume> =>
  pipe(
    readVolumeSettings(bp.root),
    TE.flatMap((s) => (s.type === 'local' ? pipe(makeLocalVolume({ root: bp.itemsDir }), TE.mapLeft(fromPackageError)) : openVolume(bp.root, s, env))),
  );
