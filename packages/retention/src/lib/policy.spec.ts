import * as E from 'fp-ts/Either';
import {
  ACCOUNT_RETENTION_ATTRIBUTE,
  DATA_RETENTION_ATTRIBUTE,
  DAY_MS,
  decodeRetentionPolicy,
  isInfiniteRetention,
  judgeAccount,
  judgeDeletedItem,
  type RetentionPolicy,
} from './policy';

const NOW = Date.UTC(2026, 0, 31);
const ago = (days: number, ms = 0): number => NOW - days * DAY_MS - ms;

describe('decodeRetentionPolicy', () => {
  const ok: ReadonlyArray<[Record<string, string>, RetentionPolicy]> = [
    [{}, { dataRetentionDays: 30, accountRetentionDays: 30 }],
    [{ [DATA_RETENTION_ATTRIBUTE]: '7' }, { dataRetentionDays: 7, accountRetentionDays: 30 }],
    [{ [DATA_RETENTION_ATTRIBUTE]: '0', [ACCOUNT_RETENTION_ATTRIBUTE]: '0' }, { dataRetentionDays: 0, accountRetentionDays: 0 }],
    [{ [ACCOUNT_RETENTION_ATTRIBUTE]: ' 90 ' }, { dataRetentionDays: 30, accountRetentionDays: 90 }],
    [{ [ACCOUNT_RETENTION_ATTRIBUTE]: '36500' }, { dataRetentionDays: 30, accountRetentionDays: 36500 }],
    [{ Unrelated: 'x' }, { dataRetentionDays: 30, accountRetentionDays: 30 }],
  ];
  it.each(ok)('%j → %j', (attributes, policy) => {
    expect(decodeRetentionPolicy(attributes)).toEqual(E.right(policy));
  });

  const bad: ReadonlyArray<[string, string]> = [
    [DATA_RETENTION_ATTRIBUTE, '-1'],
    [DATA_RETENTION_ATTRIBUTE, 'abc'],
    [DATA_RETENTION_ATTRIBUTE, '1.5'],
    [DATA_RETENTION_ATTRIBUTE, ''],
    [ACCOUNT_RETENTION_ATTRIBUTE, '36501'],
    [ACCOUNT_RETENTION_ATTRIBUTE, '30d'],
  ];
  it.each(bad)('%s=%j is an InvalidPolicy naming the attribute', (attribute, value) => {
    const r = decodeRetentionPolicy({ [attribute]: value });
    expect(E.isLeft(r) && r.left).toMatchObject({ _tag: 'InvalidPolicy', key: attribute });
    expect(E.isLeft(r) && r.left.message).toContain(attribute);
  });
});

describe('isInfiniteRetention', () => {
  it.each([
    [0, 0, true],
    [0, 30, false],
    [30, 0, false],
    [30, 30, false],
  ])('data %i, account %i → %s', (d, a, expected) => {
    expect(isInfiniteRetention({ dataRetentionDays: d, accountRetentionDays: a })).toBe(expected);
  });
});

describe('judgeAccount', () => {
  const p: RetentionPolicy = { dataRetentionDays: 30, accountRetentionDays: 60 };
  it.each([
    ['live account', undefined, p, false, 'not-deleted'],
    ['deleted yesterday', ago(1), p, false, 'within-account-retention'],
    ['deleted exactly 60 days ago', ago(60), p, false, 'within-account-retention'],
    ['deleted 60 days and 1 ms ago', ago(60, 1), p, true, 'account-retention-expired'],
    ['deleted long ago, infinite account retention', ago(9000), { ...p, accountRetentionDays: 0 }, false, 'infinite-retention'],
  ] as const)('%s', (_name, deletedAt, policy, purge, reason) => {
    expect(judgeAccount(deletedAt, policy, NOW)).toEqual({ purge, reason });
  });
});

describe('judgeDeletedItem', () => {
  const p: RetentionPolicy = { dataRetentionDays: 30, accountRetentionDays: 60 };
  // [name, item deleted at, account deleted at, policy, purge, reason]
  it.each([
    ['deleted 10 days ago', ago(10), undefined, p, false, 'within-data-retention'],
    ['deleted exactly 30 days ago (boundary kept)', ago(30), undefined, p, false, 'within-data-retention'],
    ['deleted 30 days and 1 ms ago', ago(30, 1), undefined, p, true, 'data-retention-expired'],
    ['deleted a year ago', ago(365), undefined, p, true, 'data-retention-expired'],
    ['infinite data retention', ago(365), undefined, { ...p, dataRetentionDays: 0 }, false, 'infinite-retention'],
    ['account deleted 10 days ago, item deleted with it', ago(10), ago(10), p, false, 'within-data-retention'],
    ['account deleted 20 days ago, item deleted 45 days ago: kept for the account', ago(45), ago(20), p, false, 'kept-with-deleted-account'],
    ['account deleted 20 days ago, item deleted 50 days ago (exactly 30 before the account)', ago(50), ago(20), p, false, 'kept-with-deleted-account'],
    ['account deleted 20 days ago, item deleted 51 days ago: already expired then', ago(51), ago(20), p, true, 'data-retention-expired'],
    ['account deleted 61 days ago: everything goes', ago(61), ago(61), p, true, 'account-retention-expired'],
    ['account deleted 61 days ago, infinite data retention: account retention still applies', ago(61), ago(61), { ...p, dataRetentionDays: 0 }, true, 'account-retention-expired'],
    ['account deleted long ago, infinite account retention: items frozen at the account deletion', ago(400), ago(390), { ...p, accountRetentionDays: 0 }, false, 'kept-with-deleted-account'],
    ['account deleted long ago, infinite account retention, item old then', ago(500), ago(390), { ...p, accountRetentionDays: 0 }, true, 'data-retention-expired'],
    ['both infinite', ago(5000), ago(5000), { dataRetentionDays: 0, accountRetentionDays: 0 }, false, 'infinite-retention'],
  ] as const)('%s', (_name, deletedAt, accountDeletedAt, policy, purge, reason) => {
    expect(judgeDeletedItem({ deletedAt, accountDeletedAt }, policy, NOW)).toEqual({ purge, reason });
  });
});
