import type * as TE from 'fp-ts/TaskEither';
import type { RestoreDeps } from './deps';
import type { RestoreError } from './errors';
import { restoreAccount, type RestoreAccountParams, type RestoreSummary } from './restore-account';
import { restoreItem, type RestoreItemParams, type RestoreItemResult } from './restore-item';
import { searchItems, type SearchHit, type SearchParams } from './search';
import { undeleteItems, type UndeleteParams, type UndeleteSummary } from './undelete';

export interface RestoreEngine {
  restoreAccount(params: RestoreAccountParams): TE.TaskEither<RestoreError, RestoreSummary>;
  undeleteItems(params: UndeleteParams): TE.TaskEither<RestoreError, UndeleteSummary>;
  restoreItem(params: RestoreItemParams): TE.TaskEither<RestoreError, RestoreItemResult>;
  searchItems(params: SearchParams): TE.TaskEither<RestoreError, ReadonlyArray<SearchHit>>;
}

/** The restore operations bound to one store, volume and target. */
export const makeRestoreEngine = (deps: RestoreDeps): RestoreEngine => ({
  restoreAccount: (p) => restoreAccount(deps, p),
  undeleteItems: (p) => undeleteItems(deps, p),
  restoreItem: (p) => restoreItem(deps, p),
  searchItems: (p) => searchItems(deps, p),
});
