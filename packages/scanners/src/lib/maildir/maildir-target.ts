import { closeSync, fchownSync, futimesSync, openSync, promises as fsp, renameSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import { isHeldContent, type MessageContent, type MessageEntry, type MessageFile, type RestoreTarget, type SourceError } from '../source';
import { encodeFlags, formatKeywordsFile, KEYWORDS_FILE, type KeywordTable } from './flags';
import { addSubscription, INBOX_KEY, isFolderDirName, pathToFolderKey, SUBSCRIPTIONS_FILE } from './folders';
import { fsError, isNotFound, makeKeyedMutex, readdirOrMissing, readTextOrMissing, statOrMissing } from './fs-util';
import { forEachConcurrent } from '../engine/util';
import { accountPaths } from './layout';
import { folderDir, listFolderEntries, readKeywords } from './listing';
import { upsertPasswdLine } from './passwd-file';
import { syncfs, syncfsUsable } from './syncfs';
import { FILE_WRITER_MAX_BYTES, fileWriter } from './file-writer';

export interface MaildirTargetOptions {
  /** The tree root: accounts are `<root>/<domain>/<user>/Maildir`. */
  readonly root: string;
  /** A Dovecot passwd-file to add the restored account to (atomically rewritten). */
  readonly passwdFile?: string;
  /**
   * Owner of what the target creates (Dovecot's mail user, e.g. vmail), when the restore runs
   * as root and Dovecot must be able to write into the restored Maildir.
   */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /**
   * How a group of written messages becomes durable: `auto` (default) uses one syncfs for a
   * large group where it is as strong as fsync (see syncfs.ts), else fsyncs file by file;
   * `never` always fsyncs file by file.
   */
  readonly syncfs?: 'auto' | 'never';
}

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
let counter = 0;
// Written messages wait in tmp/ (complete, not yet fsynced) until this many are there or the
// restore flushes; then they are fsynced together, renamed into cur/, and each cur/ is fsynced
// once. Two serial fsyncs per message bounded a restore before (~10x slower than restic).
const GROUP_COMMIT_MESSAGES = 256;
// Where one syncfs makes a group durable (see syncfs.ts), its cost does not grow with the number
// of files, but each is a process spawn (~50 ms of CPU for a large process): groups close by
// bytes, so restoring a mailbox of a few hundred MB spawns a few times, not once per 256 messages.
// 128 MB: with 64, a mailbox just over it paid a second syncfs at its very end (~0.1 s of a
// 70 MB restore); what a killed restore leaves in tmp/ stays small beside a mailbox that size.
const GROUP_COMMIT_MESSAGES_SYNCFS = 8192;
const GROUP_COMMIT_BYTES = 128 * 1024 * 1024;
const PARALLEL_SYNCS = 32;
/** Messages up to this size are written on the file writer's thread; larger ones stream here. */
export const OFF_THREAD_MAX_BYTES = Math.min(4 * 1024 * 1024, FILE_WRITER_MAX_BYTES);
// From this many files, one syncfs (a process spawn, about the cost of ~50 fsyncs) beats fsyncs.
const SYNCFS_MIN_FILES = 64;

const fsyncPath = async (path: string): Promise<void> => {
  const handle = await fsp.open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
};

/** Writes all of `bytes` at the descriptor's position (a write may be short). */
const writeAllSync = (fd: number, bytes: Buffer): void => {
  for (let done = 0; done < bytes.length; ) {
    const n = writeSync(fd, bytes, done, bytes.length - done);
    if (n === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    done += n;
  }
};

/** A message complete in tmp/, waiting for its group's fsync and its rename into cur/. */
interface HeldMessage {
  readonly tmp: string;
  readonly final: string;
  /** Settles once the file is complete in tmp/ (written by the file writer's thread). */
  readonly written: Promise<void>;
}

/** A message's file in tmp/: its size, and when it is complete. */
interface TmpFile {
  readonly size: number;
  readonly written: Promise<void>;
}

/** Maildir host part: `/` and `:` cannot appear in a file name part (Maildir spec escapes). */
const safeHost = (): string => hostname().replace(/\//g, '\\057').replace(/:/g, '\\072').replace(/,/g, '\\054');
let hostPart: string | undefined;

/** A fresh Dovecot-style base name: `<secs>.M<usecs>P<pid>Q<counter>.<host>`. */
const uniqueBase = (): string => {
  const now = Date.now();
  const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000) % 1_000_000;
  counter = (counter + 1) % 1_000_000_000;
  hostPart ??= safeHost(); // a system call each time otherwise
  return `${Math.floor(now / 1000)}.M${micros}P${process.pid}Q${counter}.${hostPart}`;
};

export const makeMaildirTarget = (options: MaildirTargetOptions): RestoreTarget => {
  const { root, passwdFile, owner } = options;
  const lock = makeKeyedMutex();
  // Folder directories checked (cur/ there, tmp/ made) by an earlier write.
  const readyDirs = new Set<string>();
  let held: HeldMessage[] = [];
  let heldBytes = 0;
  // Groups commit one after the other; a failed group fails every later flush (its messages
  // stay in tmp/, where Dovecot removes them after 36 hours).
  let committed: Promise<void> = Promise.resolve();

  // Whether a group may be made durable with one syncfs: decided once the tree exists (the first
  // write); `sync` missing turns it off for good.
  let syncfsAllowed: Promise<boolean> | undefined;
  const syncfsMode = (): Promise<boolean> =>
    // A root that cannot be statfs'd falls back to fsyncs, which report what is wrong with it.
    (syncfsAllowed ??= options.syncfs === 'never' ? Promise.resolve(false) : syncfsUsable(root).catch(() => false));
  const syncWholeFileSystem = async (count: number): Promise<boolean> => {
    if (count < SYNCFS_MIN_FILES || !(await syncfsMode())) return false;
    try {
      await syncfs(root);
      return true;
    } catch (error) {
      // No `sync` program: fsync from now on. Any other failure (an old `sync` without -f, an
      // I/O error anywhere on the file system) falls back to fsyncs for this group: they tell
      // whether *our* files are durable, and report it if not.
      if ((error as { code?: unknown }).code === 'ENOENT') syncfsAllowed = Promise.resolve(false);
      return false;
    }
  };

  const commitGroup = async (group: readonly HeldMessage[]): Promise<void> => {
    // A file that could not be written fails its group here (the first failure is reported),
    // once every file of the group settled: a failed commit leaves no write under way in tmp/
    // (a restore that fails returns, and its caller may remove the tree).
    const settled = await Promise.allSettled(group.map((m) => m.written));
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    if (!(await syncWholeFileSystem(group.length))) await forEachConcurrent(group, PARALLEL_SYNCS, async (m) => fsyncPath(m.tmp));
    const curDirs = new Set<string>();
    // Synchronous: a rename within a folder is one short local syscall, cheaper than a round
    // trip through libuv's threadpool. The first failure stops the group (the rest stay in tmp/).
    for (const m of group) {
      renameSync(m.tmp, m.final);
      curDirs.add(dirname(m.final));
    }
    // The renames themselves survive a crash.
    await forEachConcurrent([...curDirs], PARALLEL_SYNCS, fsyncPath);
  };

  const commitHeld = (): Promise<void> => {
    const group = held;
    held = [];
    heldBytes = 0;
    if (group.length > 0) committed = committed.then(() => commitGroup(group));
    return committed;
  };

  const chown = async (path: string): Promise<void> => {
    if (owner !== undefined) await fsp.chown(path, owner.uid, owner.gid);
  };

  /** mkdir -p that gives every directory it creates to the owner. */
  const mkdirs = async (path: string): Promise<void> => {
    const first = await fsp.mkdir(path, { recursive: true, mode: DIR_MODE });
    if (first === undefined || owner === undefined) return;
    for (let p = path; p.length >= first.length; p = dirname(p)) {
      await chown(p);
      if (p === first) break;
    }
  };

  /** Replace a small file atomically (temp + fsync + rename), keeping mode and owner of the old one. */
  const rewrite = async (path: string, text: string, fallbackMode: number): Promise<void> => {
    const old = await statOrMissing(path);
    const tmp = join(dirname(path), `.${basename(path)}.zxb-${process.pid}-${++counter}`);
    const fh = await fsp.open(tmp, 'wx', old?.mode ?? fallbackMode);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.chmod(tmp, (old?.mode ?? fallbackMode) & 0o7777);
    if (old !== undefined) await fsp.chown(tmp, old.uid, old.gid);
    else await chown(tmp);
    await fsp.rename(tmp, path);
  };

  const attempt = <A>(op: string, key: string, f: () => Promise<A>): TE.TaskEither<SourceError, A> =>
    TE.tryCatch(f, (e) => (isSourceError(e) ? e : fsError(op, key, e)));

  const folderKeyOf = (op: string, path: string): TE.TaskEither<SourceError, string> => TE.fromEither(pathToFolderKey(path, op));

  const ensureMaildirDirs = async (dir: string): Promise<void> => {
    for (const sub of ['cur', 'new', 'tmp']) await mkdirs(join(dir, sub));
  };

  const ensureAccount = (account: AccountId, meta: AccountMeta): TE.TaskEither<SourceError, void> =>
    attempt('ensureAccount', account, async () => {
      const { maildir } = accountPaths(root, account);
      await ensureMaildirDirs(maildir);
      if (passwdFile === undefined) return;
      await lock(`passwd:${passwdFile}`, async () => {
        const text = (await readTextOrMissing(passwdFile)) ?? '';
        const next = upsertPasswdLine(text, account, meta);
        if (next !== undefined) await rewrite(passwdFile, next, 0o640);
      });
    });

  const ensureFolder = (account: AccountId, path: string, meta: FolderMeta): TE.TaskEither<SourceError, void> =>
    pipe(
      folderKeyOf('ensureFolder', path),
      TE.flatMap((key) =>
        attempt('ensureFolder', `${account}/${path}`, async () => {
          const { maildir } = accountPaths(root, account);
          await ensureMaildirDirs(maildir);
          if (key === INBOX_KEY) return;
          const dir = folderDir(maildir, key);
          await ensureMaildirDirs(dir);
          const marker = join(dir, 'maildirfolder');
          if ((await statOrMissing(marker)) === undefined) {
            await fsp.writeFile(marker, '', { mode: FILE_MODE });
            await chown(marker);
          }
          if (meta.subscribed === true) {
            await lock(`subs:${maildir}`, async () => {
              const file = join(maildir, SUBSCRIPTIONS_FILE);
              const next = addSubscription(await readTextOrMissing(file), key);
              if (next !== undefined) await rewrite(file, next, FILE_MODE);
            });
          }
        }),
      ),
    );

  // Each folder's keyword table as last read or written. Dovecot only ever adds names to a
  // table (a letter, once given, keeps its name), so letters found in it stay right.
  const keywordTables = new Map<string, KeywordTable>();

  /** Letters for the flags, adding new keywords to the folder's `dovecot-keywords` (under Dovecot's dotlock). */
  const lettersFor = async (dir: string, flags: ReadonlyArray<string>, key: string): Promise<string> => {
    // Only system flags (most mail): their letters do not depend on the folder's keyword table.
    if (flags.every((f) => f.startsWith('\\'))) {
      const plain = encodeFlags(flags, [], key);
      if (E.isLeft(plain)) throw plain.left;
      return plain.right.letters;
    }
    const cached = keywordTables.get(dir);
    if (cached !== undefined) {
      const hit = encodeFlags(flags, cached, key);
      if (E.isRight(hit) && hit.right.table.length === cached.length && hit.right.table.every((n, i) => n === cached[i])) return hit.right.letters;
    }
    return lock(`kw:${dir}`, async () => {
      const known = await readKeywords(dir);
      const first = encodeFlags(flags, known, key);
      if (E.isLeft(first)) throw first.left;
      if (formatKeywordsFile(first.right.table) === formatKeywordsFile(known)) {
        keywordTables.set(dir, known);
        return first.right.letters;
      }
      return withDotlock(join(dir, KEYWORDS_FILE), async () => {
        const table: KeywordTable = await readKeywords(dir);
        const r = encodeFlags(flags, table, key);
        if (E.isLeft(r)) throw r.left;
        if (formatKeywordsFile(r.right.table) !== formatKeywordsFile(table)) await rewrite(join(dir, KEYWORDS_FILE), formatKeywordsFile(r.right.table), FILE_MODE);
        keywordTables.set(dir, r.right.table);
        return r.right.letters;
      });
    });
  };

  /**
   * Writes a message into a new file of tmp/, with its owner and received date. A message of up
   * to OFF_THREAD_MAX_BYTES (nearly all) is gathered here and handed to the file writer's thread
   * (see file-writer.ts) without waiting for it: the group commit waits, before any fsync or
   * rename, and fails with the first file that could not be written. A bigger message streams,
   * one chunk per synchronous write on this thread, so no more than that is held for one message.
   */
  const writeTmpFile = async (tmp: string, content: MessageContent, receivedAt: number): Promise<TmpFile> => {
    let chunks: readonly Buffer[];
    let size = 0;
    if (isHeldContent(content)) {
      chunks = content;
      for (const c of content) size += c.length;
      if (size > OFF_THREAD_MAX_BYTES) return writeTmpFileHere(tmp, content, undefined, receivedAt);
    } else {
      const gathered: Buffer[] = [];
      chunks = gathered;
      const source = content[Symbol.asyncIterator]() as AsyncIterator<Buffer | Uint8Array>;
      for (let next = await source.next(); next.done !== true; next = await source.next()) {
        const bytes = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
        gathered.push(bytes);
        size += bytes.length;
        if (size > OFF_THREAD_MAX_BYTES) return writeTmpFileHere(tmp, gathered, source, receivedAt);
      }
    }
    const written = fileWriter.write({ path: tmp, chunks, mode: FILE_MODE, ...(owner === undefined ? {} : { owner }), mtimeMs: receivedAt });
    written.catch(() => undefined); // awaited by the group's commit, which reports the failure
    return { size, written };
  };

  /**
   * A message whose file `fill` writes (a volume, from its own thread): started here and not
   * waited for, like the file writer's (the group commit waits).
   */
  const fillTmpFile = (tmp: string, message: MessageFile): TmpFile => {
    let written: Promise<void>;
    try {
      written = message.fill({ path: tmp, mode: FILE_MODE, ...(owner === undefined ? {} : { owner }), mtimeMs: message.receivedAt });
    } catch (e) {
      written = Promise.reject(e as Error);
    }
    written.catch(() => undefined); // awaited by the group's commit, which reports the failure
    return { size: message.size, written };
  };

  /** A large message: the chunks read so far, then the rest of its stream (if any), into its file on this thread. */
  const writeTmpFileHere = async (tmp: string, first: readonly Buffer[], rest: AsyncIterator<Buffer | Uint8Array> | undefined, receivedAt: number): Promise<TmpFile> => {
    let fd: number | undefined = openSync(tmp, 'wx', FILE_MODE);
    try {
      let size = 0;
      for (const bytes of first) {
        writeAllSync(fd, bytes);
        size += bytes.length;
      }
      for (let next = await rest?.next(); next !== undefined && next.done !== true; next = await rest?.next()) {
        const bytes = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
        writeAllSync(fd, bytes);
        size += bytes.length;
      }
      if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
      const when = new Date(receivedAt);
      futimesSync(fd, when, when);
      const open = fd;
      fd = undefined;
      closeSync(open);
      return { size, written: Promise.resolve() };
    } catch (e) {
      if (fd !== undefined) {
        try {
          closeSync(fd);
        } catch {
          // The write's own failure is the one to report; the file goes below.
        }
      }
      await fsp.rm(tmp, { force: true });
      throw e;
    }
  };

  /** Dovecot's `<file>.lock` dotlock (O_EXCL), so a running Dovecot and we never interleave. */
  const withDotlock = async <A>(file: string, f: () => Promise<A>): Promise<A> => {
    const lockPath = `${file}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await (await fsp.open(lockPath, 'wx', FILE_MODE)).close();
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== 'EEXIST') throw e;
        const st = await statOrMissing(lockPath);
        if (st !== undefined && Date.now() - st.mtimeMs > 60_000) await fsp.rm(lockPath, { force: true }); // stale (Dovecot: 60 s)
        if (Date.now() > deadline) throw { _tag: 'SourceUnavailable', op: 'writeMessage', key: file, message: `${lockPath} is held by another process` };
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    try {
      return await f();
    } finally {
      await fsp.rm(lockPath, { force: true });
    }
  };

  // The directory of each folder written to, by account and path (a restore writes thousands of
  // messages into a few folders).
  const folderDirs = new Map<string, string>();
  const folderDirOf = (account: AccountId, folderPath: string): TE.TaskEither<SourceError, string> => {
    const known = folderDirs.get(`${account}\0${folderPath}`);
    if (known !== undefined) return TE.right(known);
    return pipe(
      folderKeyOf('writeMessage', folderPath),
      TE.map((key) => {
        const dir = folderDir(accountPaths(root, account).maildir, key);
        folderDirs.set(`${account}\0${folderPath}`, dir);
        return dir;
      }),
    );
  };

  /**
   * A new message in the folder: its file made in tmp/ by `makeFile` (complete once its
   * `written` settled) and held for the group commit, which renames it into cur/ with its flags.
   */
  const holdMessage = (
    account: AccountId,
    folderPath: string,
    flags: ReadonlyArray<string>,
    makeFile: (tmp: string) => TmpFile | Promise<TmpFile>,
  ): TE.TaskEither<SourceError, { readonly sourceKey: string }> =>
    pipe(
      folderDirOf(account, folderPath),
      TE.flatMap((dir) =>
        attempt('writeMessage', `${account}/${folderPath}`, async () => {
          if (!readyDirs.has(dir) && (await statOrMissing(join(dir, 'cur'))) === undefined) {
            throw { _tag: 'SourceNotFound', op: 'writeMessage', key: `${account}/${folderPath}`, message: `folder ${folderPath} of ${account} does not exist (ensureFolder first)` };
          }
          if (!readyDirs.has(dir)) await mkdirs(join(dir, 'tmp'));
          readyDirs.add(dir);
          const letters = await lettersFor(dir, flags, `${account}/${folderPath}`);
          const base = uniqueBase();
          // Concatenated: `dir` is normalized already, and path.join on every message was a
          // measurable share of a restore's main-thread time.
          const tmp = `${dir}/tmp/${base}`;
          const { size, written } = await makeFile(tmp);
          const sourceKey = `${base},S=${size}`;
          held.push({ tmp, final: `${dir}/cur/${sourceKey}:2,${letters}`, written });
          heldBytes += size;
          const groupMessages = (await syncfsMode()) ? GROUP_COMMIT_MESSAGES_SYNCFS : GROUP_COMMIT_MESSAGES;
          if (held.length >= groupMessages || heldBytes >= GROUP_COMMIT_BYTES) await commitHeld();
          return { sourceKey };
        }),
      ),
    );

  const writeMessage = (
    account: AccountId,
    folderPath: string,
    message: { readonly content: MessageContent; readonly flags: ReadonlyArray<string>; readonly receivedAt: number },
  ): TE.TaskEither<SourceError, { readonly sourceKey: string }> =>
    holdMessage(account, folderPath, message.flags, (tmp) => writeTmpFile(tmp, message.content, message.receivedAt));

  const writeMessageFile = (account: AccountId, folderPath: string, message: MessageFile): TE.TaskEither<SourceError, { readonly sourceKey: string }> =>
    holdMessage(account, folderPath, message.flags, (tmp) => fillTmpFile(tmp, message));

  const listMessages = (account: AccountId, folderPath: string): TE.TaskEither<SourceError, ReadonlyArray<MessageEntry>> =>
    pipe(
      folderKeyOf('listMessages', folderPath),
      TE.flatMap((key) =>
        attempt('listMessages', `${account}/${folderPath}`, async () => {
          const { maildir } = accountPaths(root, account);
          if ((await statOrMissing(folderDir(maildir, key))) === undefined) return [];
          return listFolderEntries(maildir, key, undefined);
        }),
      ),
    );

  const accountHasContent = (account: AccountId): TE.TaskEither<SourceError, boolean> =>
    attempt('accountHasContent', account, async () => {
      const { maildir } = accountPaths(root, account);
      const entries = await fsp.readdir(maildir, { withFileTypes: true }).catch((e: unknown) => {
        if (isNotFound(e)) return undefined;
        throw e;
      });
      if (entries === undefined) return false;
      if (entries.some((d) => d.isDirectory() && isFolderDirName(d.name))) return true;
      for (const sub of ['cur', 'new']) {
        if (((await readdirOrMissing(join(maildir, sub))) ?? []).some((n) => !n.startsWith('.'))) return true;
      }
      return false;
    });

  const flush = (): TE.TaskEither<SourceError, void> => attempt('flush', root, commitHeld);

  return { uri: `maildir://${root}`, accountHasContent, ensureAccount, ensureFolder, writeMessage, writeMessageFile, listMessages, flush };
};

const isSourceError = (e: unknown): e is SourceError =>
  typeof e === 'object' && e !== null && '_tag' in e && 'op' in e && typeof (e as { _tag: unknown })._tag === 'string';
