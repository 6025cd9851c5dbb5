import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { join } from 'node:path';
import type { AccountId, AccountMeta, FolderMeta } from '@zxbackup/item-store';
import type { BlobFile } from '@zxbackup/volume-contract';
import type { ScanEvent } from '../source';
import { makeMaildirSource } from './maildir-source';
import { makeMaildirTarget, OFF_THREAD_MAX_BYTES } from './maildir-target';
import { parsePasswdFile } from './passwd-file';
import { syncfsUsable } from './syncfs';
import { expectRight, makeTempDirs, readAll, run, runLeft, streamOf } from './spec-support';

const BOB = 'bob@alpha.test' as AccountId;
const tmp = makeTempDirs();
afterEach(tmp.cleanup);

const account: AccountMeta = {
  kind: 'account',
  address: BOB,
  status: 'active',
  settings: { 'passwd.extra.userdb_quota_rule': '*:storage=2G' },
  passwordHash: '{SHA512-CRYPT}$6$salt$hash',
};
const folder = (path: string, subscribed = true): FolderMeta => ({ kind: 'folder', path, view: 'message', subscribed });

const MESSAGES = [
  { path: 'INBOX', flags: ['\\Seen', '\\Flagged'], receivedAt: Date.UTC(2024, 1, 3, 4, 5, 6), body: 'Subject: one\r\n\r\nfirst\r\n' },
  { path: 'INBOX', flags: [], receivedAt: Date.UTC(2020, 0, 1), body: 'Subject: two\r\n\r\n' + 'x'.repeat(100_000) },
  { path: 'Entwürfe', flags: ['\\Draft', '$Forwarded', 'Urgent'], receivedAt: Date.UTC(2025, 5, 6), body: 'Subject: draft\r\n\r\n' },
  { path: 'Projects/2026', flags: ['\\Answered', '\\Deleted', '$label1', 'Urgent'], receivedAt: Date.UTC(2026, 0, 1), body: 'Subject: plan\r\n\r\nü\r\n' },
];

describe('maildir restore target', () => {
  it('writes messages that the source reads back with the same bytes, flags, keywords, date and folder', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    expect(await run(target.accountHasContent(BOB))).toBe(false);
    await run(target.ensureAccount(BOB, account));
    expect(await run(target.accountHasContent(BOB))).toBe(false);
    for (const path of ['INBOX', 'Entwürfe', 'Projects/2026']) await run(target.ensureFolder(BOB, path, folder(path, path !== 'Entwürfe')));
    expect(await run(target.accountHasContent(BOB))).toBe(true);
    const keys: string[] = [];
    for (const m of MESSAGES) {
      const r = await run(target.writeMessage(BOB, m.path, { content: streamOf(Buffer.from(m.body)), flags: m.flags, receivedAt: m.receivedAt }));
      keys.push(r.sourceKey);
    }
    expect(new Set(keys).size).toBe(MESSAGES.length);
    // Held in tmp/ until the flush: nothing half-visible in cur/.
    expect(await run(target.listMessages(BOB, 'INBOX'))).toEqual([]);
    await run(target.flush?.() ?? TE.right(undefined));
    expect(readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'tmp'))).toEqual([]);

    const source = makeMaildirSource({ root });
    const events: ScanEvent[] = [];
    await run(source.scanAccount(BOB, undefined, { full: true }, async (e) => void events.push(e)));
    const byPath = new Map(events.flatMap((e) => (e.type === 'folder' ? [[e.meta.path, e] as const] : [])));
    expect([...byPath.keys()].sort()).toEqual(['Entwürfe', 'INBOX', 'Projects/2026']);
    expect(byPath.get('Entwürfe')?.folderKey).toBe('.Entw&APw-rfe');
    expect(byPath.get('Projects/2026')?.meta.subscribed).toBe(true);
    expect(byPath.get('Entwürfe')?.meta.subscribed).toBe(false);
    for (const [i, m] of MESSAGES.entries()) {
      const entry = byPath.get(m.path)?.entries.find((e) => e.sourceKey === keys[i]);
      expect(entry).toMatchObject({ flags: [...m.flags].sort(), receivedAt: m.receivedAt, size: Buffer.byteLength(m.body) });
      if (entry === undefined) continue;
      expect((await readAll(await run(source.openBlob(BOB, entry.locator)))).toString()).toBe(m.body);
    }
    const inbox = await run(target.listMessages(BOB, 'INBOX'));
    expect(inbox.map((e) => e.sourceKey).sort()).toEqual([keys[0], keys[1]].sort());
    expect(await run(target.listMessages(BOB, 'Nowhere'))).toEqual([]);
    // $Forwarded goes to a keyword letter: Dovecot ignores the P flag.
    const projects = readFileSync(join(root, 'alpha.test', 'bob', 'Maildir', '.Projects.2026', 'dovecot-keywords'), 'utf8');
    expect(projects).toBe('0 $label1\n1 Urgent\n');
    expect(statSync(join(root, 'alpha.test', 'bob', 'Maildir', '.Projects.2026', 'maildirfolder')).isFile()).toBe(true);
  });

  it('makes written messages durable and visible in groups of 256 when it fsyncs, the rest at the flush', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root, syncfs: 'never' });
    await run(target.ensureAccount(BOB, account));
    const keys = new Set<string>();
    for (let i = 0; i < 300; i += 1) {
      keys.add((await run(target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`)), flags: ['\\Seen'], receivedAt: i * 1000 }))).sourceKey);
    }
    const cur = join(root, 'alpha.test', 'bob', 'Maildir', 'cur');
    expect(readdirSync(cur)).toHaveLength(256);
    // The last 44 are handed to the file writer's thread: they land in tmp/, not yet in cur/.
    const inTmp = (): number => readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'tmp')).length;
    for (let i = 0; i < 200 && inTmp() < 44; i++) await new Promise((r) => setTimeout(r, 10));
    expect(inTmp()).toBe(44);
    expect(readdirSync(cur)).toHaveLength(256);
    await run(target.flush?.() ?? TE.right(undefined));
    const listed = await run(target.listMessages(BOB, 'INBOX'));
    expect(new Set(listed.map((e) => e.sourceKey))).toEqual(keys);
    expect(listed.every((e) => e.flags.join() === '\\Seen')).toBe(true);
    expect(readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'tmp'))).toEqual([]);
  });

  it('a message whose file cannot be created fails the flush, naming it; nothing of its group reaches cur/', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root, syncfs: 'never' });
    await run(target.ensureAccount(BOB, account));
    const write = (i: number) => target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from(`Subject: ${i}\r\n\r\nbody ${i}\r\n`)), flags: [], receivedAt: i * 1000 });
    await run(write(1));
    await run(target.flush?.() ?? TE.right(undefined));
    const maildir = join(root, 'alpha.test', 'bob', 'Maildir');
    rmSync(join(maildir, 'tmp'), { recursive: true }); // the next files cannot be created
    await run(write(2)); // handed over: the failure comes with the group
    const flushed = await (target.flush?.() ?? TE.right(undefined))();
    expect(E.isLeft(flushed) && flushed.left.message).toMatch(/tmp\//);
    expect(readdirSync(join(maildir, 'cur'))).toHaveLength(1);
  });

  describe('writeMessageFile (the file path: a volume writes the file)', () => {
    /** A fill as a volume does it: a new file (exclusively), its bytes, mode and mtime. */
    const writeFile = (file: BlobFile, body: Buffer): void => {
      writeFileSync(file.path, body, { flag: 'wx', mode: file.mode });
      utimesSync(file.path, file.mtimeMs / 1000, file.mtimeMs / 1000);
    };
    const deferred = (): { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } => {
      let resolve = (): void => undefined;
      let reject = (_e: Error): void => undefined;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    };

    it('names a new file in tmp/ for fill, does not wait for it, and commits it into cur/ with its flags, size and date', async () => {
      const root = tmp.make();
      const target = makeMaildirTarget({ root });
      await run(target.ensureAccount(BOB, account));
      await run(target.ensureFolder(BOB, 'Projects/2026', folder('Projects/2026')));
      const maildir = join(root, 'alpha.test', 'bob', 'Maildir');
      const asked: BlobFile[] = [];
      const pending: Array<() => void> = [];
      const keys: string[] = [];
      for (const m of [MESSAGES[0], MESSAGES[3]]) {
        if (m === undefined) continue;
        const body = Buffer.from(m.body);
        const done = deferred();
        const fill = (file: BlobFile): Promise<void> => {
          asked.push(file);
          // Fresh: nothing there yet; the volume creates it.
          expect(existsSync(file.path)).toBe(false);
          pending.push(() => {
            writeFile(file, body);
            done.resolve();
          });
          return done.promise;
        };
        const r = await run(target.writeMessageFile?.(BOB, m.path, { size: body.length, flags: m.flags, receivedAt: m.receivedAt, fill }) ?? TE.left('no writeMessageFile'));
        keys.push(r.sourceKey);
      }
      // Both returned while their files are still to be written.
      expect(asked).toHaveLength(2);
      expect(asked[0]?.path.startsWith(`${maildir}/tmp/`)).toBe(true);
      expect(asked[1]?.path.startsWith(`${join(maildir, '.Projects.2026')}/tmp/`)).toBe(true);
      expect(asked.map((f) => [f.mode, f.mtimeMs])).toEqual([
        [0o600, MESSAGES[0]?.receivedAt],
        [0o600, MESSAGES[3]?.receivedAt],
      ]);
      expect(keys.map((k) => k.split(',S=')[1])).toEqual([String(Buffer.byteLength(MESSAGES[0]?.body ?? '')), String(Buffer.byteLength(MESSAGES[3]?.body ?? ''))]);
      // The flush waits for the fills.
      let flushed = false;
      const flushing = (target.flush?.() ?? TE.right(undefined))().then((r) => ((flushed = true), r));
      await new Promise((r) => setTimeout(r, 20));
      expect(flushed).toBe(false);
      expect(readdirSync(join(maildir, 'cur'))).toEqual([]);
      for (const p of pending) p();
      expectRight(await flushing);
      expect(readdirSync(join(maildir, 'tmp'))).toEqual([]);
      expect(readdirSync(join(maildir, 'cur'))).toEqual([`${keys[0]}:2,FS`]);
      const inbox = join(maildir, 'cur', `${keys[0]}:2,FS`);
      expect(readFileSync(inbox, 'utf8')).toBe(MESSAGES[0]?.body);
      expect(statSync(inbox).mtimeMs).toBe(MESSAGES[0]?.receivedAt);
      // Keywords get letters from the folder's table, as writeMessage gives them.
      const [entry] = await run(target.listMessages(BOB, 'Projects/2026'));
      expect(entry).toMatchObject({ sourceKey: keys[1], flags: [...(MESSAGES[3]?.flags ?? [])].sort(), receivedAt: MESSAGES[3]?.receivedAt, size: Buffer.byteLength(MESSAGES[3]?.body ?? '') });
      expect(readFileSync(join(maildir, '.Projects.2026', 'dovecot-keywords'), 'utf8')).toBe('0 $label1\n1 Urgent\n');
    });

    it('a fill that fails fails the flush once its group settled; nothing of the group is renamed into cur/', async () => {
      const root = tmp.make();
      const target = makeMaildirTarget({ root, syncfs: 'never' });
      await run(target.ensureAccount(BOB, account));
      const maildir = join(root, 'alpha.test', 'bob', 'Maildir');
      const fine = (file: BlobFile): Promise<void> => Promise.resolve(writeFile(file, Buffer.from('fine\r\n')));
      await run(target.writeMessageFile?.(BOB, 'INBOX', { size: 6, flags: [], receivedAt: 0, fill: fine }) ?? TE.left('no writeMessageFile'));
      // A fill that wrote part of its file, then failed (a volume that does not clean up).
      const broken = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
      await run(
        target.writeMessageFile?.(BOB, 'INBOX', {
          size: 100,
          flags: ['\\Seen'],
          receivedAt: 0,
          fill: (file) => {
            writeFile(file, Buffer.from('part'));
            return Promise.reject(broken);
          },
        }) ?? TE.left('no writeMessageFile'),
      );
      // A slow one of the same group: the flush reports only once it is done.
      const slow = deferred();
      let slowDone = false;
      await run(
        target.writeMessageFile?.(BOB, 'INBOX', {
          size: 6,
          flags: [],
          receivedAt: 0,
          fill: (file) => {
            setTimeout(() => {
              writeFile(file, Buffer.from('slow\r\n'));
              slowDone = true;
              slow.resolve();
            }, 30);
            return slow.promise;
          },
        }) ?? TE.left('no writeMessageFile'),
      );
      const flushed = await (target.flush?.() ?? TE.right(undefined))();
      expect(slowDone).toBe(true);
      expect(E.isLeft(flushed) && flushed.left).toMatchObject({ _tag: 'SourceIOError', op: 'flush', cause: { code: 'ENOSPC' } });
      expect(readdirSync(join(maildir, 'cur'))).toEqual([]);
      // What the fills wrote stays in tmp/ (Dovecot removes it after 36 hours), none of it renamed.
      expect(readdirSync(join(maildir, 'tmp')).map((n) => readFileSync(join(maildir, 'tmp', n), 'utf8')).sort()).toEqual(['fine\r\n', 'part', 'slow\r\n']);
      expect(await run(target.listMessages(BOB, 'INBOX'))).toEqual([]);
    });
  });

  it('a message larger than the file writer takes streams into its file here, whole', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    await run(target.ensureAccount(BOB, account));
    const body = Buffer.concat([Buffer.from('Subject: big\r\n\r\n'), randomBytes(OFF_THREAD_MAX_BYTES + 12345)]);
    const chunks = Array.from({ length: Math.ceil(body.length / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536));
    const { sourceKey } = await run(target.writeMessage(BOB, 'INBOX', { content: Readable.from(chunks), flags: ['\\Seen'], receivedAt: 1_700_000_000_000 }));
    await run(target.flush?.() ?? TE.right(undefined));
    const [entry] = await run(target.listMessages(BOB, 'INBOX'));
    expect(entry).toMatchObject({ sourceKey, size: body.length, receivedAt: 1_700_000_000_000, flags: ['\\Seen'] });
    const file = readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'cur'))[0] ?? '';
    expect(readFileSync(join(root, 'alpha.test', 'bob', 'Maildir', 'cur', file)).equals(body)).toBe(true);
  });

  it('with one syncfs per group, groups close by size (128 MB), not after 256 messages', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    await run(target.ensureAccount(BOB, account));
    const tmpDir = join(root, 'alpha.test', 'bob', 'Maildir', 'tmp');
    const cur = join(root, 'alpha.test', 'bob', 'Maildir', 'cur');
    const write = async (body: Buffer): Promise<void> => void (await run(target.writeMessage(BOB, 'INBOX', { content: streamOf(body), flags: [], receivedAt: 0 })));
    for (let i = 0; i < 300; i += 1) await write(Buffer.from(`Subject: ${i}\r\n\r\n`));
    const usable = await syncfsUsable(root);
    // Where syncfs is not as strong as fsync (or not Linux), the target fsyncs in groups of 256.
    expect(readdirSync(cur)).toHaveLength(usable ? 0 : 256);
    // 128 messages of 1 MB close a group in either mode.
    const mb = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 128; i += 1) await write(mb);
    expect(readdirSync(tmpDir)).toEqual([]);
    expect(readdirSync(cur)).toHaveLength(428);
    await run(target.flush?.() ?? TE.right(undefined));
    expect(readdirSync(cur)).toHaveLength(428);
  });

  it('falls back to fsyncs when the sync program is missing', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    await run(target.ensureAccount(BOB, account));
    for (let i = 0; i < 100; i += 1) await run(target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from(`m${i}\r\n`)), flags: [], receivedAt: 0 }));
    const path = process.env['PATH'];
    process.env['PATH'] = tmp.make(); // an empty directory: no `sync` to run
    try {
      await run(target.flush?.() ?? TE.right(undefined));
    } finally {
      process.env['PATH'] = path;
    }
    expect(readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'cur'))).toHaveLength(100);
    expect(readdirSync(join(root, 'alpha.test', 'bob', 'Maildir', 'tmp'))).toEqual([]);
  });

  it('keeps keyword letters another process added to dovecot-keywords meanwhile', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    await run(target.ensureAccount(BOB, account));
    const maildir = join(root, 'alpha.test', 'bob', 'Maildir');
    const write = async (flags: string[]): Promise<void> => void (await run(target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from(`${flags.join()}\r\n`)), flags, receivedAt: 0 })));
    await write(['work']);
    // Dovecot names a keyword of its own (it only ever appends to the table).
    writeFileSync(join(maildir, 'dovecot-keywords'), '0 work\n1 $Junk\n');
    await write(['work', '\\Seen']);
    await write(['todo']);
    expect(readFileSync(join(maildir, 'dovecot-keywords'), 'utf8')).toBe('0 work\n1 $Junk\n2 todo\n');
    await run(target.flush?.() ?? TE.right(undefined));
    const flags = (await run(target.listMessages(BOB, 'INBOX'))).map((e) => e.flags.join(' ')).sort();
    expect(flags).toEqual(['\\Seen work', 'todo', 'work']);
  });

  it('refuses a 27th keyword in a folder and a folder name Maildir++ cannot hold', async () => {
    const root = tmp.make();
    const target = makeMaildirTarget({ root });
    await run(target.ensureAccount(BOB, account));
    const many = Array.from({ length: 26 }, (_, i) => `kw${i}`);
    await run(target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from('a\r\n')), flags: many, receivedAt: 0 }));
    const e = await runLeft(target.writeMessage(BOB, 'INBOX', { content: streamOf(Buffer.from('b\r\n')), flags: ['kw27'], receivedAt: 0 }));
    expect(e._tag).toBe('TargetConflict');
    expect((await runLeft(target.ensureFolder(BOB, 'v1.2', folder('v1.2'))))._tag).toBe('SourceInvalid');
    expect((await runLeft(target.writeMessage(BOB, 'Missing', { content: streamOf(Buffer.from('c')), flags: [], receivedAt: 0 })))._tag).toBe('SourceNotFound');
    await run(target.flush?.() ?? TE.right(undefined));
    // Nothing half-written is left in tmp/.
    const source = makeMaildirSource({ root });
    expect((await run(source.listFolder(BOB, ''))).entries).toHaveLength(1);
  });

  it('adds the account to the passwd-file atomically and updates its hash in place', async () => {
    const root = tmp.make();
    const passwdFile = join(root, 'users');
    writeFileSync(passwdFile, 'alice@alpha.test:{PLAIN}a::::::\n', { mode: 0o640 });
    const target = makeMaildirTarget({ root, passwdFile });
    await run(target.ensureAccount(BOB, account));
    await run(target.ensureAccount(BOB, account)); // idempotent
    const entries = expectRight(parsePasswdFile(passwdFile, readFileSync(passwdFile, 'utf8')));
    expect(entries.map((x) => x.account)).toEqual(['alice@alpha.test', BOB]);
    expect(entries[1]?.meta).toMatchObject({ passwordHash: account.passwordHash, quotaBytes: 2 * 1024 ** 3 });
    expect(statSync(passwdFile).mode & 0o777).toBe(0o640);
    await run(target.ensureAccount(BOB, { ...account, passwordHash: '{PLAIN}changed' }));
    const after = readFileSync(passwdFile, 'utf8').split('\n');
    expect(after).toHaveLength(3);
    expect(after[1]).toMatch(/^bob@alpha\.test:\{PLAIN\}changed:/);
    // The source reads the account back from the same file.
    const source = makeMaildirSource({ root, passwdFile });
    expect(await run(source.listAccounts())).toEqual(['alice@alpha.test', BOB]);
  });
});
