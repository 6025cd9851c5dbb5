import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import { writeAccountArchive, type AccountId, type AccountStat, type MetadataStore } from '@zxbackup/item-store';
import { accountArchiveKey } from '@zxbackup/volumes-s3';
import { appError, fromPackageError, type AppError } from './errors';
import { fileDigest, makeMountRemoteStore, makeS3RemoteStore, type RemoteStore } from './remote-store';
import type { WriterSession } from './session';
import {
  STORE_SERVER_DIR,
  bucketsFilePath,
  findBucket,
  readVolumeSettings,
  storeConfigOf,
  writePrivateFileAtomic,
  type VolumeSettings,
} from './volume-config';

/*
 * The incremental copy of the metadata to a third-party store (the seed's "Metadata
 * management"): one `.tar.gz` per account changed since its last upload, plus the server files
 * (`server/server.json`, `server/map_*`) and `backupstat`. `<path>/archives.json` remembers, per
 * store, what went up: an account whose stat did not change since is not uploaded again.
 */

export const ARCHIVES_FILE = 'archives.json';
const FORMAT = 1;

const Uploaded = t.type({ fingerprint: t.string, key: t.string, uploadedAt: t.number, size: t.number, sha256: t.string });
const ArchivesFile = t.type({
  format: t.number,
  /** The store these uploads went to; another store starts from nothing. */
  store: t.string,
  accounts: t.record(t.string, Uploaded),
  /** Server file name → SHA-256 uploaded. */
  files: t.record(t.string, t.string),
});
type ArchivesFile = t.TypeOf<typeof ArchivesFile>;

export interface MetadataUploadSummary {
  /** The store, or null when the backup path has no third-party volume (nothing to do). */
  readonly store: string | null;
  readonly uploaded: number;
  readonly unchanged: number;
  readonly bytes: number;
  readonly serverFiles: number;
  /** Older archives removed (each account keeps its `keepArchives` newest). */
  readonly pruned: number;
  readonly failures: ReadonlyArray<{ readonly account: string; readonly message: string }>;
}

export interface MetadataUploadOptions {
  /** Only these accounts (e.g. the ones a scan touched); default: every account. */
  readonly accounts?: ReadonlyArray<AccountId>;
  /** Upload even unchanged accounts. */
  readonly force?: boolean;
  readonly clock?: () => number;
  readonly env?: NodeJS.ProcessEnv;
  readonly onProgress?: (p: { readonly done: number; readonly total: number; readonly account: string }) => void;
  readonly shouldStop?: () => boolean;
  /** Archives kept per account, newest first (default `ARCHIVES_KEPT_PER_ACCOUNT`); older ones are removed after an upload. */
  readonly keepArchives?: number;
}

/**
 * Every upload of a changed account adds an archive; the newest is what a disaster recovery
 * reads, and the two before it are kept in case the newest was taken from a damaged store.
 */
export const ARCHIVES_KEPT_PER_ACCOUNT = 3;

/** What decides "changed": the stat fields a commit moves (not the scan time or cursor). */
export const accountFingerprint = (s: AccountStat): string =>
  JSON.stringify([s.lastTx ?? null, s.items, s.deletedItems, s.deletedAt ?? null]);

const archivesPath = (root: string): string => path.join(root, ARCHIVES_FILE);

const failed = (what: string) => (e: unknown): AppError => appError('Failed', `${what}: ${e instanceof Error ? e.message : String(e)}`);

const readArchivesFile = (root: string, store: string): TE.TaskEither<AppError, ArchivesFile> =>
  pipe(
    TE.tryCatch(
      () =>
        fs.readFile(archivesPath(root), 'utf8').then(
          (s) => s as string | undefined,
          (e: unknown) => {
            if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
            throw e;
          },
        ),
      failed(`reading ${archivesPath(root)}`),
    ),
    TE.map((text) => {
      const empty: ArchivesFile = { format: FORMAT, store, accounts: {}, files: {} };
      if (text === undefined) return empty;
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch {
        return empty; // a record of past uploads only saves work: a damaged one costs a full upload
      }
      const decoded = ArchivesFile.decode(raw);
      return E.isRight(decoded) && decoded.right.format === FORMAT && decoded.right.store === store ? decoded.right : empty;
    }),
  );

const writeArchivesFile = (root: string, f: ArchivesFile): TE.TaskEither<AppError, void> =>
  TE.tryCatch(() => writePrivateFileAtomic(archivesPath(root), `${JSON.stringify(f)}\n`), failed(`writing ${archivesPath(root)}`));

/** Records what a disaster recovery brought in, so the next upload skips unchanged accounts. */
export const recordRetrievedArchives = (
  root: string,
  store: string,
  entries: ReadonlyArray<{ readonly account: AccountId; readonly stat: AccountStat; readonly key: string; readonly size: number; readonly sha256: string; readonly at: number }>,
): TE.TaskEither<AppError, void> =>
  pipe(
    readArchivesFile(root, store),
    TE.flatMap((f) =>
      writeArchivesFile(root, {
        ...f,
        accounts: {
          ...f.accounts,
          ...Object.fromEntries(
            entries.map((e) => [e.account, { fingerprint: accountFingerprint(e.stat), key: e.key, uploadedAt: e.at, size: e.size, sha256: e.sha256 }]),
          ),
        },
      }),
    ),
  );

/** The metadata store of a backup path's volume settings; `undefined` for the local volume. */
export const remoteStoreOf = (settings: VolumeSettings, env: NodeJS.ProcessEnv = process.env): TE.TaskEither<AppError, RemoteStore | undefined> => {
  switch (settings.type) {
    case 'local':
      return TE.right(undefined);
    case 'external-local':
      return TE.right(makeMountRemoteStore(settings.mountPath));
    case 's3':
      return pipe(
        findBucket(bucketsFilePath(env), settings.bucketConfigurationId),
        TE.flatMap((b) => TE.fromEither(storeConfigOf(b, settings.prefix, settings.encryption))),
        TE.map(makeS3RemoteStore),
      );
  }
};

/** `server.json` and `map_*` of the backup path: what a store needs to be adopted by another server. */
export const serverFilesOf = (root: string): TE.TaskEither<AppError, ReadonlyArray<string>> =>
  TE.tryCatch(
    async () => (await fs.readdir(root)).filter((n) => n === 'server.json' || /^map_[A-Za-z0-9._-]+$/.test(n)).sort(),
    failed(`listing ${root}`),
  );

const tempDir = (root: string): string => path.join(root, 'cache', 'archives');

/** Uploads the server files and `backupstat` that changed since the last upload. */
const uploadServerFiles =
  (root: string, store: MetadataStore, remote: RemoteStore, record: ArchivesFile, force: boolean): TE.TaskEither<AppError, { readonly record: ArchivesFile; readonly count: number }> =>
  async () => {
    const names = await serverFilesOf(root)();
    if (E.isLeft(names)) return names;
    const backupstat = await store.getBackupStat()();
    if (E.isLeft(backupstat)) return E.left(fromPackageError(backupstat.left));
    const statFile = path.join(tempDir(root), 'backupstat');
    const files: Array<readonly [key: string, file: string, name: string]> = [
      ...names.right.map((n) => [`${STORE_SERVER_DIR}/${n}`, path.join(root, n), n] as const),
      ['backupstat', statFile, 'backupstat'] as const,
    ];
    try {
      await fs.writeFile(statFile, `${JSON.stringify(backupstat.right)}\n`, { mode: 0o600 });
      let next = record;
      let count = 0;
      for (const [key, file, name] of files) {
        const local = await fileDigest(file);
        if (!force && next.files[name] === local.sha256) continue;
        const up = await remote.putFile(key, file)();
        if (E.isLeft(up)) return up;
        next = { ...next, files: { ...next.files, [name]: up.right.sha256 } };
        count++;
      }
      return E.right({ record: next, count });
    } catch (e) {
      return E.left(failed('uploading the server files')(e));
    } finally {
      await fs.rm(statFile, { force: true });
    }
  };

/** Removes an account's archives older than its `keep` newest (never `current`, just uploaded); resolves to how many went. */
const pruneArchives = (remote: RemoteStore, account: AccountId, keep: number, current: string): TE.TaskEither<AppError, number> =>
  pipe(
    remote.list(`accounts/${account}/`),
    TE.flatMap((objects) => {
      // Keys sort by upload time within an account (accountArchiveKey).
      const archives = objects.map((o) => o.key).filter((k) => k.endsWith('.tar.gz'));
      const doomed = archives.slice(0, Math.max(0, archives.length - keep)).filter((k) => k !== current);
      return pipe(
        doomed,
        TE.traverseSeqArray((k) => remote.remove(k)),
        TE.map(() => doomed.length),
      );
    }),
  );

/**
 * Uploads the metadata of `store` (backup path `root`) to `remote`: one archive per changed
 * account, then the server files. A failing account is reported and the others go on.
 */
export const uploadMetadataTo = (
  root: string,
  store: MetadataStore,
  remote: RemoteStore,
  options: MetadataUploadOptions = {},
): TE.TaskEither<AppError, MetadataUploadSummary> => {
  const clock = options.clock ?? Date.now;
  return pipe(
    TE.Do,
    TE.bind('record', () => readArchivesFile(root, remote.name)),
    TE.bind('accounts', () => (options.accounts ? TE.right(options.accounts) : pipe(store.listAccounts(), TE.mapLeft(fromPackageError)))),
    TE.flatMap(({ record, accounts }) => async () => {
      let current = record;
      let uploaded = 0;
      let unchanged = 0;
      let bytes = 0;
      let pruned = 0;
      const keep = Math.max(1, options.keepArchives ?? ARCHIVES_KEPT_PER_ACCOUNT);
      const failures: Array<{ account: string; message: string }> = [];
      await fs.mkdir(tempDir(root), { recursive: true });
      let done = 0;
      for (const account of accounts) {
        if (options.shouldStop?.()) break;
        options.onProgress?.({ done, total: accounts.length, account });
        done++;
        const stat = await store.getAccountStat(account)();
        if (E.isLeft(stat)) {
          failures.push({ account, message: fromPackageError(stat.left).message });
          continue;
        }
        if (O.isNone(stat.right)) continue; // never scanned: nothing to archive
        const fingerprint = accountFingerprint(stat.right.value);
        if (!options.force && current.accounts[account]?.fingerprint === fingerprint) {
          unchanged++;
          continue;
        }
        const at = clock();
        const key = accountArchiveKey(account, new Date(at));
        const file = path.join(tempDir(root), `${account.replace(/[^A-Za-z0-9@._-]/g, '_')}.tar.gz`);
        const written = await writeAccountArchive(store, account, file)();
        if (E.isLeft(written)) {
          failures.push({ account, message: fromPackageError(written.left).message });
          continue;
        }
        const up = await remote.putFile(key, file)();
        await fs.rm(file, { force: true });
        if (E.isLeft(up)) {
          failures.push({ account, message: up.left.message });
          continue;
        }
        uploaded++;
        bytes += up.right.size;
        current = { ...current, accounts: { ...current.accounts, [account]: { fingerprint, key, uploadedAt: at, size: up.right.size, sha256: up.right.sha256 } } };
        // Saved after every account: a killed upload resumes where it stopped.
        const saved = await writeArchivesFile(root, current)();
        if (E.isLeft(saved)) return saved;
        // Only once the new archive is recorded: the older ones go, newest `keep` stay.
        const old = await pruneArchives(remote, account, keep, key)();
        if (E.isLeft(old)) failures.push({ account, message: `removing its older archives: ${old.left.message}` });
        else pruned += old.right;
      }
      options.onProgress?.({ done, total: accounts.length, account: '' });
      const server = await uploadServerFiles(root, store, remote, current, options.force === true)();
      if (E.isLeft(server)) return server;
      const saved = await writeArchivesFile(root, server.right.record)();
      if (E.isLeft(saved)) return saved;
      return E.right({ store: remote.name, uploaded, unchanged, bytes, serverFiles: server.right.count, pruned, failures });
    }),
  );
};

/**
 * The metadata upload after a SmartScan / Account Scan (`--deep`, `--remote-metadata-upload`,
 * the scheduled scan): to the backup path's third-party store, or nothing (`store: null`) when
 * the blobs are on the local volume.
 */
export const uploadMetadataArchives = (
  session: WriterSession,
  options: MetadataUploadOptions = {},
): TE.TaskEither<AppError, MetadataUploadSummary> =>
  pipe(
    readVolumeSettings(session.path.root),
    TE.flatMap((s) => remoteStoreOf(s, options.env)),
    TE.flatMap((remote) =>
      remote === undefined
        ? TE.right<AppError, MetadataUploadSummary>({ store: null, uploaded: 0, unchanged: 0, bytes: 0, serverFiles: 0, pruned: 0, failures: [] })
        : uploadMetadataTo(session.path.root, session.store, remote, options),
    ),
  );
