import type { BlobFile, Digest } from '@zxbackup/volume-contract';
import type { FileDownload, FileResult, PlannedBlob } from './download-worker';
import { makeFileRestorer, type FilePlan, type FileRestorer } from './file-restore';
import type { PackId } from './pack-format';
import type { BlobLocation } from './pack-index';

/** A download that records what it is asked, and answers when the test says. */
interface FakeDownload extends FileDownload {
  readonly pack: PackId;
  planned: ReadonlyArray<PlannedBlob> | undefined;
  readonly asked: Array<{ index: number; file: BlobFile; answer: (r: FileResult) => void }>;
  cancelled: boolean;
  receive(): void;
  fail(): void;
}

const fakeDownload = (pack: PackId): FakeDownload => {
  let settle = { resolve: () => undefined as void, reject: (_e: Error) => undefined as void };
  const received = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  received.catch(() => undefined);
  const d: FakeDownload = {
    pack,
    planned: undefined,
    asked: [],
    cancelled: false,
    received,
    plan: (blobs) => void (d.planned = blobs),
    write: (index, file) => new Promise<FileResult>((answer) => d.asked.push({ index, file, answer })),
    cancel: () => {
      d.cancelled = true;
      for (const a of d.asked) a.answer({ kind: 'lost' });
    },
    receive: () => settle.resolve(),
    fail: () => {
      for (const a of d.asked) a.answer({ kind: 'lost' });
      settle.reject(new Error('ECONNRESET'));
    },
  };
  return d;
};

const blob = (pack: PackId, i: number, wanted = 1): BlobLocation & { wanted: number } => ({
  pack,
  digest: `${pack}-blob${i}` as Digest, // any text: the restorer only matches digests, never checks them
  offset: i * 100,
  length: 100,
  size: 100,
  wanted,
});
const planOf = (pack: PackId, count: number): FilePlan => ({ pack, blobs: Array.from({ length: count }, (_, i) => blob(pack, i)) });
const file = (name: string): BlobFile => ({ path: `/tmp/${name}`, mode: 0o600, mtimeMs: 0 });
const tick = () => new Promise((r) => setImmediate(r));

describe('file restorer', () => {
  let started: FakeDownload[];
  let restorer: FileRestorer;
  const make = (staleMs?: number): FileRestorer =>
    makeFileRestorer({
      download: (pack) => {
        const d = fakeDownload(pack);
        started.push(d);
        return d;
      },
      concurrency: 2,
      ...(staleMs === undefined ? {} : { staleMs }),
    });
  beforeEach(() => {
    started = [];
  });
  afterEach(() => restorer.close());

  it('downloads announced packs a few at a time, in order, each with its plan; the next starts once one was received', async () => {
    restorer = make();
    restorer.announce([planOf('p1', 2), planOf('p2', 2), planOf('p3', 2)]);
    expect(started.map((d) => d.pack)).toEqual(['p1', 'p2']);
    expect(started[0]?.planned?.map((b) => b.digest)).toEqual(['p1-blob0', 'p1-blob1']);
    started[0]?.receive();
    await tick();
    expect(started.map((d) => d.pack)).toEqual(['p1', 'p2', 'p3']);
  });

  it('a file of a pack not started yet waits for its download; a blob asked more often than announced is unannounced', async () => {
    restorer = make();
    restorer.announce([planOf('p1', 1), planOf('p2', 1), planOf('p3', 1)]);
    const late = restorer.write('p3-blob0', file('a'));
    await tick();
    expect(started).toHaveLength(2);
    started[0]?.receive();
    await tick();
    const p3 = started[2] as FakeDownload;
    expect(p3.asked.map((a) => a.index)).toEqual([0]);
    p3.asked[0]?.answer({ kind: 'written' });
    expect(await late).toEqual({ kind: 'written' });
    expect(await restorer.write('p3-blob0', file('b'))).toEqual({ kind: 'unannounced' });
    expect(await restorer.write('nowhere', file('c'))).toEqual({ kind: 'unannounced' });
  });

  it('a download opened ahead is the one its plan uses', async () => {
    restorer = make();
    restorer.open(['p1', 'p2', 'p3']);
    expect(started.map((d) => d.pack)).toEqual(['p1', 'p2']); // at most `concurrency`
    restorer.announce([planOf('p2', 1), planOf('p1', 1)]);
    expect(started.map((d) => d.pack)).toEqual(['p1', 'p2']);
    expect(started.every((d) => d.planned !== undefined)).toBe(true);
  });

  it('a failed download: its files come back lost, files not asked yet are unannounced, the next pack starts', async () => {
    restorer = make();
    restorer.announce([planOf('p1', 3), planOf('p2', 1), planOf('p3', 1)]);
    const first = restorer.write('p1-blob0', file('a'));
    await tick();
    (started[0] as FakeDownload).fail();
    expect(await first).toEqual({ kind: 'lost' });
    await tick();
    expect(await restorer.write('p1-blob1', file('b'))).toEqual({ kind: 'unannounced' });
    expect(started.map((d) => d.pack)).toEqual(['p1', 'p2', 'p3']);
  });

  it('a download whose pack was received and all files asked is let go', async () => {
    restorer = make();
    restorer.announce([{ pack: 'p1', blobs: [blob('p1', 0, 2)] }]);
    const d = started[0] as FakeDownload;
    d.receive();
    await tick();
    const a = restorer.write('p1-blob0', file('a'));
    const b = restorer.write('p1-blob0', file('b'));
    for (const asked of d.asked) asked.answer({ kind: 'written' });
    expect([await a, await b]).toEqual([{ kind: 'written' }, { kind: 'written' }]);
    expect(d.cancelled).toBe(true);
  });

  it('never lets a download go while a file asked of it is unanswered (the worker may still write it)', async () => {
    restorer = make();
    restorer.announce([planOf('p1', 1)]);
    const d = started[0] as FakeDownload;
    const last = restorer.write('p1-blob0', file('a'));
    d.receive(); // the whole pack is in; its last file asked, not answered
    await tick();
    expect(d.cancelled).toBe(false);
    d.asked[0]?.answer({ kind: 'written' });
    expect(await last).toEqual({ kind: 'written' });
    expect(d.cancelled).toBe(true);
  });

  it('gives up what nobody asks a file of in time: downloads, plans and downloads opened ahead', async () => {
    restorer = make(80);
    restorer.open(['early']);
    restorer.announce([planOf('p1', 1), planOf('p2', 1), planOf('p3', 1)]);
    await new Promise((r) => setTimeout(r, 300));
    expect(started.filter((d) => d.pack !== 'p3').every((d) => d.cancelled)).toBe(true);
    // p3 started when p1 and p2 were given up, and was given up in turn; its blob is read another way now.
    expect(await restorer.write('p3-blob0', file('x'))).toEqual({ kind: 'unannounced' });
  });

  it('close cancels every download', async () => {
    restorer = make();
    restorer.open(['e']);
    restorer.announce([planOf('p1', 1)]);
    const pending = restorer.write('p1-blob0', file('a'));
    restorer.close();
    expect(await pending).toEqual({ kind: 'lost' });
    expect(started.every((d) => d.cancelled)).toBe(true);
  });
});
