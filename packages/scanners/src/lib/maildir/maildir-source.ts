import { promises as fsp, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import { openSource } from '@zxbackup/volume-contract';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import type { MessageEntry, ScanEvent, ScanOptions, Source, SourceError, WatchHandlers, Watcher } from '../source';
import { decodeFlags, parseFileName } from './flags';
import { INBOX_KEY, isFolderDirName, parseSubscriptions, SUBSCRIPTIONS_FILE } from './folders';
import { fsError, isNotFound, readdirOrMissing, readTextOrMissing, statOrMissing, tryFs } from './fs-util';
import { accountOfDirs, accountPaths } from './layout';
import { folderDir, folderMeta, folderSig, FolderSig, listFolderEntries, messageEntry, readKeywords, sameSig, StatCache } from './listing';
import { NameMap, type Candidate } from './name-map';
import { parsePasswdFile, type PasswdEntry } from './passwd-file';
import { watchMaildirTree } from './watch';

export interface MaildirSourceOptions {
  /** The tree root: accounts are `<root>/<domain>/<user>/Maildir`. */
  readonly root: string;
  /** A Dovecot passwd-file: when given, the accounts (and their password hash, quota, extra fields) come from it. */
  readonly passwdFile?: string;
  /** Epoch ms (tests). */
  readonly clock?: () => number;
  /**
   * Bound on the remembered `(size, mtime)` of file names listed before, and on the file names
   * of watched folders kept for `statEntries` (default 200 000 each).
   */
  readonly statCacheEntries?: number;
}

/**
 * The scan cursor: per folder, the signature of its cur/ and new/ directories (mtime, ctime,
 * inode), of its keyword file and its subscription. Versioned; anything else means "full scan".
 */
const MaildirCursor = t.type({ v: t.literal(1), at: t.number, folders: t.record(t.string, FolderSig) });
type MaildirCursor = t.TypeOf<typeof MaildirCursor>;

/**
 * A directory time this close to a scan cannot be trusted: a change in the same clock tick
 * (file systems with coarse timestamps) would leave it equal. Such a folder is listed again.
 */
const UNSTABLE_MS = 2000;

const isStable = (sig: FolderSig, previousAt: number, now: number): boolean =>
  [sig.cur, sig.new, sig.kw].every((d) => d === null || (d[0] < previousAt - UNSTABLE_MS && d[0] < now - UNSTABLE_MS));

const LOCATOR = /^(?:(\.[^/]+)\/)?(cur|new)\/([^/.][^/]*)$/;

/** Rounds of "wait for the watcher, look again" before a lookup gives up and lists the folder. */
const LOOKUP_ROUNDS = 3;

/** Resolves after the event loop went once through its poll phase (pending watch events delivered). */
const nextLoopTurn = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)));

const isValidFolderKey = (folderKey: string): boolean => folderKey === INBOX_KEY || (isFolderDirName(folderKey) && !folderKey.includes('/'));

export const makeMaildirSource = (options: MaildirSourceOptions): Source => {
  const { root, passwdFile } = options;
  const clock = options.clock ?? Date.now;
  const cache = new StatCache(options.statCacheEntries ?? 200_000);
  const names = new NameMap(options.statCacheEntries ?? 200_000);

  /** Lists a folder and hands the result to the name map (which keeps it only for a watched folder). */
  const listEntries = async (account: AccountId, maildir: string, key: string, statCache: StatCache | undefined): Promise<MessageEntry[]> => {
    const token = names.beginListing(account, key);
    const entries = await listFolderEntries(maildir, key, statCache);
    names.listed(account, key, token, entries);
    return entries;
  };

  const readPasswd = (op: string): TE.TaskEither<SourceError, ReadonlyArray<PasswdEntry>> =>
    pipe(
      tryFs(op, passwdFile as string, () => fsp.readFile(passwdFile as string, 'utf8')),
      TE.mapLeft((e): SourceError => (e._tag === 'SourceNotFound' ? { ...e, _tag: 'SourceUnavailable', message: `passwd-file ${passwdFile} does not exist` } : e)),
      TE.flatMap((text) => TE.fromEither(parsePasswdFile(passwdFile as string, text))),
    );

  const treeAccounts: TE.TaskEither<SourceError, ReadonlyArray<AccountId>> = TE.tryCatch(
    async () => {
      const domains = await fsp.readdir(root, { withFileTypes: true });
      const out: AccountId[] = [];
      for (const d of domains) {
        if (!d.isDirectory()) continue;
        const users = (await readdirOrMissing(join(root, d.name))) ?? [];
        for (const u of users) {
          const id = accountOfDirs(d.name, u);
          if (id === undefined) continue;
          const st = await statOrMissing(accountPaths(root, id).maildir);
          if (st?.isDirectory() === true) out.push(id);
        }
      }
      return out.sort();
    },
    (e): SourceError =>
      isNotFound(e) ? { _tag: 'SourceUnavailable', op: 'listAccounts', key: root, message: `maildir root ${root} does not exist` } : fsError('listAccounts', root, e),
  );

  const accountMeta = (account: AccountId, op: string): TE.TaskEither<SourceError, AccountMeta> => {
    if (passwdFile !== undefined) {
      return pipe(
        readPasswd(op),
        TE.flatMap((entries) => {
          const entry = entries.find((x) => x.account === account);
          return entry === undefined
            ? TE.left<SourceError, AccountMeta>({ _tag: 'SourceNotFound', op, key: account, message: `${account} is not in ${passwdFile}` })
            : TE.right(entry.meta);
        }),
      );
    }
    const paths = accountPaths(root, account);
    return pipe(
      tryFs(op, account, () => fsp.stat(paths.maildir)),
      TE.map(
        (): AccountMeta => ({ kind: 'account', address: account, status: 'active', settings: {}, sourceKey: `${paths.domain}/${paths.user}` }),
      ),
    );
  };

  /** The folder keys of a Maildir (INBOX first), or [] when it does not exist. */
  const folderKeys = async (maildir: string): Promise<string[] | undefined> => {
    const entries = await fsp.readdir(maildir, { withFileTypes: true }).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    if (entries === undefined) return undefined;
    const dots = entries.filter((d) => d.isDirectory() && isFolderDirName(d.name)).map((d) => d.name);
    return [INBOX_KEY, ...dots.sort()];
  };

  const subscriptions = async (maildir: string): Promise<ReadonlySet<string>> => parseSubscriptions((await readTextOrMissing(join(maildir, SUBSCRIPTIONS_FILE))) ?? '');

  const decodeCursor = (cursor: unknown): MaildirCursor | undefined => {
    const r = MaildirCursor.decode(cursor);
    return E.isRight(r) ? r.right : undefined;
  };

  const scanAccount = (
    account: AccountId,
    cursor: unknown,
    scan: ScanOptions,
    onEvent: (event: ScanEvent) => Promise<void>,
  ): TE.TaskEither<SourceError, { readonly cursor: unknown }> =>
    pipe(
      accountMeta(account, 'scanAccount'),
      TE.flatMap((meta) =>
        TE.tryCatch(
          async () => {
            const at = clock();
            await onEvent({ type: 'account', meta });
            const previous = scan.full ? undefined : decodeCursor(cursor);
            const { maildir } = accountPaths(root, account);
            const keys = (await folderKeys(maildir)) ?? [];
            const subs = await subscriptions(maildir);
            const folders: Record<string, FolderSig> = {};
            for (const key of keys) {
              const subscribed = subs.has(key);
              const sig = await folderSig(maildir, key, subscribed);
              const before = previous?.folders[key];
              if (previous !== undefined && before !== undefined && sameSig(before, sig) && isStable(sig, previous.at, at)) {
                folders[key] = sig;
                await onEvent({ type: 'folderUnchanged', folderKey: key });
                continue;
              }
              if (key !== INBOX_KEY && (await statOrMissing(folderDir(maildir, key))) === undefined) continue; // removed meanwhile
              const entries = await listEntries(account, maildir, key, scan.full ? undefined : cache);
              folders[key] = sig;
              await onEvent({ type: 'folder', folderKey: key, meta: folderMeta(key, subscribed), entries });
            }
            const next: MaildirCursor = { v: 1, at, folders };
            return { cursor: MaildirCursor.encode(next) };
          },
          (e) => (isSourceError(e) ? e : fsError('scanAccount', account, e)),
        ),
      ),
    );

  const listFolder = (
    account: AccountId,
    folderKey: string,
  ): TE.TaskEither<SourceError, { readonly meta: FolderMeta; readonly entries: ReadonlyArray<MessageEntry> }> => {
    if (!isValidFolderKey(folderKey)) {
      return TE.left({ _tag: 'SourceInvalid', op: 'listFolder', key: folderKey, message: `"${folderKey}" is not a Maildir++ folder key` });
    }
    const { maildir } = accountPaths(root, account);
    return tryFs('listFolder', `${account}/${folderKey}`, async () => {
      const st = await fsp.stat(folderDir(maildir, folderKey));
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      const subs = await subscriptions(maildir);
      const entries = await listEntries(account, maildir, folderKey, cache);
      return { meta: folderMeta(folderKey, subs.has(folderKey)), entries };
    });
  };

  /**
   * The messages `keys` of a watched folder from its name map: a stat per candidate name, no
   * readdir. Undefined when the map cannot answer for certain (not trusted, a key it does not
   * know, two files with one base name, names still changing): the caller lists the folder.
   * A key none of whose names exists is absent only once the watcher had its turn to report a
   * rename that raced the stats (the kernel queued its events before the stat could fail).
   */
  const lookupByName = async (
    account: AccountId,
    maildir: string,
    folderKey: string,
    keys: ReadonlyArray<string>,
  ): Promise<{ present: MessageEntry[]; absent: string[] } | undefined> => {
    const epoch = names.trusted(account, folderKey);
    if (epoch === undefined) return undefined;
    const found = new Map<string, { locator: string; st: Stats }>();
    let absent: string[] = [];
    let mark = names.mark();
    const probe = (todo: ReadonlyArray<string>): boolean => {
      const cands = names.candidates(account, folderKey, todo);
      if (cands === undefined) return false;
      for (const [key, list] of cands) {
        const existing = list.flatMap((c: Candidate) => {
          const st = statSync(join(maildir, c.locator), { throwIfNoEntry: false });
          return st?.isFile() === true ? [{ locator: c.locator, st }] : [];
        });
        if (existing.length > 1) return false;
        const hit = existing[0];
        if (hit === undefined) absent.push(key);
        else {
          found.set(key, hit);
          names.confirm(account, folderKey, key, hit.locator, mark);
        }
      }
      return true;
    };
    if (!probe(keys)) return undefined;
    for (let round = 1; absent.length > 0; round++) {
      await nextLoopTurn();
      if (names.trusted(account, folderKey) !== epoch) return undefined;
      const again = absent.filter((k) => names.namedSince(account, folderKey, k, mark));
      if (again.length === 0) break;
      if (round >= LOOKUP_ROUNDS) return undefined;
      absent = absent.filter((k) => !again.includes(k));
      mark = names.mark();
      if (!probe(again)) return undefined;
    }
    for (const key of absent) names.gone(account, folderKey, key, mark);
    const dir = folderDir(maildir, folderKey);
    const needsKeywords = [...found.values()].some((f) => /[a-z]/.test(parseFileName(basenameOf(f.locator)).letters));
    const keywords = needsKeywords ? await readKeywords(dir) : [];
    const present = [...found.values()].map(({ locator, st }) => {
      const [sub, name] = locator.split('/').slice(-2) as ['cur' | 'new', string];
      return messageEntry(folderKey, sub, name, st, decodeFlags(parseFileName(name).letters, keywords));
    });
    return { present, absent };
  };

  const statEntries = (
    account: AccountId,
    folderKey: string,
    sourceKeys: ReadonlyArray<string>,
  ): TE.TaskEither<SourceError, { readonly present: ReadonlyArray<MessageEntry>; readonly absent: ReadonlyArray<string> }> => {
    if (!isValidFolderKey(folderKey)) {
      return TE.left({ _tag: 'SourceInvalid', op: 'statEntries', key: folderKey, message: `"${folderKey}" is not a Maildir++ folder key` });
    }
    const { maildir } = accountPaths(root, account);
    const keys = [...new Set(sourceKeys)];
    return tryFs('statEntries', `${account}/${folderKey}`, async () => {
      const st = statSync(folderDir(maildir, folderKey));
      if (!st.isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      const hit = await lookupByName(account, maildir, folderKey, keys);
      if (hit !== undefined) return hit;
      // The map cannot answer: list the folder (which also makes the map trusted again).
      const entries = await listEntries(account, maildir, folderKey, cache);
      const byKey = new Map(entries.map((e) => [e.sourceKey, e]));
      return { present: keys.flatMap((k) => byKey.get(k) ?? []), absent: keys.filter((k) => !byKey.has(k)) };
    });
  };

  /** Find a message by base name: same folder first, then every other folder of the account. */
  const findByBase = async (maildir: string, folderKey: string, base: string): Promise<string | undefined> => {
    const keys = (await folderKeys(maildir)) ?? [];
    for (const key of [folderKey, ...keys.filter((k) => k !== folderKey)]) {
      for (const sub of ['cur', 'new']) {
        const dir = join(folderDir(maildir, key), sub);
        const hit = ((await readdirOrMissing(dir)) ?? []).find((n) => parseFileName(n).base === base);
        if (hit !== undefined) return join(dir, hit);
      }
    }
    return undefined;
  };

  const openBlob = (account: AccountId, locator: string): TE.TaskEither<SourceError, Readable> => {
    const m = LOCATOR.exec(locator);
    if (m === null || m[1] === '..') {
      return TE.left({ _tag: 'SourceInvalid', op: 'openBlob', key: locator, message: `"${locator}" is not a Maildir message locator` });
    }
    const folderKey = m[1] ?? INBOX_KEY;
    const name = m[3] as string;
    const { maildir } = accountPaths(root, account);
    const key = `${account}/${locator}`;
    return tryFs('openBlob', key, async () => {
      let handle = await openSource(join(maildir, locator)).catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      // Renamed since it was listed (flags changed, moved): the base name is the identity.
      for (let attempt = 0; handle === undefined && attempt < 3; attempt++) {
        const path = await findByBase(maildir, folderKey, parseFileName(name).base);
        if (path === undefined) break;
        handle = await openSource(path).catch((e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
      }
      if (handle === undefined) throw Object.assign(new Error('gone'), { code: 'ENOENT' });
      return handle.createReadStream();
    });
  };

  const localFile = (account: AccountId, locator: string): string | undefined => {
    const m = LOCATOR.exec(locator);
    return m === null || m[1] === '..' ? undefined : join(accountPaths(root, account).maildir, locator);
  };

  const watch = (handlers: WatchHandlers): TE.TaskEither<SourceError, Watcher> =>
    tryFs('watch', root, () => watchMaildirTree(root, handlers, clock, names));

  return {
    uri: `maildir://${root}`,
    listAccounts: () =>
      passwdFile === undefined
        ? treeAccounts
        : pipe(
            readPasswd('listAccounts'),
            TE.map((entries) => entries.map((x) => x.account).sort()),
          ),
    scanAccount,
    listFolder,
    statEntries,
    openBlob,
    localFile,
    watch,
  };
};

const basenameOf = (locator: string): string => locator.slice(locator.lastIndexOf('/') + 1);

const isSourceError = (e: unknown): e is SourceError =>
  typeof e === 'object' && e !== null && '_tag' in e && 'op' in e && typeof (e as { _tag: unknown })._tag === 'string';
