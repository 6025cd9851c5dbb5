import { pipeline } from 'node:stream/promises';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import { ACCOUNT_ITEM_ID } from '@zxbackup/scanners';
import { Digest, type BlobVolume } from '@zxbackup/volume-contract';
import { ItemId, stateAt, type AccountStat, type History } from '@zxbackup/item-store';
import {
  appError,
  formatInstant,
  fromPackageError,
  parseInstant,
  requireAccountArg,
  resolveBackupRoot,
  resolveInstant,
  withWriter,
  type AppError,
  type GlobalArgs,
} from '@zxbackup/runtime';
import { defineCommand, type CliDeps } from '../lib/command';

export const getBackupInfoCommand = (deps: CliDeps): CommandModule<GlobalArgs, GlobalArgs> =>
  defineCommand<GlobalArgs>(deps, {
    command: 'getBackupInfo',
    describe: 'Show the backup path, its server, first run, last SmartScan and purge, and counts',
    builder: (y: Argv<GlobalArgs>) => y.example('$0 getBackupInfo --json', ''),
    run: ({ args, out }) =>
      withWriter(resolveBackupRoot(args), { initialize: false }, (session) =>
        pipe(
          TE.Do,
          TE.bind('stat', () => session.store.getBackupStat()),
          TE.bind('accounts', () => session.store.listAccounts()),
          TE.mapLeft(fromPackageError),
          TE.map(({ stat, accounts }) => {
            const info = {
              backupPath: session.path.root,
              serverId: session.path.stamp.serverId,
              host: session.path.stamp.host,
              createdAt: session.path.stamp.createdAt,
              firstRunAt: stat.firstRunAt ?? null,
              lastSmartScanAt: stat.lastSmartScanAt ?? null,
              lastPurgeAt: stat.lastPurgeAt ?? null,
              accounts: accounts.length,
              volume: session.volume.name,
              counters: stat.counters,
            };
            out.result(info, () => [
              `backup path      ${info.backupPath}`,
              `server           ${info.serverId} (${info.host})`,
              `created          ${formatInstant(info.createdAt)}`,
              `first run        ${formatInstant(info.firstRunAt)}`,
              `last SmartScan   ${formatInstant(info.lastSmartScanAt)}`,
              `last purge       ${formatInstant(info.lastPurgeAt)}`,
              `accounts         ${info.accounts}`,
              `volume           ${info.volume}`,
            ]);
          }),
        ),
      ),
  });

interface AccountsArgs {
  readonly hideDeleted?: boolean;
}

export const getAvailableAccountsCommand = (deps: CliDeps): CommandModule<GlobalArgs, AccountsArgs> =>
  defineCommand<AccountsArgs>(deps, {
    command: 'getAvailableAccounts',
    describe: 'List the accounts in the backup (deleted ones too, unless --hide-deleted)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .option('hide-deleted', { type: 'boolean', default: false, describe: 'leave out accounts deleted from the server' })
        .example('$0 getAvailableAccounts --hide-deleted', '') as unknown as Argv<AccountsArgs>,
    run: ({ args, out }) =>
      withWriter(resolveBackupRoot(args), { initialize: false }, (session) =>
        pipe(
          session.store.listAccounts(),
          TE.flatMap((accounts) =>
            TE.traverseSeqArray((account: (typeof accounts)[number]) =>
              pipe(
                session.store.getAccountStat(account),
                TE.map((stat) => ({ account, stat: O.toUndefined(stat) })),
              ),
            )(accounts),
          ),
          TE.mapLeft(fromPackageError),
          TE.map((rows) => {
            const shown = rows
              .filter((r) => r.account !== '_server')
              .filter((r) => !(args.hideDeleted && r.stat?.deletedAt !== undefined))
              .map((r) => accountRow(r.account, r.stat));
            out.result(shown, () =>
              shown.length === 0
                ? ['no accounts in the backup']
                : shown.map((r) => `${r.account.padEnd(36)} items ${String(r.items).padStart(7)}  last scan ${formatInstant(r.lastScanAt)}${r.deletedAt ? `  DELETED ${formatInstant(r.deletedAt)}` : ''}`),
            );
          }),
        ),
      ),
  });

const accountRow = (account: string, stat: AccountStat | undefined) => ({
  account,
  items: stat?.items ?? 0,
  deletedItems: stat?.deletedItems ?? 0,
  lastScanAt: stat?.lastScanAt ?? null,
  deletedAt: stat?.deletedAt ?? null,
});

interface AccountArgs {
  readonly account: string;
}

export const getAccountInfoCommand = (deps: CliDeps): CommandModule<GlobalArgs, AccountArgs> =>
  defineCommand<AccountArgs>(deps, {
    command: 'getAccountInfo <account>',
    describe: 'Show an account as backed up: its settings, counts and last scan',
    builder: (y: Argv<GlobalArgs>) =>
      y.positional('account', { type: 'string', demandOption: true }).example('$0 getAccountInfo alice@example.test', '') as unknown as Argv<AccountArgs>,
    run: ({ args, out }) =>
      pipe(
        requireAccountArg(args.account),
        TE.flatMap((account) =>
          withWriter(resolveBackupRoot(args), { initialize: false }, (session) =>
            pipe(
              TE.Do,
              TE.bind('stat', () => session.store.getAccountStat(account)),
              TE.bind('item', () => session.store.getHistory(account, ACCOUNT_ITEM_ID)),
              TE.mapLeft(fromPackageError),
              TE.flatMap(({ stat, item }) => {
                if (O.isNone(stat) && O.isNone(item)) return TE.left(appError('NotFound', `${account} is not in the backup: see zxbackup getAvailableAccounts`));
                const current = O.isSome(item) ? item.value[item.value.length - 1] : undefined;
                // The password hash is a secret: shown as present, never printed.
                const meta = current && current.kind === 'account' ? { ...current, passwordHash: current.passwordHash ? '(stored)' : undefined } : undefined;
                const info = { ...accountRow(account, O.toUndefined(stat)), account: meta ?? null };
                out.result(info, () => [
                  `account          ${account}${info.deletedAt ? `  (DELETED ${formatInstant(info.deletedAt)})` : ''}`,
                  `items            ${info.items} (deleted ${info.deletedItems})`,
                  `last scan        ${formatInstant(info.lastScanAt)}`,
                  ...(meta && meta.kind === 'account'
                    ? [`status           ${meta.status}`, `display name     ${meta.displayName ?? '-'}`, `settings         ${JSON.stringify(meta.settings)}`]
                    : []),
                ]);
                return TE.right(undefined);
              }),
            ),
          ),
        ),
      ),
  });

interface GetItemArgs {
  readonly account: string;
  readonly itemId: string;
  readonly date?: string;
  readonly dumpBlob?: boolean;
}

const dumpBlob = (volume: BlobVolume, digest: string, to: NodeJS.WritableStream): TE.TaskEither<AppError, void> => {
  const d = Digest.decode(digest);
  if (d._tag === 'Left') return TE.left(appError('Failed', `the item's digest "${digest}" is malformed: run zxbackup doCoherencyCheck`));
  return pipe(
    volume.get(d.right),
    TE.mapLeft(fromPackageError),
    TE.flatMap((stream) => TE.tryCatch(() => pipeline(stream, to, { end: false }), (e) => appError('Failed', `reading blob ${digest}: ${(e as Error).message}`))),
  );
};

export const getItemCommand = (deps: CliDeps): CommandModule<GlobalArgs, GetItemArgs> =>
  defineCommand<GetItemArgs>(deps, {
    command: 'getItem <account> <itemId>',
    describe: "Show an item's whole history, or its state at --date; --dump-blob writes its content to stdout",
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true })
        .positional('itemId', { type: 'string', demandOption: true })
        .option('date', { type: 'string', describe: 'show the state at this instant only' })
        .option('dump-blob', { type: 'boolean', default: false, describe: 'write the raw content (e.g. the RFC 822 message) to stdout' })
        .example('$0 getItem alice@example.test m3f2a... --date "20/11/2026 10:00:00"', '')
        .example('$0 getItem alice@example.test m3f2a... --dump-blob > message.eml', '') as unknown as Argv<GetItemArgs>,
    run: ({ args, out, deps: d }) =>
      pipe(
        TE.Do,
        TE.bind('account', () => requireAccountArg(args.account)),
        TE.bind('itemId', () => {
          const r = ItemId.decode(args.itemId);
          return r._tag === 'Right' ? TE.right(r.right) : TE.left(appError('Usage', `"${args.itemId}" is not an item id: find ids with zxbackup doItemSearch`));
        }),
        TE.bind('at', () => {
          if (args.date === undefined) return TE.right(undefined);
          const p = parseInstant(args.date, ['last']);
          return p._tag === 'Right' ? TE.right(resolveInstant(p.right, d.now())) : TE.left(appError('Usage', `date: ${p.left}`));
        }),
        TE.flatMap(({ account, itemId, at }) =>
          withWriter(resolveBackupRoot(args), { initialize: false }, (session) =>
            pipe(
              session.store.getHistory(account, itemId),
              TE.mapLeft(fromPackageError),
              TE.flatMap(O.match(() => TE.left(appError('NotFound', `no item ${itemId} in ${account}: find ids with zxbackup doItemSearch`)), (h: History) => TE.right(h))),
              TE.flatMap((history) => {
                const entry = at === undefined ? history[history.length - 1] : O.toUndefined(stateAt(history, at));
                if (at !== undefined && entry === undefined) return TE.left(appError('NotFound', `item ${itemId} did not exist at ${formatInstant(at)}`));
                if (args.dumpBlob) {
                  if (!entry?.digest) return TE.left(appError('NotFound', `item ${itemId} has no content blob`));
                  return dumpBlob(session.volume, entry.digest, d.streams.stdout);
                }
                const shown = at === undefined || entry === undefined ? history : [entry];
                out.result(at === undefined ? { account, itemId, history } : { account, itemId, at, state: entry }, () =>
                  shown.map((t) => `tx ${t.tx}  ${t.op.padEnd(6)} ${formatInstant(t.start)} → ${formatInstant(t.end)}  ${JSON.stringify(t)}`),
                );
                return TE.right(undefined);
              }),
            ),
          ),
        ),
      ),
  });
