import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import {
  makeMetadataStore,
  type AccountId,
  type ItemId,
  type ItemMeta,
  type LevelDb,
  type MetadataStore,
  type TxId,
} from '@zxbackup/item-store';
import type { BlobStat, BlobVolume, Digest } from '@zxbackup/volume-contract';
import { expectRight, mailLikeText, streamOf } from '@zxbackup/volume-contract/testing';
// Specs only: the store under test runs over memory-level, which item-store owns; raw access to
// the db is how a spec plants damage a real disk could cause.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { MemoryLevel } from 'memory-level';
import { DAY_MS } from './policy';

export const NOW = Date.UTC(2026, 0, 31, 12);
export const daysAgo = (d: number): number => NOW - d * DAY_MS;

export const acc = (s: string): AccountId => s as AccountId;
export const iid = (s: string): ItemId => s as ItemId;

/** Runs a TaskEither of any error type, failing the test on Left. */
export const right = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${JSON.stringify(r.left, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`);
  return r.right;
};
export const left = async <L, A>(te: TE.TaskEither<L, A>): Promise<L> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected Left, got Right');
  return r.left;
};

export const makeMemoryStore = (): { store: MetadataStore; db: LevelDb } => {
  const db = new MemoryLevel<string, string>({ keyEncoding: 'utf8', valueEncoding: 'utf8' }) as unknown as LevelDb;
  return { store: makeMetadataStore(db), db };
};

/** The store's raw keys (item-store's layout), for planting damage. */
export const pad16 = (n: number): string => String(n).padStart(16, '0');
export const txRowKey = (account: string, itemId: string, tx: number): string => `t!${account}!${itemId}!${pad16(tx)}`;
export const deletionRowKey = (at: number, account: string, itemId: string): string => `d!${pad16(at)}!${account}!${itemId}`;
export const statRowKey = (account: string): string => `a!${account}`;

const message = (subject: string): ItemMeta => ({ kind: 'message', folderId: iid('inbox'), flags: [], receivedAt: 0, subject });

export interface Writer {
  readonly blobs: Map<Digest, Buffer>;
  blob(seed: number, size?: number): Promise<Digest>;
  upsert(account: AccountId, itemId: string, at: number, digest?: Digest, subject?: string): Promise<void>;
  remove(account: AccountId, itemId: string, at: number): Promise<void>;
  deleteAccount(account: AccountId, at: number): Promise<void>;
  refetch(account: AccountId, itemId: ItemId, t: { digest?: string }): TE.TaskEither<unknown, Readable> | undefined;
}

/** Writes items through the store's public API, allocating transaction ids in order. */
export const makeWriter = (store: MetadataStore, volume: BlobVolume): Writer => {
  let tx = 0;
  const nextTx = (): TxId => ++tx as TxId;
  const blobs = new Map<Digest, Buffer>();
  return {
    blobs,
    async blob(seed: number, size = 2000): Promise<Digest> {
      const bytes = mailLikeText(size, seed);
      const put = await expectRight(volume.put(streamOf(bytes)));
      blobs.set(put.digest, bytes);
      return put.digest;
    },
    async upsert(account: AccountId, itemId: string, at: number, digest?: Digest, subject = itemId): Promise<void> {
      const size = digest === undefined ? undefined : blobs.get(digest)?.length;
      await right(
        store.commit({
          changes: [{ kind: 'upsert', account, itemId: iid(itemId), tx: nextTx(), at, meta: message(`${subject}@${at}`), ...(digest === undefined ? {} : { digest }), ...(size === undefined ? {} : { size }) }],
        }),
      );
    },
    async remove(account: AccountId, itemId: string, at: number): Promise<void> {
      await right(store.commit({ changes: [{ kind: 'delete', account, itemId: iid(itemId), tx: nextTx(), at }] }));
    },
    async deleteAccount(account: AccountId, at: number): Promise<void> {
      const stat = await right(store.getAccountStat(account));
      if (O.isNone(stat)) throw new Error(`no account stat for ${account}`);
      await right(store.putAccountStat({ ...stat.value, deletedAt: at }));
    },
    /** A source that serves the original bytes again (what a mail server would). */
    refetch: (_a: AccountId, _i: ItemId, t: { digest?: string }) => {
      const bytes = t.digest === undefined ? undefined : blobs.get(t.digest as Digest);
      return bytes === undefined ? undefined : TE.right<unknown, Readable>(streamOf(bytes));
    },
  };
};

/** Every item key with its history length (a store's observable content). */
export const snapshotStore = async (store: MetadataStore): Promise<Map<string, number>> => {
  const out = new Map<string, number>();
  await right(store.forEachHistory(undefined, (a, i, h) => void out.set(`${a}/${i}`, h.length)));
  return out;
};

export const listDigests = async (volume: BlobVolume): Promise<Set<string>> => {
  const out = new Set<string>();
  await expectRight(volume.list((d) => void out.add(d)));
  return out;
};

/** A volume whose stat reports chosen ages (and none for digests mapped to undefined). */
export const withAges = (volume: BlobVolume, ages: ReadonlyMap<string, number | undefined>): BlobVolume => ({
  ...volume,
  stat: (digest) =>
    TE.map((s: BlobStat): BlobStat => {
      if (!ages.has(digest)) return s;
      const { modifiedAt: _drop, ...rest } = s;
      const at = ages.get(digest);
      return at === undefined ? rest : { ...rest, modifiedAt: at };
    })(volume.stat(digest)),
});

/** A volume whose `delete` fails after `allowed` successful deletes (a crash in the middle of a sweep). */
export const failingDeletes = (volume: BlobVolume, allowed: number): BlobVolume => {
  let left = allowed;
  return {
    ...volume,
    delete: (digest) => (left-- > 0 ? volume.delete(digest) : TE.left({ _tag: 'VolumeIOError', op: 'delete', key: digest, cause: new Error('EIO (injected)') })),
  };
};
