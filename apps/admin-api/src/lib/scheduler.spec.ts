import { nextPlannedRun, startScheduler, MISSED_RUN_TOLERANCE_MS, type PlannedRun, type SchedulerClock } from './scheduler';

/** A clock whose time only moves when the test says so. */
const makeFakeClock = (start: number) => {
  let now = start;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let nextId = 1;
  const clock: SchedulerClock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = nextId++;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h) => {
      timers = timers.filter((t) => t.id !== h);
    },
  };
  const advanceTo = async (t: number) => {
    for (;;) {
      const due = timers.filter((x) => x.at <= t).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      timers = timers.filter((x) => x !== due);
      now = Math.max(now, due.at);
      due.fn();
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
    now = t;
  };
  const jumpTo = (t: number) => {
    now = t;
  };
  return { clock, advanceTo, jumpTo, pending: () => timers.length };
};

const local = (y: number, mo: number, d: number, h = 0, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();
const config = { enabled: true, smartScanTime: '04:00', purgeDay: 'Sunday' };

describe('nextPlannedRun', () => {
  it('plans the daily SmartScan at the configured local time, strictly after now', () => {
    expect(nextPlannedRun(config, local(2026, 11, 26, 3, 59))).toEqual({ at: local(2026, 11, 26, 4, 0), withPurge: false });
    expect(nextPlannedRun(config, local(2026, 11, 26, 4, 0))?.at).toBe(local(2026, 11, 27, 4, 0));
  });
  it('adds the purge on the purge day only (29 Nov 2026 is a Sunday)', () => {
    expect(nextPlannedRun(config, local(2026, 11, 28, 12, 0))).toEqual({ at: local(2026, 11, 29, 4, 0), withPurge: true });
    expect(nextPlannedRun({ ...config, purgeDay: 'Wednesday' }, local(2026, 11, 28, 12, 0))?.withPurge).toBe(false);
  });
  it('plans nothing when scheduling is off', () => {
    expect(nextPlannedRun({ ...config, enabled: false }, local(2026, 11, 26))).toBeUndefined();
  });
});

describe('startScheduler', () => {
  it('runs once a day at the planned time, with the purge on the purge day', async () => {
    const fake = makeFakeClock(local(2026, 11, 27, 12, 0));
    const runs: PlannedRun[] = [];
    const scheduler = await startScheduler({ config: async () => config, clock: fake.clock, runSmartScan: async (r) => void runs.push(r) });
    await fake.advanceTo(local(2026, 11, 30, 12, 0));
    scheduler.stop();
    expect(runs.map((r) => [new Date(r.at).getDate(), r.withPurge])).toEqual([
      [28, false],
      [29, true],
      [30, false],
    ]);
  });

  it('does not defer a missed run: after a long stall it waits for the next day', async () => {
    const fake = makeFakeClock(local(2026, 11, 27, 12, 0));
    const runs: PlannedRun[] = [];
    const missed: PlannedRun[] = [];
    const scheduler = await startScheduler({
      config: async () => config,
      clock: fake.clock,
      runSmartScan: async (r) => void runs.push(r),
      onMissed: (r) => missed.push(r),
    });
    // The machine was suspended from before 04:00 until well after: the timer fires late.
    fake.jumpTo(local(2026, 11, 28, 4, 0) + MISSED_RUN_TOLERANCE_MS + 60_000);
    await fake.advanceTo(fake.clock.now());
    expect(runs).toHaveLength(0);
    expect(missed.map((r) => r.at)).toEqual([local(2026, 11, 28, 4, 0)]);
    expect(scheduler.planned()?.at).toBe(local(2026, 11, 29, 4, 0));
    scheduler.stop();
  });

  it('re-reads the configuration after each run and stops planning when scheduling is turned off', async () => {
    const fake = makeFakeClock(local(2026, 11, 27, 12, 0));
    let enabled = true;
    let count = 0;
    const scheduler = await startScheduler({
      config: async () => ({ ...config, enabled }),
      clock: fake.clock,
      runSmartScan: async () => {
        count++;
        enabled = false;
      },
    });
    await fake.advanceTo(local(2026, 12, 5, 0, 0));
    expect(count).toBe(1);
    expect(scheduler.planned()).toBeUndefined();
    expect(fake.pending()).toBe(0);
    scheduler.stop();
  });
});
