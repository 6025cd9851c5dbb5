import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import { ItemId, type AccountId } from '@zxbackup/item-store';
import { makeMaildirSource, makeRestoreEngine, type RestoreEngine, type SearchType } from '@zxbackup/scanners';
import {
  appError,
  formatInstant,
  fromPackageError,
  makeTarget,
  parseInstant,
  requireAccountArg,
  requireBackedUpAccount,
  resolveBackupRoot,
  resolveInstant,
  resolveTarget,
  runOperation,
  withWriter,
  type AppError,
  type GlobalArgs,
  type ProgressUpdate,
} from '@zxbackup/runtime';
import { defineCommand, type CliDeps, type CommandContext } from '../lib/command';

interface TargetArgs {
  readonly target?: string;
}

const targetOption = {
  type: 'string' as const,
  describe: 'write into another tree instead of the live source, e.g. maildir:/tmp/drill (a restore drill)',
};

const instantArg = (raw: string, name: string, keywords: ReadonlyArray<'first' | 'last'>, now: number): TE.TaskEither<AppError, number> =>
  TE.fromEither(
    pipe(
      parseInstant(raw, keywords),
      E.map((i) => resolveInstant(i, now)),
      E.mapLeft((m) => appError('Usage', `${name}: ${m}`)),
    ),
  );

/** Opens the backup, builds the restore engine on the chosen target and runs `work` as an operation. */
const withRestore = <A, R extends Record<string, unknown>>(
  ctx: CommandContext<A & TargetArgs>,
  kind: string,
  params: Record<string, unknown>,
  work: (engine: RestoreEngine, progress: (p: ProgressUpdate) => void) => TE.TaskEither<unknown, R>,
  account?: AccountId,
): TE.TaskEither<AppError, { readonly id: string; readonly result: R }> =>
  withWriter(resolveBackupRoot(ctx.args), { initialize: false }, (session) =>
    pipe(
      account === undefined ? TE.right(undefined) : pipe(requireBackedUpAccount(session, account), TE.asUnit),
      TE.flatMap(() => resolveTarget(session.path, ctx.args.target)),
      TE.flatMap((uri) => {
        const sink = ctx.out.progress(kind);
        const readSource = makeMaildirSource({ root: uri.root });
        return pipe(
          runOperation(
            { backupRoot: session.path.root, operations: session.path.operations, onProgress: sink.update, onFinish: sink.finish },
            kind,
            { ...params, target: `maildir:${uri.root}` },
            (control) =>
              work(
                makeRestoreEngine({
                  store: session.store,
                  volume: session.volume,
                  target: makeTarget(uri),
                  readTarget: (account, locator) => readSource.openBlob(account, locator),
                  onProgress: (p) => control.progress({ done: p.done, ...(p.total === undefined ? {} : { total: p.total }), phase: p.phase }),
                }),
                control.progress,
              ),
          ),
          TE.mapLeft(fromPackageError),
        );
      }),
    ),
  );

interface RestoreOnNewAccountArgs extends TargetArgs {
  readonly account: string;
  readonly newAccount: string;
  readonly date: string;
  readonly undelete?: boolean;
}

export const doRestoreOnNewAccountCommand = (deps: CliDeps): CommandModule<GlobalArgs, RestoreOnNewAccountArgs> =>
  defineCommand<RestoreOnNewAccountArgs>(deps, {
    command: 'doRestoreOnNewAccount <account> <newAccount> <date>',
    describe: 'Restore an account as it was at an instant into a new (missing or empty) account; the original is not touched',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true, describe: 'the backed-up account' })
        .positional('newAccount', { type: 'string', demandOption: true, describe: 'the account to create (must not exist or be empty)' })
        .positional('date', { type: 'string', demandOption: true, describe: 'ISO-8601, epoch ms, "dd/MM/yyyy HH:mm:ss", or last' })
        .option('undelete', { type: 'boolean', default: false, describe: 'also bring back messages deleted up to that instant (legal hold)' })
        .option('target', targetOption)
        .example('$0 doRestoreOnNewAccount alice@example.test alice.old@example.test "20/11/2026 10:00:00"', '')
        .example('$0 doRestoreOnNewAccount alice@example.test drill@example.test last --target maildir:/tmp/drill', 'a restore drill')
        .epilogue(
          'Mind the latest state: if a user deleted all their mail (or it was lost) and you restore "last", the\n' +
            'new account is the latest state — empty. Restore at an instant BEFORE the loss (find it with\n' +
            '`zxbackup doItemSearch <account> --search-filter deleted`), or add --undelete to bring back\n' +
            'everything deleted up to that instant.',
        ) as unknown as Argv<RestoreOnNewAccountArgs>,
    run: (ctx) =>
      pipe(
        TE.Do,
        TE.bind('account', () => requireAccountArg(ctx.args.account)),
        TE.bind('newAccount', () => requireAccountArg(ctx.args.newAccount)),
        TE.bind('at', () => instantArg(ctx.args.date, 'date', ['last'], ctx.deps.now())),
        TE.flatMap(({ account, newAccount, at }) =>
          account === newAccount
            ? TE.left(appError('Usage', 'the new account must differ from the original: a restore never writes into the account it restores'))
            : withRestore(ctx, 'RestoreOnNewAccount', { account, newAccount, at, undelete: ctx.args.undelete === true }, (engine) =>
                pipe(
                  engine.restoreAccount({ account, newAccount, at, undelete: ctx.args.undelete === true }),
                  TE.map((s) => ({ ...s })),
                ),
              ),
        ),
        TE.map(({ id, result }) =>
          ctx.out.result({ operation: id, ...result }, () => [
            `restored ${ctx.args.account} as ${ctx.args.newAccount} (operation ${id})`,
            `  folders ${result.folders}, messages ${result.messages} (${(result.bytes / 1048576).toFixed(1)} MiB), undeleted ${result.undeleted}, already there ${result.skipped}`,
          ]),
        ),
      ),
  });

interface UndeleteArgs extends TargetArgs {
  readonly account: string;
  readonly start: string;
  readonly end: string;
  readonly targetOriginalFolder?: string;
}

export const doUndeleteCommand = (deps: CliDeps): CommandModule<GlobalArgs, UndeleteArgs> =>
  defineCommand<UndeleteArgs>(deps, {
    command: 'doUndelete <account> <start> <end>',
    describe: 'Bring back the items deleted between two instants, tagged undelete_DD_MM_YY, never overwriting anything',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true })
        .positional('start', { type: 'string', demandOption: true, describe: 'a date or first' })
        .positional('end', { type: 'string', demandOption: true, describe: 'a date or last' })
        .option('target-original-folder', {
          type: 'string',
          choices: ['true', 'false'],
          default: 'true',
          describe: 'true: back into the folder each item was deleted from; false: into one new folder',
        })
        .option('target', targetOption)
        .example('$0 doUndelete alice@example.test "20/11/2026 00:00:00" last', '')
        .example('$0 doUndelete alice@example.test first last --target-original-folder false', '') as unknown as Argv<UndeleteArgs>,
    run: (ctx) =>
      pipe(
        TE.Do,
        TE.bind('account', () => requireAccountArg(ctx.args.account)),
        TE.bind('from', () => instantArg(ctx.args.start, 'start', ['first'], ctx.deps.now())),
        TE.bind('to', () => instantArg(ctx.args.end, 'end', ['last'], ctx.deps.now())),
        TE.flatMap(({ account, from, to }) =>
          from > to
            ? TE.left(appError('Usage', `start (${formatInstant(from)}) is after end (${formatInstant(to)})`))
            : withRestore(ctx, 'Undelete', { account, from, to }, (engine) =>
                pipe(
                  engine.undeleteItems({ account, from, to, targetOriginalFolder: ctx.args.targetOriginalFolder !== 'false', now: ctx.deps.now() }),
                  TE.map((s) => ({ ...s })),
                ),
                account,
              ),
        ),
        TE.map(({ id, result }) =>
          ctx.out.result({ operation: id, ...result }, () => [
            `undeleted ${result.restored} message(s) of ${ctx.args.account} (operation ${id}); already there ${result.skipped}; not mail ${result.ignored}`,
            ...(result.folders.length > 0 ? [`  into: ${result.folders.join(', ')}`] : []),
          ]),
        ),
      ),
  });

interface ItemRestoreArgs extends TargetArgs {
  readonly account: string;
  readonly itemId: string;
  readonly date?: string;
  readonly restoreFolder?: string;
}

const requireItemId = (raw: string): TE.TaskEither<AppError, ItemId> => {
  const d = ItemId.decode(raw);
  return d._tag === 'Right' ? TE.right(d.right) : TE.left(appError('Usage', `"${raw}" is not an item id: find ids with zxbackup doItemSearch`));
};

export const doItemRestoreCommand = (deps: CliDeps): CommandModule<GlobalArgs, ItemRestoreArgs> =>
  defineCommand<ItemRestoreArgs>(deps, {
    command: 'doItemRestore <account> <itemId>',
    describe: 'Restore one item as it was at an instant (default: its last live state) into the account',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true })
        .positional('itemId', { type: 'string', demandOption: true, describe: 'from doItemSearch' })
        .option('date', { type: 'string', describe: 'the instant whose state to restore' })
        .option('restore-folder', { type: 'string', describe: 'folder path to restore into, e.g. "Restored"' })
        .option('target', targetOption)
        .example('$0 doItemRestore alice@example.test m3f2a... --date "20/11/2026 10:00:00"', '') as unknown as Argv<ItemRestoreArgs>,
    run: (ctx) =>
      pipe(
        TE.Do,
        TE.bind('account', () => requireAccountArg(ctx.args.account)),
        TE.bind('itemId', () => requireItemId(ctx.args.itemId)),
        TE.bind('at', () => (ctx.args.date === undefined ? TE.right(undefined) : instantArg(ctx.args.date, 'date', ['last'], ctx.deps.now()))),
        TE.flatMap(({ account, itemId, at }) =>
          withRestore(ctx, 'ItemRestore', { account, itemId }, (engine) =>
            pipe(
              engine.restoreItem({
                account,
                itemId,
                ...(at === undefined ? {} : { at }),
                ...(ctx.args.restoreFolder === undefined ? {} : { restoreFolder: ctx.args.restoreFolder }),
              }),
              TE.map((r) => ({ ...r })),
            ),
          ),
        ),
        TE.map(({ id, result }) =>
          ctx.out.result({ operation: id, ...result }, () => [
            result.written ? `restored ${result.kind} ${result.itemId} into ${result.folder}` : `${result.kind} ${result.itemId} is already in ${result.folder}: nothing written`,
          ]),
        ),
      ),
  });

interface ItemSearchArgs {
  readonly account: string;
  readonly searchString?: string;
  readonly type?: string;
  readonly before?: string;
  readonly after?: string;
  readonly searchFilter?: string;
  readonly limit?: number;
}

export const doItemSearchCommand = (deps: CliDeps): CommandModule<GlobalArgs, ItemSearchArgs> =>
  defineCommand<ItemSearchArgs>(deps, {
    command: 'doItemSearch <account>',
    describe: 'Find items in the backup of an account (also deleted ones)',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('account', { type: 'string', demandOption: true })
        .option('search-string', { type: 'string', describe: 'text in subject, sender, recipients, folder' })
        .option('type', { choices: ['message', 'contact', 'folder', 'document', 'all'], default: 'all' })
        .option('before', { type: 'string', describe: 'only items dated before this instant' })
        .option('after', { type: 'string', describe: 'only items dated after this instant' })
        .option('search-filter', { choices: ['all', 'deleted', 'not_deleted'], default: 'all' })
        .option('limit', { type: 'number', default: 1000 })
        .example('$0 doItemSearch alice@example.test --search-string invoice --search-filter deleted', '') as unknown as Argv<ItemSearchArgs>,
    run: (ctx) =>
      pipe(
        TE.Do,
        TE.bind('account', () => requireAccountArg(ctx.args.account)),
        TE.bind('before', () => (ctx.args.before === undefined ? TE.right(undefined) : instantArg(ctx.args.before, 'before', [], ctx.deps.now()))),
        TE.bind('after', () => (ctx.args.after === undefined ? TE.right(undefined) : instantArg(ctx.args.after, 'after', [], ctx.deps.now()))),
        TE.flatMap(({ account, before, after }) =>
          withWriter(resolveBackupRoot(ctx.args), { initialize: false }, (session) =>
            pipe(
              requireBackedUpAccount(session, account),
              TE.flatMap(() =>
                pipe(
                  // Search reads the store only; the engine's target is never written.
                  makeRestoreEngine({ store: session.store, volume: session.volume, target: makeTarget({ scheme: 'maildir', root: '/nonexistent' }) }).searchItems({
                    account,
                    filter: (ctx.args.searchFilter ?? 'all') as 'all' | 'deleted' | 'not_deleted',
                    type: (ctx.args.type ?? 'all') as SearchType,
                    ...(ctx.args.searchString === undefined ? {} : { searchString: ctx.args.searchString }),
                    ...(before === undefined ? {} : { before }),
                    ...(after === undefined ? {} : { after }),
                    limit: ctx.args.limit ?? 1000,
                  }),
                  TE.mapLeft(fromPackageError),
                ),
              ),
            ),
          ),
        ),
        TE.map((hits) =>
          ctx.out.result(hits, () =>
            hits.length === 0
              ? ['no items found']
              : hits.map(
                  (h) =>
                    `${h.itemId}  ${h.kind.padEnd(8)} ${(h.folder ?? '').padEnd(16)} ${formatInstant(h.receivedAt)}  ${h.deletedAt === undefined ? '' : `deleted ${formatInstant(h.deletedAt)}  `}${h.subject ?? ''}${h.from ? `  <${h.from}>` : ''}`,
                ),
          ),
        ),
      ),
  });
