import { readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import type { AccountId, FolderMeta } from '@zxbackup/item-store';
import type { LiveChange, MessageEntry, ScanEvent } from '../source';
import { makeMaildirSource } from './maildir-source';
import { makeMaildirTarget } from './maildir-target';
import { readAll, run, streamOf } from './spec-support';

/*
 * Against the Dovecot that tools/services/mail-stack.sh starts (eval "$(tools/services/mail-stack.sh start)").
 * Messages appended over IMAP must be read by our source exactly as Dovecot shows them; messages
 * written by our target must be shown by Dovecot exactly as written. Two fresh users per run are
 * added to Dovecot's passwd-file (Dovecot re-reads it when it changes) and removed afterwards.
 */

const HOST = process.env['IMAP_HOST'] ?? '127.0.0.1';
const PORT = Number(process.env['IMAP_PORT'] ?? 10143);
const MASTER = process.env['IMAP_MASTER_USER'] ?? 'admin';
const MASTER_PASS = process.env['IMAP_MASTER_PASS'] ?? 'master-secret';
const VMAIL = process.env['ZXB_VMAIL'] ?? '/var/vmail';
const USERS = process.env['ZXB_DOVECOT_USERS'] ?? '/var/lib/zxb-mail/dovecot/users';
const DOMAIN = 'maildir-int.test';
const stamp = `${Date.now().toString(36)}${process.pid}`;
const A = `src${stamp}@${DOMAIN}` as AccountId;
const B = `dst${stamp}@${DOMAIN}` as AccountId;
const B_PASS = 'dst-secret';

const MESSAGES = [
  { path: 'INBOX', flags: ['\\Seen', '\\Flagged'], date: new Date('2024-02-03T04:05:06Z'), body: 'Subject: one\r\nFrom: a@b.test\r\n\r\nfirst\r\n' },
  { path: 'INBOX', flags: [], date: new Date('2020-01-01T00:00:00Z'), body: 'Subject: two\r\n\r\n' + 'line of text\r\n'.repeat(3000) },
  { path: 'Entwürfe', flags: ['\\Draft', '$Forwarded', 'Urgent'], date: new Date('2025-06-07T08:09:10Z'), body: 'Subject: draft\r\n\r\nEntwurf\r\n' },
  { path: 'Projects/2026', flags: ['\\Answered', '\\Deleted', '$label1', 'Urgent'], date: new Date('2026-01-01T12:00:00Z'), body: 'Subject: plan\r\n\r\nplan 2026\r\n' },
];
const FOLDERS = ['Entwürfe', 'Projects/2026'];

const reachable = (): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: HOST, port: PORT, timeout: 3000 });
    s.once('data', (d) => {
      resolve(d.toString().startsWith('* OK'));
      s.destroy();
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      resolve(false);
      s.destroy();
    });
  });

const imap = async (user: string, pass: string): Promise<ImapFlow> => {
  const client = new ImapFlow({ host: HOST, port: PORT, secure: false, auth: { user, pass }, logger: false });
  try {
    await client.connect();
  } catch (e) {
    client.close(); // a refused login leaves the connection and its timers open otherwise
    throw e;
  }
  return client;
};

/**
 * Dovecot re-reads its passwd-file when the file's mtime (whole seconds) or size changes; a line
 * added in the same second as an earlier rewrite can be missed for up to a second. Login is
 * tried again a few times, so the test proves the line works, not how fast Dovecot notices it.
 */
const imapOnceDovecotSeesTheUser = async (user: string, pass: string): Promise<ImapFlow> => {
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      return await imap(user, pass);
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 1100));
    }
  }
  throw lastError;
};

/** Rewrite Dovecot's passwd-file without our test users (atomically, like the target does). */
const dropTestUsers = (): void => {
  const text = readFileSync(USERS, 'utf8');
  const kept = text.split('\n').filter((l) => !l.startsWith(`${A}:`) && !l.startsWith(`${B}:`));
  const st = statSync(USERS);
  writeFileSync(`${USERS}.zxb-int`, kept.join('\n'), { mode: st.mode & 0o777 });
  renameSync(`${USERS}.zxb-int`, USERS);
};

const sortFlags = (flags: Iterable<string>): string[] => [...flags].filter((f) => f !== '\\Recent').sort();

beforeAll(async () => {
  if (!(await reachable())) {
    throw new Error(`Dovecot is not reachable on ${HOST}:${PORT}: start it with eval "$(tools/services/mail-stack.sh start)" (as root)`);
  }
  statSync(USERS); // its passwd-file must be there too
});

afterAll(() => {
  dropTestUsers();
  rmSync(join(VMAIL, DOMAIN, A.split('@')[0] as string), { recursive: true, force: true });
  rmSync(join(VMAIL, DOMAIN, B.split('@')[0] as string), { recursive: true, force: true });
  try {
    rmdirSync(join(VMAIL, DOMAIN)); // only when no other run still uses it
  } catch {
    // not empty: another run's users are still there
  }
});

describe('maildir connector against Dovecot', () => {
  it('reads what Dovecot stored from IMAP APPENDs: folders, flags, keywords, INTERNALDATE and bytes', async () => {
    writeFileSync(USERS, `${A}:{PLAIN}src-secret::::::\n`, { flag: 'a' });
    const client = await imap(`${A}*${MASTER}`, MASTER_PASS);
    try {
      for (const path of FOLDERS) {
        await client.mailboxCreate(path);
        await client.mailboxSubscribe(path);
      }
      for (const m of MESSAGES) {
        const r = await client.append(m.path, Buffer.from(m.body), m.flags, m.date);
        expect(r).not.toBe(false);
      }
    } finally {
      await client.logout();
    }

    const source = makeMaildirSource({ root: VMAIL, passwdFile: USERS });
    expect(await run(source.listAccounts())).toContain(A);
    const events: ScanEvent[] = [];
    await run(source.scanAccount(A, undefined, { full: true }, async (e) => void events.push(e)));
    expect(events[0]).toMatchObject({ type: 'account', meta: { address: A, passwordHash: '{PLAIN}src-secret' } });
    const folders = new Map(events.flatMap((e) => (e.type === 'folder' ? [[e.meta.path, e] as const] : [])));
    expect(folders.get('Entwürfe')?.folderKey).toBe('.Entw&APw-rfe');
    expect(folders.get('Projects/2026')?.meta.subscribed).toBe(true);
    for (const m of MESSAGES) {
      const entries: ReadonlyArray<MessageEntry> = folders.get(m.path)?.entries ?? [];
      const bodies = await Promise.all(entries.map(async (e) => (await readAll(await run(source.openBlob(A, e.locator)))).toString()));
      // Dovecot stores LF line ends (mail_save_crlf = no) and serves CRLF over IMAP.
      const onDisk = m.body.replace(/\r\n/g, '\n');
      const entry = entries[bodies.indexOf(onDisk)];
      expect(entry).toMatchObject({ flags: sortFlags(m.flags), receivedAt: m.date.getTime(), size: Buffer.byteLength(onDisk) });
    }
    expect(folders.get('INBOX')?.entries).toHaveLength(2);
  });

  it('notices a message Dovecot delivers, within tens of milliseconds', async () => {
    const source = makeMaildirSource({ root: VMAIL, passwdFile: USERS });
    const seen: LiveChange[] = [];
    const uncertain: string[] = [];
    const watcher = await run(
      (source.watch as NonNullable<typeof source.watch>)({ onChange: (c) => seen.push(c), onUncertain: (_a, r) => uncertain.push(r) }),
    );
    const client = await imap(`${A}*${MASTER}`, MASTER_PASS);
    try {
      const latencies: number[] = [];
      for (const path of ['INBOX', 'Projects/2026']) {
        const key = path === 'INBOX' ? '' : '.Projects.2026';
        seen.splice(0);
        const before = Date.now();
        await client.append(path, Buffer.from(`Subject: live\r\n\r\n${path}\r\n`), ['\\Seen']);
        const deadline = Date.now() + 2000;
        while (!seen.some((c) => c.account === A && c.folderKey === key) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
        const hit = seen.find((c) => c.account === A && c.folderKey === key);
        expect(hit).toBeDefined();
        latencies.push((hit?.at ?? Infinity) - before);
      }
      // The event is raised before APPEND's tagged OK reaches us; allow for a slow CI box.
      expect(Math.max(...latencies)).toBeLessThan(250);
    } finally {
      await client.logout();
      await watcher.close();
    }
    expect(uncertain).toEqual([]);
  });

  it('writes messages that Dovecot serves with the same folders, flags, keywords, INTERNALDATE and bytes', async () => {
    const vmail = statSync(VMAIL);
    const target = makeMaildirTarget({ root: VMAIL, passwdFile: USERS, owner: { uid: vmail.uid, gid: vmail.gid } });
    await run(target.ensureAccount(B, { kind: 'account', address: B, status: 'active', settings: {}, passwordHash: `{PLAIN}${B_PASS}` }));
    for (const path of FOLDERS) {
      const meta: FolderMeta = { kind: 'folder', path, view: 'message', subscribed: true };
      await run(target.ensureFolder(B, path, meta));
    }
    for (const m of MESSAGES) {
      await run(target.writeMessage(B, m.path, { content: streamOf(Buffer.from(m.body)), flags: m.flags, receivedAt: m.date.getTime() }));
    }
    // The target holds messages back until its flush (group commit).
    if (target.flush !== undefined) await run(target.flush());

    // Logging in with the account's own password also proves the passwd-file line.
    const client = await imapOnceDovecotSeesTheUser(B, B_PASS);
    try {
      const listed = await client.list();
      for (const path of FOLDERS) expect(listed.find((f) => f.path === path)).toMatchObject({ subscribed: true });
      for (const path of ['INBOX', ...FOLDERS]) {
        const expected = MESSAGES.filter((m) => m.path === path);
        const lock = await client.getMailboxLock(path);
        try {
          const got: Array<{ flags: string[]; date: number; body: string }> = [];
          for await (const msg of client.fetch('1:*', { flags: true, internalDate: true, source: true })) {
            got.push({ flags: sortFlags(msg.flags ?? []), date: new Date(msg.internalDate ?? 0).getTime(), body: msg.source?.toString() ?? '' });
          }
          const want = expected.map((m) => ({ flags: sortFlags(m.flags), date: m.date.getTime(), body: m.body }));
          const order = (x: { body: string }, y: { body: string }) => (x.body < y.body ? -1 : 1);
          expect(got.sort(order)).toEqual(want.sort(order));
        } finally {
          lock.release();
        }
      }
    } finally {
      await client.logout();
    }
  });
});
