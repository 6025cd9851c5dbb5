import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import { AccountId, readAccountArchive, type AccountStat, type ServerStamp } from '@zxbackup/item-store';
import { encryptionAppError, sealedKeyId } from './encryption-keys';
import { appError, fromPackageError, type AppError } from './errors';
import { recordRetrievedArchives } from './metadata-archives';
import type { RemoteObject } from './remote-store';
import { withWriter, type WriterSession } from './session';
import { STORE_ACCOUNTS_DIR, readVolumeSettings, sameVolume, writePrivateFileAtomic, type VolumeSettings } from './volume-config';
import { claimStore, commitTarget, localBlobsPresent, openOrInitPath, prepareTarget, resolveTarget, storeOwner, withPathLock, type ResolvedTarget, type VolumeTargetSpec } from './volume-setup';

/*
 * `retrieveMetadataFromArchive`, the disaster-recovery path: the newest metadata archive of each
 * account is downloaded from a third-party store into a backup path — an existing one (to mend
 * local metadata), or an empty or missing one on a new machine — and read into its metadata
 * store. On another server than the one that uploaded them, the path gets `map_<old server id>`
 * (the seed's map files) and the store is claimed for this server. The path's volume becomes
 * that store, so restores read the blobs from it.
 */

export interface RetrieveSummary {
  readonly backupPath: string;
  readonly store: string;
  readonly initialized: boolean;
  readonly volume: VolumeSettings;
  /** The server whose backup this was, when it is not this one. */
  readonly previousServer?: { readonly serverId: string; readonly host: string };
  readonly mapFile?: string;
  readonly accounts: number;
  readonly items: number;
  /** Accounts asked for (`--accounts`) that have no archive in the store. */
  readonly missing: ReadonlyArray<string>;
}

export interface RetrieveOptions {
  readonly accounts?: ReadonlyArray<AccountId>;
  readonly env?: NodeJS.ProcessEnv;
  readonly now: number;
  readonly onProgress?: (p: { readonly done: number; readonly total: number; readonly account: string }) => void;
}

/** `accounts/<account>/<ts>.tar.gz` → the newest key per account. */
export const newestArchives = (objects: ReadonlyArray<RemoteObject>): ReadonlyMap<AccountId, RemoteObject> => {
  const newest = new Map<AccountId, RemoteObject>();
  for (const o of objects) {
    const m = /^accounts\/([^/]+)\/[^/]+\.tar\.gz$/.exec(o.key);
    if (m === null) continue;
    const account = AccountId.decode(m[1]);
    if (E.isLeft(account)) continue;
    const seen = newest.get(account.right);
    if (seen === undefined || seen.key < o.key) newest.set(account.right, o);
  }
  return newest;
};

const hashing = (): { readonly stream: Transform; readonly result: () => { size: number; sha256: string } } => {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  return { stream, result: () => ({ size, sha256: hash.digest('hex') }) };
};

const mapFileOf = (root: string, owner: ServerStamp): string => path.join(root, `map_${owner.serverId.replace(/[^A-Za-z0-9._-]/g, '_')}`);

interface Imported {
  readonly account: AccountId;
  readonly stat: AccountStat;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
  readonly items: number;
}

const importAccounts = (
  session: WriterSession,
  target: ResolvedTarget,
  chosen: ReadonlyArray<readonly [AccountId, RemoteObject]>,
  options: RetrieveOptions,
): TE.TaskEither<AppError, ReadonlyArray<Imported>> => async () => {
  const imported: Imported[] = [];
  let maxTx = 0;
  let done = 0;
  for (const [account, archive] of chosen) {
    options.onProgress?.({ done, total: chosen.length, account });
    done++;
    const body = await target.remote.get(archive.key)();
    if (E.isLeft(body)) return body;
    const h = hashing();
    const download: Readable = body.right;
    download.once('error', (e) => h.stream.destroy(e));
    const read = await readAccountArchive(download.pipe(h.stream), session.store)();
    if (E.isLeft(read)) return E.left(appError('Failed', `${archive.key}: ${fromPackageError(read.left).message}`));
    if (read.right.account !== account)
      return E.left(appError('Failed', `${archive.key} holds the metadata of ${read.right.account}, not of ${account}: the store is damaged`));
    const stat = await session.store.getAccountStat(account)();
    if (E.isLeft(stat)) return E.left(fromPackageError(stat.left));
    if (O.isNone(stat.right)) return E.left(appError('Failed', `${archive.key} brought no account stat for ${account}`));
    // Transaction ids must keep growing past every id the archives brought in.
    const histories = await session.store.forEachHistory(account, (_a, _id, history) => {
      for (const entry of history) if (entry.tx > maxTx) maxTx = entry.tx;
    })();
    if (E.isLeft(histories)) return E.left(fromPackageError(histories.left));
    imported.push({ account, stat: stat.right.value, key: archive.key, ...h.result(), items: read.right.items });
  }
  options.onProgress?.({ done, total: chosen.length, account: '' });
  const first = await session.txIds.allocate(1)();
  if (E.isLeft(first)) return E.left(fromPackageError(first.left));
  if (first.right <= maxTx) {
    const skipped = await session.txIds.allocate(maxTx - first.right + 1)();
    if (E.isLeft(skipped)) return E.left(fromPackageError(skipped.left));
  }
  return E.right(imported);
};

/** Reads the first bytes of an archive: a wrong key, or an encrypted store read without one, fails here. */
const probeArchive = (target: ResolvedTarget, key: string): TE.TaskEither<AppError, void> =>
  pipe(
    target.remote.get(key),
    TE.flatMap((body) =>
      TE.tryCatch(
        async () => {
          let first: Buffer = Buffer.alloc(0);
          for await (const chunk of body) {
            first = chunk as Buffer;
            break; // destroys the stream
          }
          return first;
        },
        (e) => encryptionAppError(e) ?? appError('Failed', `reading ${key} from ${target.remote.name}: ${e instanceof Error ? e.message : String(e)}`),
      ),
    ),
    TE.flatMap((first) => {
      const sealedWith = target.settings.type === 's3' && target.settings.encryption === undefined ? sealedKeyId(first) : undefined;
      return sealedWith === undefined
        ? TE.right(undefined)
        : TE.left(appError('Usage', `${target.remote.name} is encrypted (key ${sealedWith}): give its key file with --encryption-key-file`));
    }),
  );

export const retrieveMetadataFromArchive = (
  root: string,
  spec: VolumeTargetSpec,
  options: RetrieveOptions,
): TE.TaskEither<AppError, RetrieveSummary> => {
  const env = options.env ?? process.env;
  return pipe(
    TE.Do,
    TE.bind('target', () => resolveTarget(spec, env, options.now)),
    TE.bind('listing', ({ target }) => target.remote.list(`${STORE_ACCOUNTS_DIR}/`)),
    TE.bind('owner', ({ target }) => storeOwner(target.remote)),
    TE.tap(({ target, listing }) => {
      // The key must open the archives before anything is written (a path, a map file).
      const first = [...newestArchives(listing).values()][0];
      return first === undefined ? TE.right(undefined) : probeArchive(target, first.key);
    }),
    TE.flatMap(({ target, listing, owner }) => {
      const newest = newestArchives(listing);
      const wanted = options.accounts ?? [...newest.keys()].sort();
      const chosen = wanted.flatMap((a) => {
        const o = newest.get(a);
        return o === undefined ? [] : [[a, o] as const];
      });
      const missing = wanted.filter((a) => !newest.has(a));
      if (chosen.length === 0)
        return TE.left(
          appError('NotFound', options.accounts ? `${target.remote.name} holds no metadata archive of ${missing.join(', ')}` : `${target.remote.name} holds no metadata archive (nothing under ${STORE_ACCOUNTS_DIR}/)`),
        );
      return pipe(
        openOrInitPath(root),
        TE.flatMap(({ bp, initialized }) =>
          pipe(
            // Before anything is written: the path may take this volume (same one, or no blobs yet).
            withPathLock(bp, () =>
              pipe(
                readVolumeSettings(bp.root),
                TE.flatMap((current) =>
                  sameVolume(current, target.settings)
                    ? TE.right(current)
                    : current.type !== 'local'
                      ? TE.left(appError('Usage', `the backup path ${bp.root} stores its blobs on another volume; retrieve into a new backup path (--backup-path)`))
                      : pipe(
                          localBlobsPresent(bp.itemsDir),
                          TE.flatMap((present) =>
                            present
                              ? TE.left(appError('Usage', `the backup path ${bp.root} holds blobs of its own; retrieve into a new backup path (--backup-path)`))
                              : TE.right(current),
                          ),
                        ),
                ),
                TE.tap(() => prepareTarget(target, bp.stamp.serverId, owner?.serverId)),
              ),
            ),
            TE.bindTo('current'),
            TE.bind('mapFile', () => {
              if (owner === undefined || owner.serverId === bp.stamp.serverId) return TE.right(undefined);
              const file = mapFileOf(bp.root, owner);
              const content = { format: 1, serverId: owner.serverId, host: owner.host, createdAt: owner.createdAt, importedAt: options.now, store: target.remote.name };
              return pipe(
                TE.tryCatch(
                  () => writePrivateFileAtomic(file, `${JSON.stringify(content, null, 2)}\n`),
                  (e) => appError('Failed', `writing ${file}: ${e instanceof Error ? e.message : String(e)}`),
                ),
                TE.as(file),
              );
            }),
            TE.bind('imported', () => withWriter(bp.root, { initialize: false }, (session) => importAccounts(session, target, chosen, options))),
            TE.tap(({ imported }) => recordRetrievedArchives(bp.root, target.remote.name, imported.map((i) => ({ ...i, at: options.now })))),
            TE.tap(({ current }) => withPathLock(bp, () => commitTarget(bp, target, current, env))),
            TE.tap(() => claimStore(bp.root, target.remote)),
            TE.map(({ imported, mapFile }) => ({
              backupPath: bp.root,
              store: target.remote.name,
              initialized,
              volume: target.settings,
              ...(owner !== undefined && owner.serverId !== bp.stamp.serverId ? { previousServer: { serverId: owner.serverId, host: owner.host } } : {}),
              ...(mapFile === undefined ? {} : { mapFile }),
              accounts: imported.length,
              items: imported.reduce((n, i) => n + i.items, 0),
              missing,
            })),
          ),
        ),
      );
    }),
  );
};
