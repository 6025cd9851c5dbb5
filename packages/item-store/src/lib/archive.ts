import { once } from 'node:events';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type archiverModule from 'archiver';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type * as TE from 'fp-ts/TaskEither';
import type * as tarStream from 'tar-stream';
import type { MetadataStore } from './api';
import { AccountId, FORMAT_VERSION, ItemId, type AccountMeta, type Transaction } from './codecs';
import { decodeVersioned, decodeWith, parseJson } from './decode';
import { describeCause, storeError, type StoreError } from './errors';
import { fsyncDir } from './files';
import { decodeHistory } from './history';
import { AccountInfo, AccountStat, newAccountStat } from './records';

// archiver and tar-stream load on first use: only archive commands need them, and loading them
// costs ~0.3 s of CPU at the start of every command that imports this package.
const archiver = (...args: Parameters<typeof archiverModule>): ReturnType<typeof archiverModule> => (require('archiver') as typeof archiverModule)(...args);
const tar = { extract: (): tarStream.Extract => (require('tar-stream') as typeof tarStream).extract() };

/*
 * The portable form of one account's metadata (S3 upload, export, disaster recovery): a
 * `.tar.gz` holding, in this order,
 *   account_info             {format, account, itemId, meta}: the account item's current state
 *   account_stat             the AccountStat
 *   items/<xx>/<itemId>      one JSON history per item, xx = the id's last two characters
 * Written and read as streams: one history at a time is in memory.
 */

export const ACCOUNT_INFO_ENTRY = 'account_info';
export const ACCOUNT_STAT_ENTRY = 'account_stat';
/** A single history larger than this is refused on read (memory stays bounded). */
export const MAX_ENTRY_BYTES = 64 * 1024 * 1024;
/** Entries queued in archiver before the writer waits for it to catch up. */
const MAX_PENDING_ENTRIES = 16;

export const itemEntryName = (itemId: string): string => `items/${itemId.slice(-2)}/${itemId}`;

export interface ArchiveSummary {
  readonly account: AccountId;
  readonly items: number;
}

class Failed {
  constructor(readonly error: StoreError) {}
}
const must = async <A>(te: TE.TaskEither<StoreError, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Failed(r.left);
  return r.right;
};

/** Write the account's archive to a stream, or atomically to a file (temp name, fsync, rename). */
export const writeAccountArchive =
  (store: MetadataStore, account: AccountId, out: Writable | string): TE.TaskEither<StoreError, ArchiveSummary> =>
  async () => {
    const op = 'writeAccountArchive';
    const tmp = typeof out === 'string' ? `${out}.${process.pid}.${randomBytes(4).toString('hex')}.tmp` : undefined;
    const dest = tmp === undefined ? (out as Writable) : createWriteStream(tmp, { mode: 0o644 });
    const archive = archiver('tar', { gzip: true, gzipOptions: { level: 6 } });
    let archiveError: unknown;
    archive.on('warning', (e: unknown) => (archiveError ??= e));
    // Resolves to the pipeline's error, if any, so that no rejection is left unhandled.
    const piped = pipeline(archive, dest).then(
      () => undefined,
      (e: unknown) => e ?? new Error('archive pipeline failed'),
    );

    let pending = 0;
    archive.on('entry', () => pending--);
    const add = async (name: string, json: string): Promise<void> => {
      if (archiveError !== undefined) throw archiveError;
      pending++;
      archive.append(json, { name, mode: 0o644 });
      while (pending > MAX_PENDING_ENTRIES && archiveError === undefined) await once(archive, 'entry');
    };

    try {
      let info: { itemId: ItemId; meta: AccountMeta } | undefined;
      await must(
        store.forEachItemAt(account, 'now', (itemId, state: Transaction) => {
          if (state.kind === 'account' && info === undefined) {
            const { tx: _tx, start: _s, end: _e, op: _op, digest: _d, size: _z, ...meta } = state;
            info = { itemId, meta };
          }
        }),
      );
      const stat = O.getOrElse(() => newAccountStat(account))(await must(store.getAccountStat(account)));
      const accountInfo: AccountInfo = { format: FORMAT_VERSION, account, itemId: info?.itemId ?? null, meta: info?.meta ?? null };
      await add(ACCOUNT_INFO_ENTRY, JSON.stringify(accountInfo));
      await add(ACCOUNT_STAT_ENTRY, JSON.stringify(stat));
      const items = await must(store.forEachHistory(account, (_a, itemId, history) => add(itemEntryName(itemId), JSON.stringify(history))));
      await archive.finalize();
      const err = (await piped) ?? archiveError;
      if (err !== undefined) throw err;
      if (tmp !== undefined) {
        const fh = await fs.open(tmp, 'r+');
        await fh.sync().finally(() => fh.close());
        await fs.rename(tmp, out as string);
        await fsyncDir(dirname(out as string));
      }
      return E.right({ account, items });
    } catch (e) {
      archive.abort();
      await piped;
      if (tmp !== undefined) await fs.rm(tmp, { force: true });
      if (e instanceof Failed) return E.left(e.error);
      return E.left(storeError.io(op, e, typeof out === 'string' ? out : account, `writing the archive of ${account}`));
    }
  };

const readEntry = async (entry: AsyncIterable<unknown>, name: string, op: string): Promise<string> => {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of entry) {
    const chunk = c as Buffer;
    size += chunk.length;
    if (size > MAX_ENTRY_BYTES) throw new Failed(storeError.decode(op, `archive entry ${name} is larger than ${MAX_ENTRY_BYTES} bytes`, name));
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
};

/**
 * Read an account archive into `store`: every entry is decoded (a bad one is a `DecodeError`
 * naming it), each history replaces the item's (`putHistory`), then the account stat is
 * written. Items of the account that the archive does not hold are left alone.
 */
export const readAccountArchive =
  (input: Readable | string, store: MetadataStore): TE.TaskEither<StoreError, ArchiveSummary> =>
  async () => {
    const op = 'readAccountArchive';
    const source = typeof input === 'string' ? input : 'the archive stream';
    const src = typeof input === 'string' ? createReadStream(input) : input;
    let sourceError: unknown;
    src.once('error', (e: unknown) => (sourceError = e));
    const extract = tar.extract();
    const piped = pipeline(src, createGunzip(), extract).then(
      () => undefined,
      (e: unknown) => e ?? new Error('archive pipeline failed'),
    );

    let account: AccountId | undefined;
    let stat: AccountStat | undefined;
    let items = 0;
    let last = '(start)';
    try {
      for await (const entry of extract) {
        const name = entry.header.name.replace(/^\.\//, '');
        last = name;
        if (entry.header.type === 'directory') {
          entry.resume();
          continue;
        }
        const text = await readEntry(entry, name, op);
        const json = (what: string) => parseJson(text, op, `${source}:${what}`);
        if (name === ACCOUNT_INFO_ENTRY) {
          const info = orFail(E.flatMap(json(name), decodeVersioned(AccountInfo, op, `${source}:${name}`)));
          account = info.account;
        } else if (name === ACCOUNT_STAT_ENTRY) {
          stat = orFail(E.flatMap(json(name), decodeVersioned(AccountStat, op, `${source}:${name}`)));
        } else if (name.startsWith('items/')) {
          if (account === undefined) throw new Failed(storeError.decode(op, `${source}: ${name} comes before ${ACCOUNT_INFO_ENTRY}`, name));
          const [, bucket, id, ...rest] = name.split('/');
          const itemId = orFail(decodeWith(ItemId, op, `${source}:${name}`)(id));
          if (rest.length > 0 || bucket !== itemId.slice(-2)) throw new Failed(storeError.decode(op, `${source}: ${name} is not items/<last two characters>/<id>`, name));
          const history = orFail(decodeHistory(text, `${source}:${name}`));
          await must(store.putHistory(account, itemId, history));
          items++;
        } else {
          throw new Failed(storeError.decode(op, `${source}: unexpected entry ${name} in an account archive`, name));
        }
      }
      const err = await piped;
      if (err !== undefined) throw err;
      if (account === undefined) throw new Failed(storeError.decode(op, `${source} has no ${ACCOUNT_INFO_ENTRY}: not an account archive`, source));
      if (stat === undefined) throw new Failed(storeError.decode(op, `${source} has no ${ACCOUNT_STAT_ENTRY}`, source));
      if (stat.account !== account) {
        throw new Failed(storeError.decode(op, `${source}: ${ACCOUNT_STAT_ENTRY} is for ${stat.account}, ${ACCOUNT_INFO_ENTRY} for ${account}`, ACCOUNT_STAT_ENTRY));
      }
      await must(store.putAccountStat(stat));
      return E.right({ account, items });
    } catch (e) {
      src.destroy();
      await piped;
      if (e instanceof Failed) return E.left(e.error);
      if (sourceError !== undefined) return E.left(storeError.io(op, sourceError, source, `reading ${source}`));
      // zlib and tar-stream failures: the bytes are not a well-formed .tar.gz
      return E.left(storeError.decode(op, `${source} is not a readable .tar.gz account archive (after entry ${last}): ${describeCause(e)}`, source));
    }
  };

const orFail = <A>(r: E.Either<StoreError, A>): A => {
  if (E.isLeft(r)) throw new Failed(r.left);
  return r.right;
};
