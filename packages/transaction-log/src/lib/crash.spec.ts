// Kill tests: a child process appends (or allocates) in a loop and is SIGKILLed at a random
// moment; whatever it acknowledged must survive, and nothing it did not write may appear.
import * as E from 'fp-ts/Either';
import { openChangeLog } from './change-log';
import { openTxIdAllocator } from './tx-id-allocator';
import { bodyFor, compileForChildren, expectLeft, expectRight, makeTempDirs, spawnChild, TestRecord, watchChild } from '../test-support/test-util';

const temp = makeTempDirs();
let compiled: ReturnType<typeof compileForChildren>;
beforeAll(() => {
  compiled = compileForChildren();
});
afterAll(() => {
  temp.cleanup();
  compiled.remove();
});
jest.setTimeout(60_000);

/** Starts `script`, kills it with SIGKILL once `enough` returns true (plus a random delay), waits for it to be gone. */
const runAndKill = async (script: string, args: ReadonlyArray<string>, onLine: (line: string) => void, enough: () => boolean): Promise<void> => {
  const child = spawnChild(compiled.root, script, args);
  let killing = false;
  const exited = watchChild(child, (line) => {
    onLine(line);
    if (!killing && enough()) {
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 15));
    }
  });
  const { signal, code } = await exited;
  expect({ signal, code }).toEqual({ signal: 'SIGKILL', code: null });
};

describe('change log under SIGKILL', () => {
  it('replays every acknowledged record intact after each kill, and appending continues', async () => {
    const dir = temp.make();
    const acked = new Map<number, number>(); // position -> i
    let nextI = 0;
    let end = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      let ackedThisCycle = 0;
      await runAndKill(
        'append-loop.child',
        [dir, String(nextI), '65536', '4'],
        (line) => {
          const [last, is] = line.split(' ');
          const list = (is ?? '').split(',').map(Number);
          list.forEach((i, k) => acked.set(Number(last) - list.length + 1 + k, i));
          ackedThisCycle++;
        },
        () => ackedThisCycle >= 60 + cycle * 40,
      );

      const log = expectRight(await openChangeLog(dir, TestRecord)());
      const seen = new Map<number, number>();
      let previous = 0;
      expectRight(
        await log.replay('start', (r, p) => {
          expect(p).toBe(previous + 1);
          previous = p;
          expect(r.body).toBe(bodyFor(r.i)); // nothing misread
          seen.set(p, r.i);
        })(),
      );
      for (const [p, i] of acked) expect(seen.get(p)).toBe(i);
      expect(log.end()).toBe(previous);
      expect(previous).toBeGreaterThan(end);
      end = previous;
      // Unacknowledged but durable records may be there; their i's must be ones the child made.
      nextI = Math.max(...seen.values()) + 1;

      const more = expectRight(await log.append([{ i: nextI, body: bodyFor(nextI) }])());
      expect(more).toBe(end + 1);
      acked.set(more, nextI);
      end = more;
      nextI++;
      expectRight(await log.close()());
    }
  });
});

describe('transaction ids under SIGKILL', () => {
  it('start above every id ever returned, through kills and clean reopens', async () => {
    const dir = temp.make();
    const seen = new Set<number>();
    let highest = 0;
    const take = (first: number, count: number): void => {
      for (let id = first; id < first + count; id++) {
        expect(seen.has(id)).toBe(false);
        seen.add(id);
      }
      highest = Math.max(highest, first + count - 1);
    };
    for (let cycle = 0; cycle < 3; cycle++) {
      const before = highest;
      let lines = 0;
      await runAndKill(
        'allocate-loop.child',
        [dir, '50'],
        (line) => {
          const [first, count] = line.split(' ').map(Number);
          expect(first).toBeGreaterThan(before);
          take(first ?? 0, count ?? 0);
          lines++;
        },
        () => lines >= 300,
      );
      // The killed child's lock is stale now; a clean reopen follows the kill.
      const alloc = expectRight(await openTxIdAllocator(dir, { reserveBlock: 50 })());
      for (let i = 0; i < 20; i++) {
        const first = expectRight(await alloc.allocate(3)());
        expect(first).toBeGreaterThan(highest);
        take(first, 3);
      }
      expectRight(await alloc.close()());
    }
  });

  it('refuses the allocator to a second process while the first is alive', async () => {
    const dir = temp.make();
    const child = spawnChild(compiled.root, 'allocate-loop.child', [dir, '50']);
    let attempted = false;
    let result: E.Either<unknown, unknown> | null = null;
    const exited = watchChild(child, () => {
      if (attempted) return;
      attempted = true;
      void openTxIdAllocator(dir)().then((r) => {
        result = r;
        child.kill('SIGKILL');
      });
    });
    await exited;
    expect(result).not.toBeNull();
    expect(expectLeft(result ?? E.right(null))).toMatchObject({ _tag: 'LogLocked', holderPid: child.pid });
  });
});
