import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import { pipe } from 'fp-ts/function';
import type { VolumeError } from '@zxbackup/volume-contract';
import { objectFailure } from './errors';
import type { ObjectStore } from './object-store';
import { encodeIndexObject, indexKey, packKey, type PackEntry, type PackId } from './pack-format';
import type { PackIndex } from './pack-index';

export interface CompactionDeps {
  readonly store: ObjectStore;
  readonly sealedStore: ObjectStore;
  readonly index: PackIndex;
  readonly prefix: string;
  /** Copies a live blob of a pack being repacked back into the write cache, queued to move. */
  readonly restage: (entry: PackEntry) => TE.TaskEither<VolumeError, void>;
  /** A pack whose live bytes fall below this fraction of its size is repacked. */
  readonly minLiveFraction: number;
  /** Dirty packs handled per turn. */
  readonly batch: number;
}

/**
 * One turn of pack maintenance after deletes (the uploader runs it when nothing waits for
 * upload): a pack with no live blob is removed (its index object first, so a new machine never
 * reads an index of a missing pack); a mostly dead pack is repacked (its live blobs go back
 * through the write cache into a new pack; once they are recorded there, the old pack has no
 * live blob and goes at a later turn); any other changed pack gets its index object rewritten
 * without the deleted blobs. Resolves true when it did something.
 */
export const compactionTurn = (deps: CompactionDeps): TE.TaskEither<VolumeError, boolean> => async () => {
  const ids = await deps.index.dirtyPacks(deps.batch);
  for (const id of ids) {
    const r = await compactOne(deps, id)();
    if (E.isLeft(r)) return r;
  }
  return E.right(ids.length > 0);
};

const compactOne = (deps: CompactionDeps, id: PackId): TE.TaskEither<VolumeError, void> => async () => {
  const { index, prefix } = deps;
  const info = await index.packInfo(id);
  if (info === undefined) {
    await index.clearDirty(id);
    return E.right(undefined);
  }
  const ik = indexKey(prefix, id);
  const pk = packKey(prefix, id);
  if (info.live <= 0) {
    const removed = await pipe(
      deps.sealedStore.remove(ik),
      TE.flatMap(() => deps.store.remove(pk)),
      TE.mapLeft((e) => objectFailure(e, pk)),
    )();
    if (E.isLeft(removed)) return removed;
    await index.dropPack(id);
    return E.right(undefined);
  }
  const entries = await index.liveEntries(id);
  if (info.liveBytes < info.size * deps.minLiveFraction) {
    for (const e of entries) {
      const r = await deps.restage(e)();
      // A blob that cannot be read stays where it is (the coherency check reports it); the rest move.
      if (E.isLeft(r) && r.left._tag !== 'BlobCorrupt') return r;
    }
    await clearIfUnchanged(index, id, info.live);
    return E.right(undefined);
  }
  const description = encodeIndexObject(id, info.size, info.uploadedAt, entries);
  const put = await pipe(
    deps.sealedStore.put(ik, Readable.from([description]), description.length, {}),
    TE.mapLeft((e) => objectFailure(e, ik)),
  )();
  if (E.isLeft(put)) return put;
  await clearIfUnchanged(index, id, info.live);
  return E.right(undefined);
};

// A delete that came during the turn made the pack dirty again: leave it so for the next turn.
const clearIfUnchanged = async (index: PackIndex, id: PackId, live: number): Promise<void> => {
  if ((await index.packInfo(id))?.live === live) await index.clearDirty(id);
};
