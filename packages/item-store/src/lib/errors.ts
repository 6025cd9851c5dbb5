/**
 * Failures of the item store. The `_tag`s are the contract; `message` is for people and
 * names what was wrong (which file, which key, which field) and what to do next.
 */
export type StoreError =
  | { readonly _tag: 'DecodeError'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'NotFound'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'Conflict'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'IOError'; readonly op: string; readonly key?: string; readonly message: string; readonly cause?: unknown }
  | { readonly _tag: 'BackupPathForeign'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'BackupPathInvalid'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'BackupPathLocked'; readonly op: string; readonly key?: string; readonly message: string }
  | { readonly _tag: 'UnsupportedFormat'; readonly op: string; readonly key?: string; readonly message: string };

export type StoreErrorTag = StoreError['_tag'];

type Plain<Tag extends StoreErrorTag> = Extract<StoreError, { _tag: Tag }>;

const make =
  <Tag extends StoreErrorTag>(tag: Tag) =>
  (op: string, message: string, key?: string): Plain<Tag> =>
    ({ _tag: tag, op, message, ...(key === undefined ? {} : { key }) }) as Plain<Tag>;

/** A short human description of anything thrown (Node errors keep their code). */
export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code !== undefined && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
};

/** Constructors for each tag; `storeError.io` keeps the thrown cause. */
export const storeError = {
  decode: make('DecodeError'),
  notFound: make('NotFound'),
  conflict: make('Conflict'),
  foreign: make('BackupPathForeign'),
  invalid: make('BackupPathInvalid'),
  locked: make('BackupPathLocked'),
  unsupported: make('UnsupportedFormat'),
  io: (op: string, cause: unknown, key?: string, what?: string): Plain<'IOError'> => ({
    _tag: 'IOError',
    op,
    ...(key === undefined ? {} : { key }),
    message: `${what ?? op}${key === undefined ? '' : ` (${key})`} failed: ${describeCause(cause)}`,
    cause,
  }),
};
