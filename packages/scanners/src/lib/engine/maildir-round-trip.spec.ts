import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { AccountId, MetadataStore } from '@zxbackup/item-store';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import { makeMaildirSource } from '../maildir/maildir-source';
import { makeMaildirTarget } from '../maildir/maildir-target';
import { makeRestoreEngine } from '../restore/restore-engine';
import { makeCounterTxIds, makeTempDir, openTempStore, unwrap } from '../testing/harness';
import { deliver, maildirOf, moveFile, removeFile, setFlagLetters, treeSnapshot } from '../testing/maildir-tree';
import type { Snapshot } from '../testing/store-snapshot';
import { makeScanEngine } from './smart-scan';

const ALICE = 'alice@example.test' as AccountId;
const mail = (subject: string, extra = ''): string =>
  `From: =?UTF-8?Q?Ren=C3=A9?= <rene@example.test>\r\nTo: alice@example.test\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.test>\r\n\r\nBody of ${subject}.${extra}\r\n`;

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('SmartScan and restore on real Maildir trees', () => {
  let root: string;
  let dest: string;
  let store: MetadataStore;
  let volume: MemoryVolume;
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeEach(async () => {
    const a = makeTempDir('zxb-rt-src-');
    const b = makeTempDir('zxb-rt-dst-');
    const s = await openTempStore();
    root = a.dir;
    dest = b.dir;
    store = s.store;
    volume = makeMemoryVolume();
    cleanups.push(a.cleanup, b.cleanup, s.close);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('restores the tree as it was at t0, t1 and t2: bytes, flags with keywords, dates, folder names', async () => {
    const source = makeMaildirSource({ root });
    const engine = makeScanEngine({ store, volume, source, txIds: makeCounterTxIds() });
    const maildir = maildirOf(root, ALICE);
    const states: Array<{ at: number; snap: Snapshot }> = [];
    const scanAndSnapshot = async (): Promise<void> => {
      const s = await unwrap(engine.smartScan());
      expect(s.failures).toEqual([]);
      states.push({ at: Date.now(), snap: await treeSnapshot(root, ALICE) });
      await tick();
    };

    const k1 = await deliver(root, ALICE, 'INBOX', mail('one'), ['\\Seen', '$Label1'], Date.UTC(2026, 0, 1, 8));
    const k2 = await deliver(root, ALICE, 'INBOX', mail('two', '\r\nÜmlaut bytes: \u00e4'), [], Date.UTC(2026, 0, 2, 8));
    const k3 = await deliver(root, ALICE, 'Projects', mail('three'), ['\\Flagged', 'todo'], Date.UTC(2026, 0, 3, 8));
    await deliver(root, ALICE, 'Projects/2026', mail('four'), ['\\Seen'], Date.UTC(2026, 0, 4, 8));
    await deliver(root, ALICE, 'Entwürfe', mail('five'), ['\\Draft'], Date.UTC(2026, 0, 5, 8));
    await scanAndSnapshot();

    // t1: flags, a move, a deletion, new mail.
    await setFlagLetters(maildir, '', k2, 'RS');
    await moveFile(maildir, '', k1, '.Projects');
    await removeFile(maildir, '.Projects', k3);
    await deliver(root, ALICE, 'INBOX', mail('six'), [], Date.UTC(2026, 0, 6, 8));
    await scanAndSnapshot();

    // t2: a folder (and its subfolder) renamed, more mail, another deletion.
    await fsp.rename(join(maildir, '.Projects'), join(maildir, '.Work'));
    await fsp.rename(join(maildir, '.Projects.2026'), join(maildir, '.Work.2026'));
    await deliver(root, ALICE, 'Work', mail('seven'), ['$Label2'], Date.UTC(2026, 0, 7, 8));
    await removeFile(maildir, '', k2);
    await scanAndSnapshot();

    expect(Object.keys(states[2]?.snap ?? {}).sort()).toEqual(['Entwürfe', 'INBOX', 'Work', 'Work/2026']);
    expect(states[0]?.snap['INBOX']?.map((m) => m.flags)).toEqual([['$Label1', '\\Seen'], []]);
    expect(states[0]?.snap).not.toEqual(states[1]?.snap);
    expect(states[1]?.snap).not.toEqual(states[2]?.snap);
    const restore = makeRestoreEngine({ store, volume, target: makeMaildirTarget({ root: dest }) });
    for (const [i, s] of states.entries()) {
      const account = `restored${i}@example.test` as AccountId;
      await unwrap(restore.restoreAccount({ account: ALICE, newAccount: account, at: s.at, undelete: false }));
      expect(await treeSnapshot(dest, account)).toEqual(s.snap);
    }
    // The folder rename is one folder item whose path changed, not a delete and a create.
    const folders = await unwrap(restore.searchItems({ account: ALICE, type: 'folder', filter: 'all' }));
    expect(folders.map((f) => [f.folder, f.deletedAt === undefined]).sort()).toEqual([
      ['Entwürfe', true],
      ['INBOX', true],
      ['Work', true],
      ['Work/2026', true],
    ]);
  });

  it('undeletes deleted mail into its original folder on the live tree, tagged and only once', async () => {
    const source = makeMaildirSource({ root });
    const engine = makeScanEngine({ store, volume, source, txIds: makeCounterTxIds() });
    const maildir = maildirOf(root, ALICE);
    const gone = await deliver(root, ALICE, 'Projects', mail('precious'), ['\\Seen', 'work'], Date.UTC(2026, 0, 1, 8));
    await deliver(root, ALICE, 'INBOX', mail('stays'), [], Date.UTC(2026, 0, 2, 8));
    await unwrap(engine.smartScan());
    const before = Date.now();
    await tick();
    await removeFile(maildir, '.Projects', gone);
    await fsp.rm(join(maildir, '.Projects'), { recursive: true });
    await unwrap(engine.smartScan());
    const target = makeMaildirTarget({ root });
    const restore = makeRestoreEngine({ store, volume, target, readTarget: source.openBlob });
    const now = Date.UTC(2026, 2, 9, 12);
    const r = await unwrap(restore.undeleteItems({ account: ALICE, from: before, to: Date.now(), targetOriginalFolder: true, now }));
    expect(r).toMatchObject({ restored: 1, skipped: 0, folders: ['Projects'] });
    const snap = await treeSnapshot(root, ALICE);
    expect(snap['Projects']).toEqual([{ content: mail('precious'), flags: ['\\Seen', 'undelete_09_03_26', 'work'], receivedAt: Date.UTC(2026, 0, 1, 8) }]);
    const again = await unwrap(restore.undeleteItems({ account: ALICE, from: before, to: Date.now(), targetOriginalFolder: true, now }));
    expect(again).toMatchObject({ restored: 0, skipped: 1 });
  });
});
