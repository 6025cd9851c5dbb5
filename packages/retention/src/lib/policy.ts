import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import type { RetentionError } from './errors';

/*
 * Retention policies (the seed's "Retention Policy"): pure functions of the policy, the
 * deletion instants and `now`, tested with golden tables.
 */

export const DAY_MS = 86_400_000;
export const DATA_RETENTION_ATTRIBUTE = 'ZxBackup_DataRetentionDays';
export const ACCOUNT_RETENTION_ATTRIBUTE = 'ZxBackup_AccountRetentionDays';
export const DEFAULT_RETENTION_DAYS = 30;
/** A century: anything above is a typo, not a policy. */
export const MAX_RETENTION_DAYS = 36_500;

/** Days an item (data) or an account marked deleted is kept; 0 keeps it forever. */
export interface RetentionPolicy {
  readonly dataRetentionDays: number;
  readonly accountRetentionDays: number;
}

export const DEFAULT_RETENTION_POLICY: RetentionPolicy = {
  dataRetentionDays: DEFAULT_RETENTION_DAYS,
  accountRetentionDays: DEFAULT_RETENTION_DAYS,
};

/** A whole number of days written in decimal (`"30"`, `" 0 "`), 0..MAX_RETENTION_DAYS. */
export const RetentionDaysFromString = new t.Type<number, string, unknown>(
  'RetentionDaysFromString',
  (u): u is number => typeof u === 'number' && Number.isInteger(u) && u >= 0 && u <= MAX_RETENTION_DAYS,
  (u, c) => {
    if (typeof u !== 'string') return t.failure(u, c, 'expected a string');
    const s = u.trim();
    if (!/^\d{1,6}$/.test(s)) return t.failure(u, c, 'expected a whole number of days');
    const n = Number(s);
    return n <= MAX_RETENTION_DAYS ? t.success(n) : t.failure(u, c, `expected at most ${MAX_RETENTION_DAYS} days`);
  },
  (n) => String(n),
);

const decodeDays = (
  attributes: Readonly<Record<string, string | undefined>>,
  attribute: string,
): E.Either<RetentionError, number> => {
  const raw = attributes[attribute];
  if (raw === undefined) return E.right(DEFAULT_RETENTION_DAYS);
  return pipe(
    RetentionDaysFromString.decode(raw),
    E.mapLeft((): RetentionError => ({
      _tag: 'InvalidPolicy',
      op: 'decodeRetentionPolicy',
      key: attribute,
      message: `${attribute} must be a whole number of days between 0 (keep forever) and ${MAX_RETENTION_DAYS}, got ${JSON.stringify(raw)}`,
    })),
  );
};

/** The policy from configuration attributes; a missing attribute takes the default (30 days). */
export const decodeRetentionPolicy = (
  attributes: Readonly<Record<string, string | undefined>>,
): E.Either<RetentionError, RetentionPolicy> =>
  pipe(
    E.Do,
    E.bind('dataRetentionDays', () => decodeDays(attributes, DATA_RETENTION_ATTRIBUTE)),
    E.bind('accountRetentionDays', () => decodeDays(attributes, ACCOUNT_RETENTION_ATTRIBUTE)),
  );

/** Both retentions infinite: the Backup Purge does not run (the seed). */
export const isInfiniteRetention = (policy: RetentionPolicy): boolean =>
  policy.dataRetentionDays === 0 && policy.accountRetentionDays === 0;

/** What happens to a deleted item or account, and why (the reason is printed by `--dry-run`). */
export type Verdict =
  | { readonly purge: true; readonly reason: 'data-retention-expired' | 'account-retention-expired' }
  | {
      readonly purge: false;
      readonly reason:
        | 'infinite-retention'
        | 'within-data-retention'
        | 'within-account-retention'
        /** Past the data retention, but its account is deleted and within the account retention. */
        | 'kept-with-deleted-account'
        | 'not-deleted';
    };

const expired = (deletedAt: number, days: number, clock: number): boolean => deletedAt < clock - days * DAY_MS;

/** A deleted account: purged with all its items once its deletion is older than the account retention. */
export const judgeAccount = (accountDeletedAt: number | undefined, policy: RetentionPolicy, now: number): Verdict => {
  if (accountDeletedAt === undefined) return { purge: false, reason: 'not-deleted' };
  if (policy.accountRetentionDays === 0) return { purge: false, reason: 'infinite-retention' };
  return expired(accountDeletedAt, policy.accountRetentionDays, now)
    ? { purge: true, reason: 'account-retention-expired' }
    : { purge: false, reason: 'within-account-retention' };
};

/**
 * A deleted item. Its deletion must be older than the data retention. When its account is
 * deleted too, the data-retention clock stops at the account's deletion: everything that could
 * be restored when the account was deleted stays restorable until the account retention
 * passes (the seed), and only items already past the data retention at that moment go.
 */
export const judgeDeletedItem = (
  item: { readonly deletedAt: number; readonly accountDeletedAt?: number | undefined },
  policy: RetentionPolicy,
  now: number,
): Verdict => {
  const account = judgeAccount(item.accountDeletedAt, policy, now);
  if (account.purge) return account;
  if (policy.dataRetentionDays === 0) return { purge: false, reason: 'infinite-retention' };
  const clock = item.accountDeletedAt === undefined ? now : Math.min(now, item.accountDeletedAt);
  if (expired(item.deletedAt, policy.dataRetentionDays, clock)) return { purge: true, reason: 'data-retention-expired' };
  return expired(item.deletedAt, policy.dataRetentionDays, now)
    ? { purge: false, reason: 'kept-with-deleted-account' }
    : { purge: false, reason: 'within-data-retention' };
};

/** Every item deleted before this instant may be purged by data retention (undefined: none). */
export const dataCutoff = (policy: RetentionPolicy, now: number): number | undefined =>
  policy.dataRetentionDays === 0 ? undefined : now - policy.dataRetentionDays * DAY_MS;
