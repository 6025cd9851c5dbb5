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
