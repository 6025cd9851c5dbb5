import fs, { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AccountId } from '@zxbackup/item-store';
import type { LiveChange, Source, Watcher } from '../source';
import { makeMaildirSource } from './maildir-source';
import { makeTempDirs, mkFolder, putMessage, run, runLeft } from './spec-support';

const tmp = makeTempDirs();
let watcher: Watcher | undefined;
afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
  tmp.cleanup();
});

/** Start watching; `next(pred)` resolves with the first change (seen or to come) matching pred. */
const startWatch = async (root: string, source: Source = makeMaildirSource({ root })) => {
  const changes: LiveChange[] = [];
  const uncertain: string[] = [];
  const waiters: Array<() => void> = [];
  if (source.watch === undefined) throw new Error('no watch');
  watcher = await run(
    source.watch({
      onChange: (c) => {
        changes.push(c);
        waiters.splice(0).forEach((w) => w());
      },
      onUncertain: (_a, reason) => uncertain.push(reason),
    }),
  );
  const next = async (pred: (c: LiveChange) => boolean, timeoutMs = 2000): Promise<LiveChange> => {
    const start = Date.now();
    for (;;) {
      const hit = changes.find(pred);
      if (hit !== undefined) {
        changes.splice(0);
        return hit;
      }
      if (Date.now() - start > timeoutMs) throw new Error(`no matching change within ${timeoutMs} ms; saw ${JSON.stringify(changes)}`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
  };
  return { next, uncertain, changes, source };
};

describe('maildir watch', () => {
  it('reports message add, rename, unlink and folder create/rename, also for accounts added later', async () => {
    const root = tmp.make();
    const maildir = join(root, 'alpha.test', 'alice', 'Maildir');
    mkFolder(maildir, '');
    mkFolder(maildir, '.Sent');
    const w = await startWatch(root);
    const alice = 'alice@alpha.test';

    const t0 = Date.now();
    putMessage(join(maildir, 'new', '1.M1P1.h'), 'x', t0);
    const add = await w.next((c) => c.account === alice && c.folderKey === '');
    expect(add.at - t0).toBeLessThan(1000);

    renameSync(join(maildir, 'new', '1.M1P1.h'), join(maildir, '.Sent', 'cur', '1.M1P1.h:2,S'));
    await w.next((c) => c.folderKey === '.Sent');

    rmSync(join(maildir, '.Sent', 'cur', '1.M1P1.h:2,S'));
    await w.next((c) => c.folderKey === '.Sent');

    // A new folder: account-wide change, then its cur/ is watched too.
    mkFolder(maildir, '.Projects');
    await w.next((c) => c.account === alice && c.folderKey === undefined);
    await w.next((c) => c.folderKey === '.Projects'); // reported once its watch exists
    putMessage(join(maildir, '.Projects', 'cur', '2.M2P1.h:2,'), 'y', t0);
    await w.next((c) => c.folderKey === '.Projects');

    // Renamed folder: account-wide, and the new name's messages are attributed to the new key.
    renameSync(join(maildir, '.Projects'), join(maildir, '.Archive'));
    await w.next((c) => c.account === alice && c.folderKey === undefined);
    putMessage(join(maildir, '.Archive', 'new', '3.M3P1.h'), 'z', t0);
    await w.next((c) => c.folderKey === '.Archive');

    // tmp/ is not watched: a half-written delivery is not a change.
    await new Promise((r) => setTimeout(r, 100)); // let the events of the writes above arrive
    w.changes.splice(0);
    putMessage(join(maildir, 'tmp', '4.M4P1.h'), 'partial', t0);
    await new Promise((r) => setTimeout(r, 150));
    expect(w.changes).toEqual([]);

    // A new account (domain and user directories created after the watch started).
    const bobMaildir = join(root, 'beta.test', 'bob', 'Maildir');
    mkdirSync(join(bobMaildir, 'cur'), { recursive: true });
    mkdirSync(join(bobMaildir, 'new'), { recursive: true });
    await w.next((c) => c.account === 'bob@beta.test');
    putMessage(join(bobMaildir, 'new', '5.M5P1.h'), 'for bob', t0);
    await w.next((c) => c.account === 'bob@beta.test' && c.folderKey === '');
    expect(w.uncertain).toEqual([]);
  });
});

describe('maildir watch: names and statEntries', () => {
  const ALICE = 'alice@alpha.test' as AccountId;
  const T0 = Date.UTC(2025, 0, 1);

  const setup = async () => {
    const root = tmp.make();
    const maildir = join(root, 'alpha.test', 'alice', 'Maildir');
    mkFolder(maildir, '');
    mkFolder(maildir, '.Sent');
    for (let i = 0; i < 20; i++) putMessage(join(maildir, 'cur', `${1000 + i}.M${i}P1.h:2,`), `message ${i}`, T0 + i);
    const w = await startWatch(root);
    const statEntries = (folderKey: string, keys: string[]) => {
      if (w.source.statEntries === undefined) throw new Error('no statEntries');
      return run(w.source.statEntries(ALICE, folderKey, keys));
    };
    return { root, maildir, w, statEntries };
  };

  /** Counts directory listings while `f` runs. */
  const readdirsDuring = async <A>(f: () => Promise<A>): Promise<{ result: A; readdirs: number }> => {
    const spy = jest.spyOn(fs.promises, 'readdir');
    try {
      const result = await f();
      return { result, readdirs: spy.mock.calls.length };
    } finally {
      spy.mockRestore();
    }
  };

  it('names the base name of every file that appears in or vanishes from cur/ and new/', async () => {
    const { maildir, w } = await setup();
    putMessage(join(maildir, 'new', '2000.M1P1.h'), 'x', T0);
    expect((await w.next((c) => c.folderKey === '' && c.names !== undefined)).names).toEqual(['2000.M1P1.h']);
    renameSync(join(maildir, 'new', '2000.M1P1.h'), join(maildir, '.Sent', 'cur', '2000.M1P1.h:2,S'));
    expect((await w.next((c) => c.folderKey === '.Sent')).names).toEqual(['2000.M1P1.h']);
    renameSync(join(maildir, 'cur', '1003.M3P1.h:2,'), join(maildir, 'cur', '1003.M3P1.h:2,FS'));
    expect((await w.next((c) => c.folderKey === '' && c.names?.[0] === '1003.M3P1.h')).names).toEqual(['1003.M3P1.h']);
    rmSync(join(maildir, '.Sent', 'cur', '2000.M1P1.h:2,S'));
    expect((await w.next((c) => c.folderKey === '.Sent')).names).toEqual(['2000.M1P1.h']);
    expect(w.uncertain).toEqual([]);
  });

  it('looks up named messages without listing the folder once it was listed while watched', async () => {
    const { maildir, w, statEntries } = await setup();
    // The first lookup has no trusted names yet: it lists the folder (and is still exact).
    const first = await readdirsDuring(() => statEntries('', ['1001.M1P1.h', 'nope']));
    expect(first.readdirs).toBeGreaterThan(0);
    expect(first.result.present.map((e) => e.sourceKey)).toEqual(['1001.M1P1.h']);
    expect(first.result.absent).toEqual(['nope']);

    // A flag change, a delivery to new/ with its move to cur/, a deletion, a move to another folder.
    renameSync(join(maildir, 'cur', '1002.M2P1.h:2,'), join(maildir, 'cur', '1002.M2P1.h:2,RS'));
    writeFileSync(join(maildir, 'tmp', '3000.M9P1.h'), 'fresh');
    renameSync(join(maildir, 'tmp', '3000.M9P1.h'), join(maildir, 'new', '3000.M9P1.h'));
    rmSync(join(maildir, 'cur', '1004.M4P1.h:2,'));
    renameSync(join(maildir, 'cur', '1005.M5P1.h:2,'), join(maildir, '.Sent', 'cur', '1005.M5P1.h:2,'));
    await w.next((c) => c.names?.[0] === '1005.M5P1.h' && c.folderKey === '.Sent');
    const second = await readdirsDuring(() => statEntries('', ['1002.M2P1.h', '3000.M9P1.h', '1004.M4P1.h', '1005.M5P1.h']));
    expect(second.readdirs).toBe(0);
    expect([...second.result.absent].sort()).toEqual(['1004.M4P1.h', '1005.M5P1.h']);
    expect(second.result.present).toEqual([
      { sourceKey: '1002.M2P1.h', flags: ['\\Answered', '\\Seen'], receivedAt: T0 + 2, size: 'message 2'.length, locator: 'cur/1002.M2P1.h:2,RS' },
      expect.objectContaining({ sourceKey: '3000.M9P1.h', flags: [], size: 5, locator: 'new/3000.M9P1.h' }),
    ]);
    // The same answers as a listing gives.
    const listed = await run(w.source.listFolder(ALICE, ''));
    for (const e of second.result.present) expect(listed.entries).toContainEqual(e);

    renameSync(join(maildir, 'new', '3000.M9P1.h'), join(maildir, 'cur', '3000.M9P1.h:2,S'));
    await w.next((c) => c.names?.[0] === '3000.M9P1.h');
    const third = await readdirsDuring(() => statEntries('', ['3000.M9P1.h']));
    expect(third.readdirs).toBe(0);
    expect(third.result.present).toEqual([expect.objectContaining({ sourceKey: '3000.M9P1.h', flags: ['\\Seen'], locator: 'cur/3000.M9P1.h:2,S' })]);
  });

  it('lists the folder for a key the watcher never named, and fails for a folder that is gone', async () => {
    const { maildir, statEntries, w } = await setup();
    await statEntries('', ['1001.M1P1.h']); // trusted from now on
    const unknown = await readdirsDuring(() => statEntries('', ['1007.M7P1.h', 'never-there']));
    expect(unknown.readdirs).toBeGreaterThan(0);
    expect(unknown.result.present.map((e) => e.locator)).toEqual(['cur/1007.M7P1.h:2,']);
    expect(unknown.result.absent).toEqual(['never-there']);
    rmSync(join(maildir, '.Sent'), { recursive: true });
    if (w.source.statEntries === undefined) throw new Error('no statEntries');
    expect(await runLeft(w.source.statEntries(ALICE, '.Sent', ['x']))).toMatchObject({ _tag: 'SourceNotFound' });
  });
});
