import * as O from 'fp-ts/Option';
import { stateAt, type History, type Transaction } from '@zxbackup/item-store';

/*
 * Reading one item's history for a restore (pure). "Live" means an entry whose op is not
 * `delete`.
 */

/** The item's state at T, none when it did not exist or was deleted then. */
export const liveAt = (history: History, at: number): Transaction | undefined => O.toUndefined(stateAt(history, at));

/** The last live state that started at or before T (what a message was just before it was deleted). */
export const lastLiveAtOrBefore = (history: History, at: number): Transaction | undefined => {
  for (let i = history.length - 1; i >= 0; i--) {
    const e = history[i] as Transaction;
    if (e.start <= at && e.op !== 'delete') return e;
  }
  return undefined;
};

/** The last live state of all. */
export const lastLive = (history: History): Transaction | undefined => lastLiveAtOrBefore(history, Number.MAX_SAFE_INTEGER);

/** When the item was deleted, if its current state is the deletion. */
export const deletionOf = (history: History): number | undefined => {
  const last = history[history.length - 1];
  return last?.op === 'delete' ? last.start : undefined;
};

/** `DD-MM-YY` (UTC) of an instant: the undelete folder and keyword carry the day of the restore. */
export const ddmmyy = (at: number): { dashed: string; underscored: string } => {
  const d = new Date(at);
  const parts = [d.getUTCDate(), d.getUTCMonth() + 1, d.getUTCFullYear() % 100].map((n) => String(n).padStart(2, '0'));
  return { dashed: parts.join('-'), underscored: parts.join('_') };
};
