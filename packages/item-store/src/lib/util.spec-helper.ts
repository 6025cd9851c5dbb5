import * as E from 'fp-ts/Either';
import type { AccountId, ItemId, ItemMeta, Transaction, TxId } from './codecs';
import type { StoreError } from './errors';

/* Shared by the specs of this package (not part of the build). */

export const expectRight = <A>(r: E.Either<StoreError, A>): A => {
  if (E.isLeft(r)) throw new Error(`expected Right, got Left ${JSON.stringify(r.left)}`);
  return r.right;
};

export const expectLeft = <A>(r: E.Either<StoreError, A>, tag: StoreError['_tag']): StoreError => {
  if (E.isRight(r)) throw new Error(`expected Left ${tag}, got Right ${JSON.stringify(r.right)}`);
  expect(r.left._tag).toBe(tag);
  return r.left;
};

export const run = <A>(te: () => Promise<E.Either<StoreError, A>>): Promise<A> => te().then(expectRight);

export const acc = (s: string) => s as AccountId;
export const iid = (s: string) => s as ItemId;
export const txid = (n: number) => n as TxId;

export const msg = (subject: string, flags: string[] = [], folderId = 'inbox'): ItemMeta => ({
  kind: 'message',
  folderId: iid(folderId),
  flags,
  receivedAt: 1_700_000_000_000,
  subject,
});

export const entry = (tx: number, start: number, end: number | null, op: Transaction['op'], meta: ItemMeta, extra: { digest?: string; size?: number } = {}): Transaction =>
  ({ tx: txid(tx), start, end, op, ...meta, ...extra }) as Transaction;
