/**
 * One writer per account at a time. A SmartScan diffs an account against the store's state
 * read at its start; a Real Time Scanner commit in between would be overwritten by a stale
 * state (or rejected as out of order), so both take the account's lock for a whole step.
 */
export interface AccountLocks {
  run<A>(account: string, task: () => Promise<A>): Promise<A>;
  /** Bumped after each locked task: lets a cache tell whether another writer touched the account. */
  generation(account: string): number;
}

export const makeAccountLocks = (): AccountLocks => {
  const tails = new Map<string, Promise<unknown>>();
  const generations = new Map<string, number>();
  return {
    run: <A>(account: string, task: () => Promise<A>): Promise<A> => {
      const before = tails.get(account) ?? Promise.resolve();
      const result = before.then(task, task).finally(() => {
        generations.set(account, (generations.get(account) ?? 0) + 1);
      });
      const tail = result.catch(() => undefined);
      tails.set(account, tail);
      void tail.then(() => {
        if (tails.get(account) === tail) tails.delete(account);
      });
      return result;
    },
    generation: (account) => generations.get(account) ?? 0,
  };
};
