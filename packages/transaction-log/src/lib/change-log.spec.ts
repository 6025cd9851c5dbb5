import { promises as fsp, readdirSync, readFileSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import * as path from 'node:path';
import * as t from 'io-ts';
import { openChangeLog, type RecoveryReport } from './change-log';
import { LogPosition } from './codecs';
import { expectLeft, expectRight, makeTempDirs } from '../test-support/test-util';

const temp = makeTempDirs();
afterAll(() => temp.cleanup());

const Change = t.type({ item: t.string, n: t.number });
type Change = t.TypeOf<typeof Change>;
const change = (n: number): Change => ({ item: `item-${n % 7}`, n });
const pos = (n: number): LogPosition => {
  if (!LogPosition.is(n)) throw new Error(`bad position ${n}`);
  return n;
};

const segmentsOf = (dir: string): string[] => readdirSync(dir).filter((n) => n.endsWith('.log')).sort();
const lastSegment = (dir: string): string => path.join(dir, segmentsOf(dir).at(-1) ?? '');

const replayAll = async (dir: string, after: LogPosition | 'start' = 'start'): Promise<Array<[number, Change]>> => {
  const log = expectRight(await openChangeLog(dir, Change)());
  const seen: Array<[number, Change]> = [];
  expectRight(await log.replay(after, (r, p) => void seen.push([p, r]))());
  expectRight(await log.close()());
  return seen;
};

/** Appends n records one per append, returning the byte offset where each frame starts in its segment. */
const fill = async (dir: string, n: number, segmentBytes?: number): Promise<void> => {
  const log = expectRight(await openChangeLog(dir, Change, segmentBytes === undefined ? {} : { segmentBytes })());
  for (let i = 1; i <= n; i++) expect(expectRight(await log.append([change(i)])())).toBe(i);
  expectRight(await log.close()());
};

describe('openChangeLog', () => {
  it('appends and replays in order, positions counting records', async () => {
    const dir = temp.make();
    const log = expectRight(await openChangeLog(dir, Change)());
    expect(log.end()).toBe(0);
    expect(expectRight(await log.append([change(1), change(2), change(3)])())).toBe(3);
    expect(expectRight(await log.append([change(4)])())).toBe(4);
    expect(expectRight(await log.append([])())).toBe(4);
    const seen: Array<[number, Change]> = [];
    expect(expectRight(await log.replay('start', (r, p) => void seen.push([p, r]))())).toBe(4);
    expect(seen).toEqual([1, 2, 3, 4].map((n) => [n, change(n)]));
    const after2: number[] = [];
    expect(expectRight(await log.replay(pos(2), (_r, p) => void after2.push(p))())).toBe(4);
    expect(after2).toEqual([3, 4]);
    expect(expectRight(await log.replay(pos(4), () => undefined)())).toBe(4);
    expectRight(await log.close()());
    expect(await replayAll(dir)).toEqual(seen);
  });

  it('lets appends waiting at the same time share one fsync', async () => {
    const dir = temp.make();
    const log = expectRight(await openChangeLog(dir, Change)());
    expectRight(await log.append([change(0)])());
    const probe = await fsp.open(path.join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const spy = jest.spyOn(proto, 'datasync');
    try {
      const positions = (await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([change(i + 1)])()))).map(expectRight);
      expect(new Set(positions).size).toBe(50);
      expect([...positions].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
      expect(spy.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      spy.mockRestore();
    }
    expectRight(await log.close()());
    expect((await replayAll(dir)).map(([p]) => p)).toEqual(Array.from({ length: 51 }, (_, i) => i + 1));
  });

  it('rotates segments named by their first position and replays across them', async () => {
    const dir = temp.make();
    await fill(dir, 60, 400);
    const names = segmentsOf(dir);
    expect(names.length).toBeGreaterThan(5);
    const starts = names.map((n) => Number(/(\d+)/.exec(n)?.[1]));
    expect(starts[0]).toBe(1);
    for (const name of names) expect(statSync(path.join(dir, name)).size).toBeLessThanOrEqual(400);
    const all = await replayAll(dir);
    expect(all.map(([p, r]) => [p, r.n])).toEqual(Array.from({ length: 60 }, (_, i) => [i + 1, i + 1]));
    // From the first record of a later segment, and from the middle of one.
    const second = starts[1] ?? 0;
    expect((await replayAll(dir, pos(second - 1)))[0]?.[0]).toBe(second);
    expect((await replayAll(dir, pos(second + 1)))[0]?.[0]).toBe(second + 2);
  });

  it('keeps the checkpoint across reopen and compacts only what it covers', async () => {
    const dir = temp.make();
    await fill(dir, 40, 300);
    const before = segmentsOf(dir).length;
    const log = expectRight(await openChangeLog(dir, Change, { segmentBytes: 300 })());
    expect(expectRight(await log.checkpointed()())).toBe(0);
    // Nothing is checkpointed yet: compaction must not remove anything.
    expect(expectRight(await log.truncateBefore(pos(40))())).toBe(0);
    expectRight(await log.checkpoint(pos(20))());
    expectRight(await log.checkpoint(pos(10))()); // never moves back
    expect(expectRight(await log.checkpointed()())).toBe(20);
    const removed = expectRight(await log.truncateBefore(pos(40))());
    expect(removed).toBeGreaterThan(0);
    expectRight(await log.close()());

    expect(segmentsOf(dir).length).toBe(before - removed);
    const reopened = expectRight(await openChangeLog(dir, Change)());
    expect(expectRight(await reopened.checkpointed()())).toBe(20);
    const rest: number[] = [];
    expectRight(await reopened.replay(pos(20), (_r, p) => void rest.push(p))());
    expect(rest).toEqual(Array.from({ length: 20 }, (_, i) => i + 21));
    const fromStart: number[] = [];
    expectRight(await reopened.replay('start', (_r, p) => void fromStart.push(p))());
    expect(fromStart[0]).toBeLessThanOrEqual(21);
    expect(fromStart.at(-1)).toBe(40);
    expect(expectLeft(await reopened.replay(pos(0), () => undefined)())._tag).toBe('LogTruncated');
    expect(() => reopened.checkpoint(pos(41))).toThrow(RangeError);
    expectRight(await reopened.close()());
  });

  it('never removes the segment being written, even when all is checkpointed', async () => {
    const dir = temp.make();
    await fill(dir, 30, 250);
    const log = expectRight(await openChangeLog(dir, Change, { segmentBytes: 250 })());
    expectRight(await log.checkpoint(pos(30))());
    expectRight(await log.truncateBefore(pos(30))());
    expect(segmentsOf(dir)).toHaveLength(1);
    expect(expectRight(await log.append([change(31)])())).toBe(31);
    expectRight(await log.close()());
    expect((await replayAll(dir)).at(-1)?.[0]).toBe(31);
  });

  it('cuts a torn tail at any byte and continues appending after it', async () => {
    const dir = temp.make();
    await fill(dir, 12);
    const file = lastSegment(dir);
    const pristine = readFileSync(file);
    // Frame boundaries, from a clean replay of record sizes.
    const ends: number[] = [];
    let offset = 0;
    while (offset < pristine.length) {
      offset += 16 + pristine.readUInt32LE(offset);
      ends.push(offset);
    }
    const cuts = new Set<number>([1, 15, 16, 17, pristine.length - 1]);
    for (let i = 0; i < 25; i++) cuts.add(1 + Math.floor(Math.random() * (pristine.length - 1)));
    for (const cut of cuts) {
      writeFileSync(file, pristine.subarray(0, cut));
      const kept = ends.filter((e) => e <= cut).length;
      const reports: RecoveryReport[] = [];
      const log = expectRight(await openChangeLog(dir, Change, { onRecovery: (r) => reports.push(r) })());
      const keptEnd = kept === 0 ? 0 : (ends[kept - 1] ?? 0);
      if (keptEnd === cut) {
        expect(log.recovery).toBeNull();
      } else {
        expect(log.recovery).toMatchObject({ segment: file, offset: keptEnd, droppedBytes: cut - keptEnd });
        expect(reports).toEqual([log.recovery]);
      }
      expect(log.end()).toBe(kept);
      expect(expectRight(await log.append([change(100)])())).toBe(kept + 1);
      const seen: Array<[number, Change]> = [];
      expectRight(await log.replay('start', (r, p) => void seen.push([p, r]))());
      expect(seen).toEqual([...Array.from({ length: kept }, (_, i): [number, Change] => [i + 1, change(i + 1)]), [kept + 1, change(100)]]);
      expectRight(await log.close()());
    }
  });

  it('cuts a last record whose bytes were changed, or zeros written after it', async () => {
    const dir = temp.make();
    await fill(dir, 5);
    const file = lastSegment(dir);
    const pristine = readFileSync(file);
    const lastLength = 16 + (JSON.stringify(change(5)).length);
    for (let at = pristine.length - lastLength; at < pristine.length; at += 3) {
      const damaged = Buffer.from(pristine);
      damaged[at] = (damaged[at] ?? 0) ^ 0xff;
      writeFileSync(file, damaged);
      const log = expectRight(await openChangeLog(dir, Change)());
      expect(log.recovery).toMatchObject({ offset: pristine.length - lastLength, droppedBytes: lastLength });
      expect(log.end()).toBe(4);
      expectRight(await log.close()());
    }
    writeFileSync(file, pristine);
    appendFileSync(file, Buffer.alloc(4096));
    const log = expectRight(await openChangeLog(dir, Change)());
    expect(log.recovery).toMatchObject({ offset: pristine.length, droppedBytes: 4096 });
    expect(log.end()).toBe(5);
    expectRight(await log.close()());
  });

  it('refuses to open when a record before the tail is damaged', async () => {
    const dir = temp.make();
    await fill(dir, 6);
    const file = lastSegment(dir);
    const pristine = readFileSync(file);
    const first = 16 + pristine.readUInt32LE(0);
    // A changed payload byte, CRC byte, sequence byte and length byte of records 2 and 3.
    for (const at of [first + 20, first + 5, first + 9, first, first + 16 + pristine.readUInt32LE(first) + 1]) {
      const damaged = Buffer.from(pristine);
      damaged[at] = (damaged[at] ?? 0) ^ 0x10;
      writeFileSync(file, damaged);
      const err = expectLeft(await openChangeLog(dir, Change)());
      expect(err).toMatchObject({ _tag: 'LogCorrupt', key: file });
      expect(readFileSync(file)).toEqual(damaged); // nothing was cut
    }
    writeFileSync(file, pristine);
    expect((await replayAll(dir)).length).toBe(6);
  });

  it('reports damage in an older segment as LogCorrupt on replay', async () => {
    const dir = temp.make();
    await fill(dir, 30, 300);
    const first = path.join(dir, segmentsOf(dir)[0] ?? '');
    const bytes = readFileSync(first);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 1;
    writeFileSync(first, bytes);
    const log = expectRight(await openChangeLog(dir, Change)());
    const err = expectLeft(await log.replay('start', () => undefined)());
    expect(err).toMatchObject({ _tag: 'LogCorrupt', key: first });
    expectRight(await log.close()());
  });

  it('reports a missing segment as LogCorrupt on replay', async () => {
    const dir = temp.make();
    await fill(dir, 30, 300);
    await fsp.rm(path.join(dir, segmentsOf(dir)[1] ?? ''));
    const log = expectRight(await openChangeLog(dir, Change)());
    expect(expectLeft(await log.replay('start', () => undefined)())._tag).toBe('LogCorrupt');
    expectRight(await log.close()());
  });

  it('names segment and offset when a payload fails the codec', async () => {
    const dir = temp.make();
    await fill(dir, 3);
    const Strict = t.type({ item: t.string, n: t.string });
    const log = expectRight(await openChangeLog(dir, Strict)());
    const err = expectLeft(await log.replay('start', () => undefined)());
    expect(err).toMatchObject({ _tag: 'LogDecodeError', key: lastSegment(dir), offset: 0 });
    expectRight(await log.close()());
  });

  it('stops replay with LogVisitError when the visitor fails', async () => {
    const dir = temp.make();
    await fill(dir, 5);
    const log = expectRight(await openChangeLog(dir, Change)());
    const visited: number[] = [];
    const err = expectLeft(
      await log.replay('start', async (_r, p) => {
        visited.push(p);
        if (p === 3) throw new Error('apply failed');
      })(),
    );
    expect(err).toMatchObject({ _tag: 'LogVisitError', position: 3 });
    expect(visited).toEqual([1, 2, 3]);
    expectRight(await log.close()());
  });

  it('does not visit records appended during a replay', async () => {
    const dir = temp.make();
    await fill(dir, 3);
    const log = expectRight(await openChangeLog(dir, Change)());
    const visited: number[] = [];
    const last = expectRight(
      await log.replay('start', async (_r, p) => {
        visited.push(p);
        expectRight(await log.append([change(10 + p)])());
      })(),
    );
    expect(visited).toEqual([1, 2, 3]);
    expect(last).toBe(3);
    expect(log.end()).toBe(6);
    expectRight(await log.close()());
  });

  it('is exclusive per directory and refuses use after close', async () => {
    const dir = temp.make();
    const log = expectRight(await openChangeLog(dir, Change)());
    expect(expectLeft(await openChangeLog(dir, Change)())._tag).toBe('LogLocked');
    expectRight(await log.close()());
    expect(expectLeft(await log.append([change(1)])())._tag).toBe('LogClosed');
    expect(expectLeft(await log.replay('start', () => undefined)())._tag).toBe('LogClosed');
    const again = expectRight(await openChangeLog(dir, Change)());
    expect(again.end()).toBe(0);
    expectRight(await again.close()());
  });

  it('rejects a checkpoint beyond the end of the log as damage', async () => {
    const dir = temp.make();
    await fill(dir, 3);
    writeFileSync(path.join(dir, 'checkpoint.json'), JSON.stringify({ version: 1, position: 9 }));
    expect(expectLeft(await openChangeLog(dir, Change)())._tag).toBe('LogCorrupt');
    writeFileSync(path.join(dir, 'checkpoint.json'), '{"version":1');
    expect(expectLeft(await openChangeLog(dir, Change)())._tag).toBe('LogDecodeError');
    truncateSync(path.join(dir, 'checkpoint.json'), 0);
    expect(expectLeft(await openChangeLog(dir, Change)())._tag).toBe('LogDecodeError');
  });
});
