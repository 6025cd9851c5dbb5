import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { openTxIdAllocator } from './tx-id-allocator';
import { expectLeft, expectRight, makeTempDirs } from '../test-support/test-util';

const temp = makeTempDirs();
afterAll(() => temp.cleanup());

const reservedOnDisk = (dir: string): number => (JSON.parse(readFileSync(path.join(dir, 'txid.json'), 'utf8')) as { reserved: number }).reserved;

/** A pid that certainly belongs to no live process: a child that already exited. */
const deadPid = (): number => {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid ?? 0;
};

describe('openTxIdAllocator', () => {
  it('hands out strictly increasing, contiguous ranges starting at 1', async () => {
    const dir = temp.make();
    const alloc = expectRight(await openTxIdAllocator(dir)());
    const firsts: number[] = [];
    for (const count of [1, 3, 1, 10, 2]) firsts.push(expectRight(await alloc.allocate(count)()));
    expect(firsts).toEqual([1, 2, 5, 6, 16]);
    expect(expectRight(await alloc.allocate()())).toBe(18);
    expectRight(await alloc.close()());
  });

  it('persists the reserved mark before handing out ids from it', async () => {
    const dir = temp.make();
    const alloc = expectRight(await openTxIdAllocator(dir, { reserveBlock: 10 })());
    for (let i = 0; i < 35; i++) {
      const id = expectRight(await alloc.allocate()());
      expect(reservedOnDisk(dir)).toBeGreaterThanOrEqual(id);
    }
    const wide = expectRight(await alloc.allocate(25)());
    expect(reservedOnDisk(dir)).toBeGreaterThanOrEqual(wide + 24);
    expectRight(await alloc.close()());
  });

  it('starts above every id handed out before, across reopen cycles', async () => {
    const dir = temp.make();
    let highest = 0;
    for (let cycle = 0; cycle < 4; cycle++) {
      const alloc = expectRight(await openTxIdAllocator(dir, { reserveBlock: 7 })());
      for (let i = 0; i < 5 + cycle * 4; i++) {
        const id = expectRight(await alloc.allocate(1 + (i % 3))());
        expect(id).toBeGreaterThan(highest);
        highest = id + (i % 3);
      }
      expectRight(await alloc.close()());
    }
  });

  it('keeps order and uniqueness for concurrent allocations that need a reservation', async () => {
    const dir = temp.make();
    const alloc = expectRight(await openTxIdAllocator(dir, { reserveBlock: 5 })());
    const counts = Array.from({ length: 60 }, (_, i) => 1 + (i % 4));
    const firsts = (await Promise.all(counts.map((c) => alloc.allocate(c)()))).map(expectRight);
    // Run in call order: each range starts right after the previous one.
    for (let i = 1; i < firsts.length; i++) expect(firsts[i]).toBe((firsts[i - 1] ?? 0) + (counts[i - 1] ?? 0));
    expectRight(await alloc.close()());
  });

  it('refuses a second open of the same directory while the first is open', async () => {
    const dir = temp.make();
    const first = expectRight(await openTxIdAllocator(dir)());
    const second = expectLeft(await openTxIdAllocator(dir)());
    expect(second._tag).toBe('LogLocked');
    expect(second).toMatchObject({ holderPid: process.pid });
    expectRight(await first.close()());
    const third = expectRight(await openTxIdAllocator(dir)());
    expectRight(await third.close()());
  });

  it('takes over the lock of a dead process, never one from another host', async () => {
    const dir = temp.make();
    const lock = path.join(dir, 'txid.lock');
    writeFileSync(lock, JSON.stringify({ version: 1, pid: deadPid(), host: os.hostname(), token: 'x' }));
    const alloc = expectRight(await openTxIdAllocator(dir)());
    expectRight(await alloc.close()());
    expect(existsSync(lock)).toBe(false);

    writeFileSync(lock, JSON.stringify({ version: 1, pid: deadPid(), host: `${os.hostname()}-elsewhere`, token: 'x' }));
    expect(expectLeft(await openTxIdAllocator(dir)())._tag).toBe('LogLocked');
    writeFileSync(lock, 'garbage');
    expect(expectLeft(await openTxIdAllocator(dir)())._tag).toBe('LogLocked');
  });

  it('rejects a damaged reservation file and releases the lock', async () => {
    const dir = temp.make();
    writeFileSync(path.join(dir, 'txid.json'), JSON.stringify({ version: 1, reserved: -3 }));
    const err = expectLeft(await openTxIdAllocator(dir)());
    expect(err).toMatchObject({ _tag: 'LogDecodeError', key: path.join(dir, 'txid.json') });
    expect(existsSync(path.join(dir, 'txid.lock'))).toBe(false);
    writeFileSync(path.join(dir, 'txid.json'), JSON.stringify({ version: 2, reserved: 3 }));
    expect(expectLeft(await openTxIdAllocator(dir)())._tag).toBe('LogDecodeError');
  });

  it('fails with LogClosed after close, and throws on a non-positive count', async () => {
    const dir = temp.make();
    const alloc = expectRight(await openTxIdAllocator(dir)());
    expect(() => alloc.allocate(0)).toThrow(RangeError);
    expectRight(await alloc.close()());
    expect(expectLeft(await alloc.allocate()())._tag).toBe('LogClosed');
  });

  it('reports a directory that cannot be created as LogIOError', async () => {
    const file = path.join(temp.make(), 'not-a-dir');
    writeFileSync(file, '');
    expect(expectLeft(await openTxIdAllocator(path.join(file, 'sub'))())._tag).toBe('LogIOError');
  });
});
