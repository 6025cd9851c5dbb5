import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { BackupPath } from '@zxbackup/item-store';
import { makeMaildirSource, makeMaildirTarget, type RestoreTarget, type Source } from '@zxbackup/scanners';
import { appError, fromPackageError, type AppError } from './errors';
import { parseSourceUri, type SourceUri } from './source-uri';

export const SOURCE_ATTRIBUTE = 'ZxBackup_Source';

export const makeSource = (uri: SourceUri, clock?: () => number): Source =>
  makeMaildirSource({ root: uri.root, ...(uri.passwdFile ? { passwdFile: uri.passwdFile } : {}), ...(clock ? { clock } : {}) });

export const makeTarget = (uri: SourceUri): RestoreTarget =>
  makeMaildirTarget({ root: uri.root, ...(uri.passwdFile ? { passwdFile: uri.passwdFile } : {}) });

const parseOrUsage = (raw: string): TE.TaskEither<AppError, SourceUri> =>
  TE.fromEither(pipe(parseSourceUri(raw), E.mapLeft((m) => appError('Usage', m))));

/**
 * The source to back up: `override` (from `--source`) when given — and then remembered as
 * `ZxBackup_Source` if none was configured, so the next scans need no option — else the
 * configured one.
 */
export const resolveSource = (bp: BackupPath, override?: string): TE.TaskEither<AppError, SourceUri> =>
  pipe(
    bp.config.get(SOURCE_ATTRIBUTE),
    TE.mapLeft(fromPackageError),
    TE.flatMap((configured) => {
      if (override !== undefined) {
        return pipe(
          parseOrUsage(override),
          TE.tap(() => (O.isNone(configured) ? pipe(bp.config.set(SOURCE_ATTRIBUTE, override.trim()), TE.mapLeft(fromPackageError)) : TE.right(undefined))),
        );
      }
      return O.isSome(configured)
        ? parseOrUsage(configured.value)
        : TE.left(appError('Usage', 'no source is configured: run `zxbackup config set ZxBackup_Source maildir:/var/vmail` or pass --source maildir:/var/vmail'));
    }),
  );

/** The restore target: `--target <uri>` (a restore drill elsewhere) or the configured source itself. */
export const resolveTarget = (bp: BackupPath, override?: string): TE.TaskEither<AppError, SourceUri> =>
  override !== undefined ? parseOrUsage(override) : resolveSource(bp);
