import { mkdirSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import fs from 'node:fs';
import { join } from 'node:path';
import type { AccountId } from '@zxbackup/item-store';
import type { ScanEvent } from '../source';
import { makeMaildirSource } from './maildir-source';
import { age, makeTempDirs, mkFolder, putMessage, readAll, run, runLeft } from './spec-support';

const ALICE = 'alice@alpha.test' as AccountId;
const HOUR_AGO = Date.now() - 3600_000;
const T1 = Date.UTC(2024, 0, 2, 3, 4, 5);
const T2 = Date.UTC(2023, 5, 6, 7, 8, 9);

const tmp = makeTempDirs();
afterEach(tmp.cleanup);

/** alice: INBOX (2 messages, one in new/), Sent, Projects/2026 with keywords, Entwürfe (empty, no cur/). */
const buildTree = (): { root: string; maildir: string } => {
  const root = tmp.make();
  const maildir = join(root, 'alpha.test', 'alice', 'Maildir');
  mkFolder(maildir, '');
  putMessage(join(maildir, 'cur', '1700000001.M1P1.host,S=5:2,FS'), 'hello', T1);
  putMessage(join(maildir, 'new', '1700000002.M2P1.host'), 'new mail!', T2);
  mkFolder(maildir, '.Sent');
  putMessage(join(maildir, '.Sent', 'cur', '1700000003.M3P1.host:2,RS'), 'sent', T1);
  mkFolder(maildir, '.Projects.2026');
  writeFileSync(join(maildir, '.Projects.2026', 'dovecot-keywords'), '0 $Forwarded\n1 Urgent\n2 $label1\n');
  putMessage(join(maildir, '.Projects.2026', 'cur', '1700000004.M4P1.host,S=3,W=4:2,DPTac'), 'abc', T2);
  mkdirSync(join(maildir, '.Entw&APw-rfe'));
  writeFileSync(join(maildir, '.Entw&APw-rfe', 'maildirfolder'), '');
  writeFileSync(join(maildir, 'subscriptions'), 'V\t2\n\nSent\nProjects\t2026\n');
  writeFileSync(join(maildir, 'dovecot-uidlist'), '3 V1 N1\n');
  putMessage(join(maildir, 'tmp', 'half-written'), 'x', T1);
  mkdirSync(join(root, 'beta.test', 'dave', 'Maildir', 'cur'), { recursive: true });
  mkdirSync(join(root, 'beta.test', 'not-an-account'), { recursive: true });
  return { root, maildir };
};

const collect = async (source: ReturnType<typeof makeMaildirSource>, cursor: unknown, full = false) => {
  const events: ScanEvent[] = [];
  const r = await run(
    source.scanAccount(ALICE, cursor, { full }, async (e) => {
      events.push(e);
    }),
  );
  return { events, cursor: r.cursor };
};

const kinds = (events: ReadonlyArray<ScanEvent>): string[] => events.map((e) => (e.type === 'account' ? 'account' : `${e.type}:${e.folderKey}`));

/** Age every folder directory so that a cursor may trust it. */
const ageAll = (maildir: string): void => {
  for (const key of ['', '.Sent', '.Projects.2026', '.Entw&APw-rfe']) {
    for (const sub of ['cur', 'new']) {
      try {
        age(join(maildir, key, sub), HOUR_AGO);
      } catch {
        // the empty folder has no cur/ new/
      }
    }
  }
  age(join(maildir, '.Projects.2026', 'dovecot-keywords'), HOUR_AGO);
};

describe('maildir source', () => {
  it('lists accounts from the tree', async () => {
    const { root } = buildTree();
    expect(await run(makeMaildirSource({ root }).listAccounts())).toEqual(['alice@alpha.test', 'dave@beta.test']);
    expect((await runLeft(makeMaildirSource({ root: join(root, 'nope') }).listAccounts()))._tag).toBe('SourceUnavailable');
  });

  it('lists accounts and account items from a passwd-file, with clear errors', async () => {
    const { root } = buildTree();
    const passwdFile = join(root, 'users');
    writeFileSync(passwdFile, `alice@alpha.test:{PLAIN}pw::::::userdb_quota_rule=*:storage=1M\nerin@beta.test:{PLAIN}e\n`);
    const source = makeMaildirSource({ root, passwdFile });
    expect(await run(source.listAccounts())).toEqual(['alice@alpha.test', 'erin@beta.test']);
    const { events } = await collect(source, undefined);
    expect(events[0]).toEqual({
      type: 'account',
      meta: { kind: 'account', address: ALICE, status: 'active', passwordHash: '{PLAIN}pw', quotaBytes: 1024 ** 2, sourceKey: ALICE, settings: { 'passwd.extra.userdb_quota_rule': '*:storage=1M' } },
    });
    // erin has no Maildir yet: an account with no folders, not an error.
    expect(await run(source.scanAccount('erin@beta.test' as AccountId, undefined, { full: true }, async () => undefined))).toBeDefined();
    expect((await runLeft(source.scanAccount('zed@beta.test' as AccountId, undefined, { full: true }, async () => undefined)))._tag).toBe('SourceNotFound');
    writeFileSync(passwdFile, 'alice@alpha.test:{PLAIN}pw\nnot an address:x\n');
    expect(await runLeft(source.listAccounts())).toMatchObject({ _tag: 'SourceInvalid', key: `${passwdFile}:2` });
  });

  it('reports the account, then every folder with flags, keywords, dates, sizes and locators', async () => {
    const { root } = buildTree();
    const source = makeMaildirSource({ root });
    const { events } = await collect(source, undefined);
    expect(kinds(events)).toEqual(['account', 'folder:', 'folder:.Entw&APw-rfe', 'folder:.Projects.2026', 'folder:.Sent']);
    const folders = new Map(events.flatMap((e) => (e.type === 'folder' ? [[e.folderKey, e] as const] : [])));
    expect(folders.get('')?.meta).toEqual({ kind: 'folder', path: 'INBOX', view: 'message', sourceKey: '', subscribed: false });
    expect(folders.get('')?.entries).toEqual([
      { sourceKey: '1700000001.M1P1.host,S=5', flags: ['\\Flagged', '\\Seen'], receivedAt: T1, size: 5, locator: 'cur/1700000001.M1P1.host,S=5:2,FS' },
      { sourceKey: '1700000002.M2P1.host', flags: [], receivedAt: T2, size: 9, locator: 'new/1700000002.M2P1.host' },
    ]);
    expect(folders.get('.Projects.2026')?.meta).toMatchObject({ path: 'Projects/2026', subscribed: true });
    expect(folders.get('.Projects.2026')?.entries).toEqual([
      {
        sourceKey: '1700000004.M4P1.host,S=3,W=4',
        flags: ['$Forwarded', '$label1', '\\Deleted', '\\Draft'],
        receivedAt: T2,
        size: 3,
        locator: '.Projects.2026/cur/1700000004.M4P1.host,S=3,W=4:2,DPTac',
      },
    ]);
    expect(folders.get('.Entw&APw-rfe')).toMatchObject({ meta: { path: 'Entwürfe', subscribed: false }, entries: [] });
    expect(folders.get('.Sent')?.entries.map((e) => e.flags)).toEqual([['\\Answered', '\\Seen']]);
    const listed = await run(source.listFolder(ALICE, '.Sent'));
    expect(listed).toEqual({ meta: folders.get('.Sent')?.meta, entries: folders.get('.Sent')?.entries });
    expect((await runLeft(source.listFolder(ALICE, '.Nope')))._tag).toBe('SourceNotFound');
    expect((await runLeft(source.listFolder(ALICE, '../x')))._tag).toBe('SourceInvalid');
  });

  it('skips unchanged folders with a cursor and lists changed ones again', async () => {
    const { root, maildir } = buildTree();
    ageAll(maildir);
    const source = makeMaildirSource({ root });
    const first = await collect(source, undefined);
    const second = await collect(source, first.cursor);
    expect(kinds(second.events)).toEqual(['account', 'folderUnchanged:', 'folderUnchanged:.Entw&APw-rfe', 'folderUnchanged:.Projects.2026', 'folderUnchanged:.Sent']);

    // A flag change (rename in cur/) and a new folder.
    renameSync(join(maildir, '.Sent', 'cur', '1700000003.M3P1.host:2,RS'), join(maildir, '.Sent', 'cur', '1700000003.M3P1.host:2,FRS'));
    mkFolder(maildir, '.Archive');
    const third = await collect(source, second.cursor);
    expect(kinds(third.events)).toEqual(['account', 'folderUnchanged:', 'folder:.Archive', 'folderUnchanged:.Entw&APw-rfe', 'folderUnchanged:.Projects.2026', 'folder:.Sent']);
    const sent = third.events.find((e) => e.type === 'folder' && e.folderKey === '.Sent');
    expect(sent?.type === 'folder' && sent.entries.map((e) => [e.sourceKey, e.flags])).toEqual([['1700000003.M3P1.host', ['\\Answered', '\\Flagged', '\\Seen']]]);

    // A subscription change alone changes the folder's item.
    writeFileSync(join(maildir, 'subscriptions'), 'V\t2\n\nProjects\t2026\n');
    const fourth = await collect(source, third.cursor);
    expect(kinds(fourth.events).filter((k) => k.startsWith('folder:'))).toEqual(['folder:.Archive', 'folder:.Sent']); // .Archive: still too fresh to trust

    // full ignores the cursor; a garbage cursor means a full scan, not a crash.
    expect(kinds((await collect(source, fourth.cursor, true)).events).filter((k) => k.startsWith('folderUnchanged'))).toEqual([]);
    expect(kinds((await collect(source, { v: 99, junk: true })).events).filter((k) => k.startsWith('folderUnchanged'))).toEqual([]);
    expect(kinds((await collect(source, 'not even an object')).events)).toHaveLength(6);
  });

  it('does not trust a directory time close to the previous scan (a change in the same tick)', async () => {
    const { root, maildir } = buildTree();
    ageAll(maildir);
    let now = Date.now();
    const source = makeMaildirSource({ root, clock: () => now });
    // INBOX cur/ changed a moment before the scan: its time is within the unsafe window.
    const inboxCur = join(maildir, 'cur');
    age(inboxCur, now - 500);
    const first = await collect(source, undefined);
    // Another message lands in the same tick; on a coarse-timestamp file system the directory
    // time would not move, which is what restoring it simulates (ctime moves; check both paths).
    const before = statSync(inboxCur).mtimeMs;
    putMessage(join(inboxCur, '1700000009.M9P1.host:2,S'), 'late', T1);
    age(inboxCur, before);
    now += 10_000;
    const second = await collect(source, first.cursor);
    const inbox = second.events.find((e) => e.type === 'folder' && e.folderKey === '');
    expect(inbox?.type === 'folder' && inbox.entries.map((e) => e.sourceKey)).toContain('1700000009.M9P1.host');

    // Once the directory time is well before the last scan it is trusted again.
    now += 10_000;
    const third = await collect(source, second.cursor);
    expect(kinds(third.events)).toContain('folderUnchanged:');
  });

  it('trusts nothing from a cursor for a directory time within 2 s of its scan, even when equal', async () => {
    const { root, maildir } = buildTree();
    ageAll(maildir);
    const now = Date.now();
    const source = makeMaildirSource({ root, clock: () => now });
    const first = await collect(source, undefined);
    // The same signature as before, but the cursor was taken right after the directory time.
    const cursor = first.cursor as { v: 1; at: number; folders: Record<string, unknown> };
    const twisted = { ...cursor, at: HOUR_AGO + 1000 };
    const second = await collect(source, twisted);
    // Entwürfe has neither cur/ nor new/: nothing there can change unseen.
    expect(kinds(second.events).filter((k) => k.startsWith('folder:'))).toEqual(['folder:', 'folder:.Projects.2026', 'folder:.Sent']);
  });

  it('skips files that vanish during listing and finds renamed ones by base name', async () => {
    const { root, maildir } = buildTree();
    const source = makeMaildirSource({ root });
    const cur = join(maildir, 'cur');
    for (let i = 0; i < 200; i++) putMessage(join(cur, `17000001${String(i).padStart(2, '0')}.M${i}P9.host:2,S`), `m${i}`, T1);
    const realStat = fs.statSync;
    let calls = 0;
    const spy = jest.spyOn(fs, 'statSync').mockImplementation(((p: fs.PathLike, opts?: fs.StatSyncOptions) => {
      if (String(p).includes('P9.host') && ++calls === 1) {
        // While the listing runs, one message is deleted and another gets a new flag.
        unlinkSync(join(cur, '1700000100.M0P9.host:2,S'));
        renameSync(join(cur, '1700000101.M1P9.host:2,S'), join(cur, '1700000101.M1P9.host:2,RS'));
      }
      return realStat(p, opts);
    }) as typeof fs.statSync);
    try {
      const { entries } = await run(source.listFolder(ALICE, ''));
      const keys = entries.map((e) => e.sourceKey);
      expect(keys).not.toContain('1700000100.M0P9.host');
      expect(entries.find((e) => e.sourceKey === '1700000101.M1P9.host')?.flags).toEqual(['\\Answered', '\\Seen']);
      expect(entries).toHaveLength(2 + 199);
      expect(calls).toBeGreaterThan(0);
    } finally {
      spy.mockRestore();
    }
  });

  it('streams a message, also after it was renamed or moved, and fails cleanly when it is gone', async () => {
    const { root, maildir } = buildTree();
    const source = makeMaildirSource({ root });
    const { entries } = await run(source.listFolder(ALICE, ''));
    const fresh = entries.find((e) => e.locator.startsWith('new/'));
    if (fresh === undefined) throw new Error('no message in new/');
    expect((await readAll(await run(source.openBlob(ALICE, fresh.locator)))).toString()).toBe('new mail!');
    // Dovecot moves it to cur/ with flags, then the user moves it to another folder.
    renameSync(join(maildir, 'new', '1700000002.M2P1.host'), join(maildir, '.Sent', 'cur', '1700000002.M2P1.host:2,S'));
    expect((await readAll(await run(source.openBlob(ALICE, fresh.locator)))).toString()).toBe('new mail!');
    // Read without changing its access time (older than its mtime: a plain read would set it).
    const moved = join(maildir, '.Sent', 'cur', '1700000002.M2P1.host:2,S');
    const atime = new Date(Date.UTC(2020, 0, 1));
    utimesSync(moved, atime, statSync(moved).mtime);
    expect((await readAll(await run(source.openBlob(ALICE, fresh.locator)))).toString()).toBe('new mail!');
    expect(statSync(moved).atimeMs).toBe(atime.getTime());
    rmSync(moved);
    expect((await runLeft(source.openBlob(ALICE, fresh.locator)))._tag).toBe('SourceNotFound');
    expect((await runLeft(source.openBlob(ALICE, '../../etc/passwd')))._tag).toBe('SourceInvalid');
    expect((await runLeft(source.openBlob(ALICE, '.Sent/../../x/cur/y')))._tag).toBe('SourceInvalid');
  });
});
