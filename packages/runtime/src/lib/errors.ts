/**
 * How a command or API call fails. The CLI maps each tag to a documented exit code (EXIT STATUS
 * in `--help`), the admin API to an HTTP status; the message is one line that says what was
 * wrong and what to do next.
 */
export type AppError =
  | { readonly _tag: 'Usage'; readonly message: string }
  | { readonly _tag: 'BackupPath'; readonly message: string }
  | { readonly _tag: 'Busy'; readonly message: string }
  | { readonly _tag: 'NotFound'; readonly message: string }
  | { readonly _tag: 'Problems'; readonly message: string }
  | { readonly _tag: 'Failed'; readonly message: string };


export const appError = (tag: AppError['_tag'], message: string): AppError => ({ _tag: tag, message });

/** Maps a package error (anything with `_tag` and a message) to a CLI error. */
export const fromPackageError = (e: unknown): AppError => {
  const tagged = e as { _tag?: string; message?: string; op?: string; key?: string };
  const message = typeof tagged.message === 'string' && tagged.message.length > 0 ? tagged.message : describeUnknown(e);
  switch (tagged._tag) {
    case 'BackupPathForeign':
    case 'BackupPathInvalid':
    case 'UnsupportedFormat':
      return appError('BackupPath', message);
    case 'BackupPathLocked':
    case 'LogLocked':
      return appError('Busy', message);
    case 'NotFound':
    case 'SourceNotFound':
    case 'BlobNotFound':
    case 'AccountNotFound':
    case 'ItemNotFound':
      return appError('NotFound', message);
    case 'SourceInvalid':
    case 'DecodeError':
    case 'TargetNotEmpty':
    case 'UnsupportedItem':
    case 'InvalidPolicy':
      return appError('Usage', message);
    default:
      return appError('Failed', message);
  }
};

/** A tagged error without a message of its own: say what failed, and the innermost cause's words. */
const describeUnknown = (e: unknown, depth = 0): string => {
  if (e instanceof Error) return e.message;
  const tagged = e as { _tag?: string; op?: string; key?: string; message?: unknown; cause?: unknown };
  if (tagged && typeof tagged === 'object') {
    if (typeof tagged.message === 'string' && tagged.message.length > 0) return tagged.message;
    if (typeof tagged._tag === 'string') {
      const cause = tagged.cause !== undefined && depth < 4 ? `: ${describeUnknown(tagged.cause, depth + 1)}` : '';
      return `${tagged._tag} during ${tagged.op ?? 'operation'}${tagged.key ? ` (${tagged.key})` : ''}${cause}`;
    }
  }
  return String(e);
};
