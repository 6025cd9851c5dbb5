import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AccountId, MetadataStore } from '@zxbackup/item-store';
import { makeMemoryVolume, type MemoryVolume } from '@zxbackup/volume-contract/testing';
import { writeToFileThroughGet, type BlobFile, type BlobVolume, type Digest, type ReadHints } from '@zxbackup/volume-contract';
import { makeScanEngine } from '../engine/smart-scan';
import { makeMaildirTarget } from '../maildir/maildir-target';
import { makeFakeSource, type FakeSource } from '../testing/fake-source';
import { makeFakeTarget } from '../testing/fake-target';
import { makeCounterTxIds, makeManualClock, makeTempDir, openTempStore, unwrap, unwrapLeft } from '../testing/harness';
import { maildirOf, treeSnapshot } from '../testing/maildir-tree';
import type { RestoreTarget } from '../source';
import type { RestoreDeps } from './deps';
import { makeRestoreEngine } from './restore-engine';
import { READ_AHEAD_MAX_BUFFERED } from './read-ahead';

/*
 * The file path of a restore: a volume that writes a blob into a file (`writeToFile`) and a
 * target that takes a message as a file (`writeMessageFile`, the Maildir target). It must
 * restore what the stream path restores, and fail as precisely.
 */

const ALICE = 'alice@example.test' as AccountId;
const mail = (n: number, extra = ''): string => `From: bob@example.test\r\nSubject: message ${n}\r\n\r\nbody ${n}${extra}\r\n`;
const FLAGS = [[], ['\\Seen'], ['\\Seen', '\\Flagged'], ['$Important', '\\Answered'], ['todo']];

interface Calls {
  readonly gets: Digest[];
  readonly files: Array<{ digest: Digest; file: BlobFile }>;
  readonly prefetched: Array<{ digests: Digest[]; hints: ReadHints | undefined }>;
  readonly warmed: Array<{ digests: Digest[]; hints: ReadHints | undefined }>;
}

/** The memory volume with `writeToFile` (through its `get`) and recorders of what the restore asks. */
const withFiles = (base: MemoryVolume, calls: Calls, writeToFile = writeToFileThroughGet(base.get)): BlobVolume => ({
  ...base,
  get: (d) => (calls.gets.push(d), base.get(d)),
  writeToFile: (d, file) => (calls.files.push({ digest: d, file }), writeToFile(d, file)),
  prefetch: (digests, hints) => void calls.prefetched.push({ digests: [...digests], hints }),
  warmUp: (digests, hints) => void calls.warmed.push({ digests: [...digests], hints }),
});
const newCalls = (): Calls => ({ gets: [], files: [], prefetched: [], warmed: [] });

/** Files left in the tmp/ of every folder of an account's Maildir. */
const inTmp = (maildir: string): string[] =>
  ['', ...readdirSync(maildir).filter((n) => n.startsWith('.'))].flatMap((k) => readdirSync(join(maildir, k, 'tmp')).map((n) => join(k, n)));

describe('restore through the file path (the volume writes the files)', () => {
  let store: MetadataStore;
  let volume: MemoryVolume;
  let source: FakeSource;
  let root: string;
  let target: RestoreTarget;
  const clock = makeManualClock();
  const cleanups: Array<() => Promise<void> | void> = [];
  /** t0: 40 messages in three folders (one bigger than the stream path reads ahead); t1: 10 deleted, flags changed. */
  let t0 = 0;
  let t1 = 0;
  let snapAtT0: ReturnType<FakeSource['snapshot']>;

  const deps = (v: BlobVolume, more: Partial<RestoreDeps> = {}): RestoreDeps => ({ store, volume: v, target, ...more });

  beforeEach(async () => {
    const s = await openTempStore();
    const d = makeTempDir('zxb-restore-files-');
    store = s.store;
    root = d.dir;
    cleanups.push(s.close, d.cleanup);
    volume = makeMemoryVolume();
    source = makeFakeSource();
    target = makeMaildirTarget({ root });
    const scan = makeScanEngine({ store, volume, source, txIds: makeCounterTxIds(), clock: clock.now });
    source.addAccount(ALICE, { settings: {} });
    source.addFolder(ALICE, '.Projects', 'Projects');
    source.addFolder(ALICE, '.Projects.2026', 'Projects/2026');
    const folders = ['INBOX', '.Projects', '.Projects.2026'];
    for (let i = 0; i < 40; i++) {
      const extra = i === 7 ? 'x'.repeat(READ_AHEAD_MAX_BUFFERED + 1000) : '';
      source.putMessage(ALICE, folders[i % 3] as string, `k${i}`, mail(i, extra), { flags: FLAGS[i % FLAGS.length] as string[], receivedAt: 1_700_000_000_000 + i * 1000 });
    }
    // Two messages with the same content: one blob, two files.
    source.putMessage(ALICE, '.Projects', 'twin', mail(3), { receivedAt: 1_700_000_100_000 });
    expect((await unwrap(scan.smartScan())).failures).toEqual([]);
    t0 = clock.now();
    snapAtT0 = source.snapshot(ALICE);
    clock.advance(60_000);
    for (let i = 0; i < 10; i++) source.removeMessage(ALICE, folders[i % 3] as string, `k${i}`);
    source.setFlags(ALICE, 'INBOX', 'k12', ['\\Seen', '\\Deleted']);
    await unwrap(scan.smartScan());
    t1 = clock.now();
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('restores exactly what the stream path restores, the volume writing every file', async () => {
    const calls = newCalls();
    const files = makeRestoreEngine(deps(withFiles(volume, calls)));
    const streams = makeRestoreEngine(deps(volume));
    for (const [i, { at, undelete }] of [
      { at: t0, undelete: false },
      { at: t1, undelete: true },
    ].entries()) {
      const byFile = `files${i}@example.test` as AccountId;
      const byStream = `streams${i}@example.test` as AccountId;
      const before = calls.files.length;
      const f = await unwrap(files.restoreAccount({ account: ALICE, newAccount: byFile, at, undelete }));
      const s = await unwrap(streams.restoreAccount({ account: ALICE, newAccount: byStream, at, undelete }));
      expect(f).toEqual(s);
      expect(calls.files.length - before).toBe(f.messages);
      const restored = await treeSnapshot(root, byFile);
      expect(restored).toEqual(await treeSnapshot(root, byStream));
      expect(Object.values(restored).flat()).toHaveLength(f.messages);
      expect(inTmp(maildirOf(root, byFile))).toEqual([]);
      // Every file named in the restored account's tmp/.
      expect(calls.files.slice(before).every(({ file }) => file.path.startsWith(maildirOf(root, byFile)) && /\/tmp\/[^/]+$/.test(file.path))).toBe(true);
    }
    // And it is what the source held at t0: bytes (one message bigger than the stream path reads
    // ahead, two sharing a blob), flags with keywords, dates, folders.
    expect(await treeSnapshot(root, 'files0@example.test' as AccountId)).toEqual(snapAtT0);
    // No blob read into this thread: `get` (the stream path's, or its read-ahead) was never asked.
    expect(calls.gets).toEqual([]);
  });

  it('announces the list of the files with into files, to warm up and to prefetch', async () => {
    const calls = newCalls();
    const dest = 'hinted@example.test' as AccountId;
    const summary = await unwrap(makeRestoreEngine(deps(withFiles(volume, calls), { warmUpAfter: 3 })).restoreAccount({ account: ALICE, newAccount: dest, at: t1, undelete: false }));
    expect(calls.prefetched).toHaveLength(1);
    expect(calls.prefetched[0]?.hints).toEqual({ into: 'files' });
    const list = calls.prefetched[0]?.digests ?? [];
    expect(list).toHaveLength(summary.messages);
    // The files asked are the list's (in its order, but for writes that waited for their folder).
    expect(calls.files.map((f) => f.digest).sort()).toEqual([...list].sort());
    expect(calls.warmed).toEqual([{ digests: list.slice(0, 3), hints: { into: 'files' } }]);
  });

  it('keeps the files under way within its window', async () => {
    const calls = newCalls();
    let running = 0;
    let most = 0;
    const slow = (d: Digest, file: BlobFile) => async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 2));
      const r = await writeToFileThroughGet(volume.get)(d, file)();
      running--;
      return r;
    };
    const s = await unwrap(makeRestoreEngine(deps(withFiles(volume, calls, slow), { filesAhead: 4 })).restoreAccount({ account: ALICE, newAccount: 'window@example.test' as AccountId, at: t0, undelete: false }));
    expect(s.messages).toBe(41);
    expect(most).toBe(4);
  });

  it('a corrupt blob fails the restore with the volume error the stream path gives', async () => {
    const digests: Digest[] = [];
    await unwrap(volume.list((d) => void digests.push(d)));
    const bad = digests[5] as Digest;
    expect(volume.tamper(bad, (b) => Buffer.concat([b, Buffer.from('!')]))).toBe(true);
    const calls = newCalls();
    const byFile = await unwrapLeft(makeRestoreEngine(deps(withFiles(volume, calls))).restoreAccount({ account: ALICE, newAccount: 'cf@example.test' as AccountId, at: t0, undelete: false }));
    const byStream = await unwrapLeft(makeRestoreEngine(deps(volume)).restoreAccount({ account: ALICE, newAccount: 'cs@example.test' as AccountId, at: t0, undelete: false }));
    expect(byFile).toMatchObject({ _tag: 'RestoreVolumeError', op: 'readBlob', key: bad, cause: { _tag: 'BlobCorrupt', key: bad } });
    expect(byFile).toEqual(byStream);
    expect(calls.files.some((f) => f.digest === bad)).toBe(true);
    // No file of the corrupt blob is left, and none of its content is visible.
    expect(calls.files.filter((f) => f.digest === bad).some((f) => existsSync(f.file.path))).toBe(false);
    expect(Object.values(await treeSnapshot(root, 'cf@example.test' as AccountId)).flat().some((m) => m.content.endsWith('!'))).toBe(false);
  });

  it('a missing blob fails the restore with BlobNotFound, as the stream path does', async () => {
    const digests: Digest[] = [];
    await unwrap(volume.list((d) => void digests.push(d)));
    const gone = digests[2] as Digest;
    await unwrap(volume.delete(gone));
    const byFile = await unwrapLeft(makeRestoreEngine(deps(withFiles(volume, newCalls()))).restoreAccount({ account: ALICE, newAccount: 'nf@example.test' as AccountId, at: t0, undelete: false }));
    const byStream = await unwrapLeft(makeRestoreEngine(deps(volume)).restoreAccount({ account: ALICE, newAccount: 'ns@example.test' as AccountId, at: t0, undelete: false }));
    expect(byFile).toMatchObject({ _tag: 'RestoreVolumeError', op: 'readBlob', key: gone, cause: { _tag: 'BlobNotFound' } });
    expect(byFile).toEqual(byStream);
  });

  it("a file the target's file system cannot take is a target error", async () => {
    const digests: Digest[] = [];
    await unwrap(volume.list((d) => void digests.push(d)));
    const through = writeToFileThroughGet(volume.get);
    // One file in a directory that does not exist: the volume's real `writeFile` failure (ENOENT).
    const misplaced = (d: Digest, file: BlobFile) => through(d, d === digests[4] ? { ...file, path: join(file.path, 'nowhere') } : file);
    const e = await unwrapLeft(
      makeRestoreEngine(deps(withFiles(volume, newCalls(), misplaced))).restoreAccount({ account: ALICE, newAccount: 'fs@example.test' as AccountId, at: t0, undelete: false }),
    );
    expect(e).toMatchObject({ _tag: 'RestoreTargetError', op: 'writeMessage', cause: { _tag: 'SourceIOError', cause: { code: 'ENOENT' } } });
    expect(e.key).toMatch(/^fs@example\.test:(INBOX|Projects|Projects\/2026)$/);
  });

  it('keeps the stream path when the target cannot take files', async () => {
    const calls = newCalls();
    const fake = makeFakeTarget();
    const summary = await unwrap(makeRestoreEngine({ store, volume: withFiles(volume, calls), target: fake }).restoreAccount({ account: ALICE, newAccount: ALICE, at: t0, undelete: false }));
    expect(summary.messages).toBe(41);
    expect(calls.files).toEqual([]);
    expect(calls.gets).toHaveLength(41);
    expect(calls.prefetched).toEqual([{ digests: expect.any(Array) as unknown, hints: undefined }]);
  });
});
