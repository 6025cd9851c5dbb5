/** The timers a coalescer uses; tests pass a fake one so they never sleep. */
export interface Clock {
  readonly now: () => number;
  readonly setTimeout: (callback: () => void, ms: number) => unknown;
  readonly clearTimeout: (handle: unknown) => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface CoalescerOptions<E> {
  /** How long after the first pending change a batch is emitted (e.g. 50 ms). */
  readonly windowMs: number;
  /** Changes with the same key within one window become one change. */
  readonly keyOf: (e: E) => string;
  /** Folds a later change `b` into the pending `a` of the same key. */
  readonly merge: (a: E, b: E) => E;
  /** Receives each batch, in order of each key's first change; batches never overlap. */
  readonly emit: (batch: ReadonlyArray<E>) => void | Promise<void>;
  /** Emit early once this many keys are pending, to bound memory. Default: no limit. */
  readonly maxPending?: number;
  /**
   * Told when `emit` throws or rejects for a batch the window emitted. Without it the error
   * is kept and the next `flush()` rejects with it.
   */
  readonly onError?: (cause: unknown, batch: ReadonlyArray<E>) => void;
  readonly clock?: Clock;
}

export interface Coalescer<E> {
  readonly push: (e: E) => void;
  /** Emits everything pending and resolves once every batch so far was emitted. */
  readonly flush: () => Promise<void>;
  /** Number of keys waiting for the window. */
  readonly pending: () => number;
}

/**
 * Merges bursts of changes to the same thing (an item touched several times in the same
 * moment) into one change, so the Real Time Scanner records one metadata change for them.
 */
export const makeCoalescer = <E>(options: CoalescerOptions<E>): Coalescer<E> => {
  const { windowMs, keyOf, merge, emit, onError } = options;
  const clock = options.clock ?? systemClock;
  const maxPending = options.maxPending ?? Infinity;
  if (!(windowMs >= 0)) throw new RangeError(`windowMs must be >= 0, got ${windowMs}`);
  if (!(maxPending >= 1)) throw new RangeError(`maxPending must be >= 1, got ${maxPending}`);

  let pending = new Map<string, E>();
  let timer: { handle: unknown } | null = null;
  let windowStart = 0;
  // Batches are emitted one after another, never concurrently.
  let emitting: Promise<void> = Promise.resolve();
  let kept: { cause: unknown } | null = null;

  const cutBatch = (): Promise<void> => {
    if (timer !== null) {
      clock.clearTimeout(timer.handle);
      timer = null;
    }
    if (pending.size === 0) return emitting;
    const batch = [...pending.values()];
    pending = new Map();
    emitting = emitting.then(async () => {
      try {
        await emit(batch);
      } catch (cause) {
        if (onError !== undefined) onError(cause, batch);
        else kept ??= { cause };
      }
    });
    return emitting;
  };

  const onTimer = (): void => {
    timer = null;
    // A timer that fires early must not shorten the window.
    const left = windowStart + windowMs - clock.now();
    if (left > 0) timer = { handle: clock.setTimeout(onTimer, left) };
    else void cutBatch();
  };

  const push = (e: E): void => {
    const key = keyOf(e);
    const before = pending.get(key);
    pending.set(key, before === undefined ? e : merge(before, e));
    if (pending.size >= maxPending) {
      void cutBatch();
      return;
    }
    if (timer === null) {
      windowStart = clock.now();
      timer = { handle: clock.setTimeout(onTimer, windowMs) };
    }
  };

  const flush = async (): Promise<void> => {
    await cutBatch();
    if (kept !== null) {
      const { cause } = kept;
      kept = null;
      throw cause;
    }
  };

  return { push, flush, pending: () => pending.size };
};
