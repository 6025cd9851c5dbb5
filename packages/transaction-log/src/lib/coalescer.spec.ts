import { makeCoalescer, type Clock } from './coalescer';

/** A clock whose time only moves when the test says so. */
const makeFakeClock = (): Clock & { readonly advance: (ms: number) => void; readonly timers: () => number } => {
  let now = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; callback: () => void }>();
  return {
    now: () => now,
    setTimeout: (callback, ms) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, callback });
      return id;
    },
    clearTimeout: (handle) => void timers.delete(handle as number),
    advance: (ms) => {
      const target = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, tm]) => tm.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].callback();
      }
      now = target;
    },
    timers: () => timers.size,
  };
};

interface Change {
  readonly item: string;
  readonly flags: ReadonlyArray<string>;
  readonly count: number;
}
const ch = (item: string, flag: string): Change => ({ item, flags: [flag], count: 1 });
const mergeChanges = (a: Change, b: Change): Change => ({ item: a.item, flags: [...a.flags, ...b.flags], count: a.count + b.count });
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const setup = (extra: { maxPending?: number; emit?: (batch: ReadonlyArray<Change>) => void | Promise<void> } = {}) => {
  const clock = makeFakeClock();
  const batches: Array<ReadonlyArray<Change>> = [];
  const c = makeCoalescer<Change>({
    windowMs: 50,
    keyOf: (e) => e.item,
    merge: mergeChanges,
    emit: extra.emit ?? ((batch) => void batches.push(batch)),
    clock,
    ...(extra.maxPending === undefined ? {} : { maxPending: extra.maxPending }),
  });
  return { clock, batches, c };
};

describe('makeCoalescer', () => {
  it('merges changes of one key within the window into one, in order of first change', async () => {
    const { clock, batches, c } = setup();
    c.push(ch('a', 'seen'));
    clock.advance(10);
    c.push(ch('b', 'flagged'));
    c.push(ch('a', 'flagged'));
    clock.advance(30);
    c.push(ch('a', 'moved'));
    expect(c.pending()).toBe(2);
    expect(batches).toHaveLength(0);
    clock.advance(9);
    await settle();
    expect(batches).toHaveLength(0);
    clock.advance(1); // 50 ms after the first pending change
    await settle();
    expect(batches).toEqual([[{ item: 'a', flags: ['seen', 'flagged', 'moved'], count: 3 }, ch('b', 'flagged')]]);
    expect(c.pending()).toBe(0);
    expect(clock.timers()).toBe(0);
  });

  it('starts a new window for changes after a batch went out', async () => {
    const { clock, batches, c } = setup();
    c.push(ch('a', '1'));
    clock.advance(50);
    c.push(ch('a', '2'));
    clock.advance(49);
    await settle();
    expect(batches).toEqual([[ch('a', '1')]]);
    clock.advance(1);
    await settle();
    expect(batches).toEqual([[ch('a', '1')], [ch('a', '2')]]);
  });

  it('flush emits everything pending at once and cancels the timer', async () => {
    const { clock, batches, c } = setup();
    c.push(ch('a', '1'));
    c.push(ch('b', '1'));
    await c.flush();
    expect(batches).toEqual([[ch('a', '1'), ch('b', '1')]]);
    expect(clock.timers()).toBe(0);
    clock.advance(100);
    await c.flush();
    expect(batches).toHaveLength(1);
  });

  it('emits early when maxPending keys are waiting', async () => {
    const { batches, c } = setup({ maxPending: 3 });
    for (const item of ['a', 'b', 'a', 'c', 'd']) c.push(ch(item, 'x'));
    await settle();
    expect(batches.map((b) => b.map((e) => e.item))).toEqual([['a', 'b', 'c']]);
    expect(c.pending()).toBe(1);
  });

  it('never runs two emits at once and keeps batch order', async () => {
    const events: string[] = [];
    let release: () => void = () => undefined;
    const { clock, c } = setup({
      emit: async (batch) => {
        const name = batch.map((e) => e.item).join('');
        events.push(`start ${name}`);
        if (name === 'a') await new Promise<void>((resolve) => (release = resolve));
        events.push(`end ${name}`);
      },
    });
    c.push(ch('a', '1'));
    clock.advance(50);
    c.push(ch('b', '1'));
    clock.advance(50);
    await settle();
    expect(events).toEqual(['start a']);
    release();
    await c.flush();
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b']);
  });

  it('hands a failed emit to onError, or to the next flush', async () => {
    const clock = makeFakeClock();
    const failures: unknown[] = [];
    const withHandler = makeCoalescer<Change>({
      windowMs: 50,
      keyOf: (e) => e.item,
      merge: mergeChanges,
      emit: () => Promise.reject(new Error('disk full')),
      onError: (cause) => failures.push(cause),
      clock,
    });
    withHandler.push(ch('a', '1'));
    clock.advance(50);
    await withHandler.flush();
    expect(failures).toEqual([new Error('disk full')]);

    const withoutHandler = makeCoalescer<Change>({
      windowMs: 50,
      keyOf: (e) => e.item,
      merge: mergeChanges,
      emit: () => {
        throw new Error('boom');
      },
      clock,
    });
    withoutHandler.push(ch('a', '1'));
    clock.advance(50);
    await expect(withoutHandler.flush()).rejects.toThrow('boom');
    await expect(withoutHandler.flush()).resolves.toBeUndefined();
  });

  it('works with the real clock', async () => {
    const batches: Array<ReadonlyArray<string>> = [];
    const c = makeCoalescer<string>({ windowMs: 5, keyOf: (e) => e, merge: (a) => a, emit: (b) => void batches.push(b) });
    c.push('x');
    c.push('x');
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(batches).toEqual([['x']]);
  });
});
