import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { expectRight, mailLikeText, pseudoRandomBytes, readAll, sha256Hex } from '@zxbackup/volume-contract/testing';
import { makeLocalVolume, stopIoWorkers, type LocalVolume } from '../index';
import { ioThreads } from './io-pool';
import { tempFilesOf } from './temp-listing.fixture';

// From its sources, a worker compiles io-worker.ts through ts-node when it starts: 3-4 s per test
// here alone, past Jest's 5 s default when the whole workspace's tests share two cores.
jest.setTimeout(30_000);

describe('the I/O workers', () => {
  let root: string;
  let volume: LocalVolume;

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-io-pool-'));
    volume = await expectRight(makeLocalVolume({ root }));
  });

  afterEach(async () => {
    await volume.close()();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('a worker that dies fails its requests with an I/O error, stores nothing partial, and is replaced', async () => {
    const bytes = pseudoRandomBytes(3 * 1024 * 1024, 61);
    const file = path.join(root, 'big.eml');
    await fs.writeFile(file, bytes);
    // A first put leaves the volume's mark, so the next one does not wait for anything.
    const first = path.join(root, 'first.eml');
    await fs.writeFile(first, 'first');
    await expectRight(volume.putFile(first));
    // The request is handed to a worker at once and posted at the end of this turn: the worker
    // is stopped before it can answer.
    const inFlight = volume.putFile(file)();
    await stopIoWorkers();
    const outcome = await inFlight;
    expect(outcome).toMatchObject({ _tag: 'Left', left: { _tag: 'VolumeIOError', op: 'put' } });

    const again = await expectRight(volume.putFile(file));
    expect(again.digest).toBe(sha256Hex(bytes));
    expect((await readAll(await expectRight(volume.get(again.digest)))).equals(bytes)).toBe(true);
    await expectRight(volume.flush());
    expect(await tempFilesOf(root)).toEqual([]);
  });

  it('many requests at once are answered in batches, each with its own result', async () => {
    const contents = Array.from({ length: 200 }, (_, i) => mailLikeText(1_000 + i * 37, 70 + i));
    const files = await Promise.all(
      contents.map(async (c, i) => {
        const file = path.join(root, `m${i}.eml`);
        await fs.writeFile(file, c);
        return file;
      }),
    );
    const results = await Promise.all(files.map((f) => expectRight(volume.putFile(f, { headBytes: 10 }))));
    expect(results.map((r) => r.digest)).toEqual(contents.map(sha256Hex));
    expect(results.map((r) => r.head.toString('latin1'))).toEqual(contents.map((c) => c.subarray(0, 10).toString('latin1')));
    const got = await Promise.all(results.map(async (r) => readAll(await expectRight(volume.get(r.digest)))));
    expect(got.every((g, i) => g.equals(contents[i] as Buffer))).toBe(true);
  });

  it('takes its thread count from ZXBACKUP_IO_THREADS within 1-16, else one per core up to 2', () => {
    expect(ioThreads({ ZXBACKUP_IO_THREADS: '3' })).toBe(3);
    const fallback = ioThreads({});
    expect(fallback).toBeGreaterThanOrEqual(1);
    expect(fallback).toBeLessThanOrEqual(2);
    expect(ioThreads({ ZXBACKUP_IO_THREADS: '0' })).toBe(fallback);
    expect(ioThreads({ ZXBACKUP_IO_THREADS: 'many' })).toBe(fallback);
    expect(ioThreads({ ZXBACKUP_IO_THREADS: '17' })).toBe(fallback);
  });
});
