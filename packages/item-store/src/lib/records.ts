import * as t from 'io-ts';
import type * as api from './api';
import { AccountId, AccountMeta, FORMAT_VERSION, ItemId, TxId } from './codecs';

/*
 * Codecs of the versioned records the store persists besides histories. Each carries a
 * `format`; readers go through `decodeVersioned`, which rejects formats they do not know.
 * The types are the interfaces of api.ts; `assertSame` keeps codec and interface in step.
 */

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const assertSame = <A, B>(ok: Same<A, B>): void => void ok;

export const AccountStat = t.intersection(
  [
    t.type({ format: t.number, account: AccountId, items: t.number, deletedItems: t.number }),
    t.partial({ cursor: t.unknown, lastScanAt: t.number, lastTx: t.number, deletedAt: t.number }),
  ],
  'AccountStat',
);
export type AccountStat = api.AccountStat;
assertSame<t.TypeOf<typeof AccountStat>, AccountStat>(true);

export const BackupStat = t.intersection(
  [
    t.type({ format: t.number, counters: t.record(t.string, t.number) }),
    t.partial({ firstRunAt: t.number, lastSmartScanAt: t.number, lastPurgeAt: t.number }),
  ],
  'BackupStat',
);
export type BackupStat = api.BackupStat;
assertSame<t.TypeOf<typeof BackupStat>, BackupStat>(true);

/** Operation ids become file names: keep them to a safe alphabet (UUIDs fit). */
export const isOperationId = (s: string): boolean => /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(s);

export const OperationRecord = t.intersection(
  [
    t.type({
      format: t.number,
      id: t.refinement(t.string, isOperationId, 'OperationId'),
      kind: t.string,
      state: t.keyof({ queued: null, running: null, succeeded: null, failed: null, stopped: null }),
      startedAt: t.number,
      updatedAt: t.number,
      progress: t.intersection([
        t.type({ done: t.number }),
        t.partial({ total: t.number, phase: t.string, message: t.string }),
      ]),
    }),
    t.partial({
      endedAt: t.number,
      pid: t.number,
      params: t.record(t.string, t.unknown),
      result: t.record(t.string, t.unknown),
      error: t.string,
      stopRequested: t.boolean,
    }),
  ],
  'OperationRecord',
);
export type OperationRecord = api.OperationRecord;
assertSame<t.TypeOf<typeof OperationRecord>, OperationRecord>(true);

/** Layout version of a backup path (its directories; the metadata store versions its own keys, STORE_FORMAT_VERSION). */
export const BACKUP_PATH_FORMAT_VERSION = 1;

/**
 * `<backup path>/server.json`: the stamp that ties a backup path to one server. `format` is
 * the version of this record, `formatVersion` the layout version of the whole path.
 */
export const ServerStamp = t.type(
  {
    format: t.number,
    serverId: t.refinement(t.string, (s) => s.length > 0 && s.length <= 128, 'ServerId'),
    host: t.string,
    createdAt: t.number,
    formatVersion: t.number,
  },
  'ServerStamp',
);
export type ServerStamp = t.TypeOf<typeof ServerStamp>;

/** `<backup path>/config.json`: configuration attributes as strings. */
export const ConfigFile = t.type({ format: t.number, attributes: t.record(t.string, t.string) }, 'ConfigFile');
export type ConfigFile = t.TypeOf<typeof ConfigFile>;

/** Value of a deletion-index row of the metadata store. */
export const DeletionRow = t.type({ format: t.number, tx: TxId }, 'DeletionRow');

/**
 * Version of the metadata store's key layout and row formats, kept in its `v` row. 2: rows
 * carry no `end` (derived from the next row) and item heads are `{tx, start, op}`. Readers
 * refuse any other version; there is no migration (no store of version 1 was ever released).
 */
export const STORE_FORMAT_VERSION = 2;

/** The `v` row of the metadata store: which key layout the database holds. */
export const StoreLayout = t.type({ format: t.number, layout: t.literal('zxbackup-metadata') }, 'StoreLayout');

/** An item's head row in the metadata store: its last transaction, without the metadata. */
export const ItemHead = t.type({ tx: TxId, start: t.number, op: t.keyof({ create: null, update: null, delete: null }) }, 'ItemHead');
export type ItemHead = t.TypeOf<typeof ItemHead>;

/** `account_info` in a per-account archive: the account and its current account item, if any. */
export const AccountInfo = t.type(
  { format: t.number, account: AccountId, itemId: t.union([ItemId, t.null]), meta: t.union([AccountMeta, t.null]) },
  'AccountInfo',
);
export type AccountInfo = t.TypeOf<typeof AccountInfo>;

export const newAccountStat = (account: AccountId): AccountStat => ({ format: FORMAT_VERSION, account, items: 0, deletedItems: 0 });
export const emptyBackupStat = (): BackupStat => ({ format: FORMAT_VERSION, counters: {} });
