import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { Argv, CommandModule } from 'yargs';
import { ATTRIBUTES, effectiveValue, lookupAttribute } from '@zxbackup/runtime';
import { SMART_SCAN_REQUIRED, appError, fromPackageError } from '@zxbackup/runtime';
import { defineCommand, type CliDeps } from '../lib/command';
import { openForReading, openOrInitialize, resolveBackupRoot, type GlobalArgs } from '@zxbackup/runtime';

interface ConfigArgs {
  readonly attribute?: string;
  readonly value?: string;
}

const set = (deps: CliDeps) =>
  defineCommand<ConfigArgs>(deps, {
    command: 'set <attribute> <value>',
    describe: 'Set a configuration attribute',
    builder: (y: Argv<GlobalArgs>) =>
      y
        .positional('attribute', { type: 'string', demandOption: true })
        .positional('value', { type: 'string', demandOption: true })
        .example('$0 config set ZxBackup_Source maildir:/var/vmail', 'back up the Maildir tree under /var/vmail')
        .example('$0 config set ZxBackup_DataRetentionDays 60', 'keep deleted items for 60 days') as unknown as Argv<ConfigArgs>,
    run: ({ args, out }) =>
      pipe(
        TE.fromEither(
          pipe(
            lookupAttribute(args.attribute ?? ''),
            E.flatMap(({ name, spec }) =>
              pipe(
                spec.validate(args.value ?? ''),
                E.map((value) => ({ name, value })),
                E.mapLeft((why) => `${name}: "${args.value}" is not valid: ${why}`),
              ),
            ),
            E.mapLeft((m) => appError('Usage', m)),
          ),
        ),
        TE.flatMap(({ name, value }) =>
          pipe(
            openOrInitialize(resolveBackupRoot(args)),
            TE.flatMap((bp) =>
              pipe(
                bp.config.get(name),
                TE.flatMap((previous) => {
                  const reenabled = name === 'ZxBackup_RealTimeScanner' && value === 'TRUE' && O.isSome(previous) && previous.value === 'FALSE';
                  return pipe(
                    bp.config.set(name, value),
                    TE.flatMap(() => (reenabled ? bp.config.set(SMART_SCAN_REQUIRED, 'TRUE') : TE.right(undefined))),
                    TE.map(() => reenabled),
                  );
                }),
                TE.mapLeft(fromPackageError),
              ),
            ),
            TE.map((reenabled) => {
              out.result({ attribute: name, value, ...(reenabled ? { smartScanRequired: true } : {}) }, () => [`${name} = ${value}`]);
              if (reenabled) {
                out.info('The Real Time Scanner was re-enabled: a SmartScan is required (zxbackup doSmartScan start); `realTimeScanner run` runs it first.');
              }
            }),
          ),
        ),
      ),
  });

const get = (deps: CliDeps) =>
  defineCommand<ConfigArgs>(deps, {
    command: 'get <attribute>',
    describe: 'Show one configuration attribute (its default when unset)',
    builder: (y: Argv<GlobalArgs>) =>
      y.positional('attribute', { type: 'string', demandOption: true }).example('$0 config get ZxBackup_RealTimeScanner', '') as unknown as Argv<ConfigArgs>,
    run: ({ args, out }) =>
      pipe(
        TE.fromEither(pipe(lookupAttribute(args.attribute ?? ''), E.mapLeft((m) => appError('Usage', m)))),
        TE.flatMap(({ name }) =>
          pipe(
            openForReading(resolveBackupRoot(args)),
            TE.flatMap((bp) => pipe(bp.config.get(name), TE.mapLeft(fromPackageError))),
            TE.map((stored) => {
              const value = O.isSome(stored) ? stored.value : ATTRIBUTES[name]?.defaultValue;
              out.result({ attribute: name, value: value ?? null, isDefault: O.isNone(stored) }, () => [
                `${name} = ${value ?? '(unset)'}${O.isNone(stored) && value !== undefined ? ' (default)' : ''}`,
              ]);
            }),
          ),
        ),
      ),
  });

const list = (deps: CliDeps) =>
  defineCommand<ConfigArgs>(deps, {
    command: 'list',
    describe: 'Show every configuration attribute with its value or default',
    builder: (y: Argv<GlobalArgs>) => y.example('$0 config list --json', '') as unknown as Argv<ConfigArgs>,
    run: ({ args, out }) =>
      pipe(
        openForReading(resolveBackupRoot(args)),
        TE.flatMap((bp) => pipe(bp.config.list(), TE.mapLeft(fromPackageError))),
        TE.map((stored) => {
          const rows = Object.keys(ATTRIBUTES)
            .sort()
            .map((name) => ({ attribute: name, value: effectiveValue(stored, name) ?? null, isDefault: stored[name] === undefined }));
          out.result(rows, () => rows.map((r) => `${r.attribute} = ${r.value ?? '(unset)'}${r.isDefault && r.value !== null ? ' (default)' : ''}`));
        }),
      ),
  });

export const configCommand = (deps: CliDeps): CommandModule<GlobalArgs, GlobalArgs> => ({
  command: 'config <action>',
  describe: 'Read and change configuration attributes (set | get | list)',
  builder: (y) =>
    y
      .command(set(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>)
      .command(get(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>)
      .command(list(deps) as unknown as CommandModule<GlobalArgs, GlobalArgs>)
      .demandCommand(1, 'name an action: set, get or list')
      .example('$0 config set ZxBackup_Source maildir:/var/vmail', ''),
  handler: () => undefined,
});
