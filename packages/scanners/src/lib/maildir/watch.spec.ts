import { mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { LiveChange, Watcher } from '../source';
import { makeMaildirSource } from './maildir-source';
import { makeTempDirs, mkFolder, putMessage, run } from './spec-support';

const tmp = makeTempDirs();
let watcher: Watcher | undefined;
afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
  tmp.cleanup();
});

/** Start watching; `next(pred)` resolves with the first change (seen or to come) matching pred. */
const startWatch = async (root: string) => {
  const changes: LiveChange[] = [];
  const uncertain: string[] = [];
  const waiters: Array<() => void> = [];
  const source = makeMaildirSource({ root });
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
  return { next, uncertain, changes };
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
