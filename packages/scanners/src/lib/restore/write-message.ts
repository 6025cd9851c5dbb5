import { createHash } from 'node:crypto';
import { pipe } from 'fp-ts/function';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, MessageMeta, Transaction } from '@zxbackup/item-store';
import { VolumeStreamError, type Digest, type VolumeError } from '@zxbackup/volume-contract';
import { runR, type RestoreDeps } from './deps';
import { RestoreAbort, restoreError } from './errors';
import { isHeldContent, type MessageContent } from '../source';

export type MessageState = Transaction & MessageMeta;

export const isMessageState = (t: Transaction): t is MessageState => t.kind === 'message';

/** What writing a message needs of its state: a restore holds this of every message it plans. */
export type PlannedMessage = Pick<MessageState, 'folderId' | 'flags' | 'receivedAt' | 'sourceKey' | 'digest' | 'size'>;

export const plannedMessage = (s: MessageState): PlannedMessage => ({
  folderId: s.folderId,
  flags: s.flags,
  receivedAt: s.receivedAt,
  ...(s.sourceKey === undefined ? {} : { sourceKey: s.sourceKey }),
  ...(s.digest === undefined ? {} : { digest: s.digest }),
  ...(s.size === undefined ? {} : { size: s.size }),
});

/**
 * Streams a message's blob from the volume into the target. The volume verifies the digest
 * while streaming; a corrupt blob fails the write with the volume's `BlobCorrupt`. `prefetched`
 * is the blob's fetch when it was started ahead (`prefetchBlob`).
 */
export const writeMessageFromBlob = async (
  deps: RestoreDeps,
  account: AccountId,
  folderPath: string,
  state: Pick<MessageState, 'digest' | 'sourceKey' | 'receivedAt'>,
  flags: ReadonlyArray<string>,
  prefetched?: TE.TaskEither<VolumeError, MessageContent>,
): Promise<void> => {
  const key = `${account}:${folderPath}`;
  if (state.digest === undefined) throw new RestoreAbort(restoreError.refusal('ItemNotFound', 'restoreMessage', key, `the backup holds no content for message ${state.sourceKey ?? '?'}`));
  const content = await runR<VolumeError, MessageContent>(prefetched ?? deps.volume.get(state.digest as Digest), restoreError.volume('readBlob', state.digest));
  let streamError: unknown;
  if (!isHeldContent(content)) {
    content.on('error', (e) => {
      streamError ??= e;
    });
  }
  const written = await deps.target.writeMessage(account, folderPath, { content, flags, receivedAt: state.receivedAt })();
  if (streamError instanceof VolumeStreamError) throw new RestoreAbort(restoreError.volume('readBlob', state.digest)(streamError.volumeError));
  if (E.isLeft(written)) {
    if (!isHeldContent(content)) content.destroy();
    throw new RestoreAbort(restoreError.target('writeMessage', key)(written.left));
  }
  if (streamError !== undefined) throw new RestoreAbort(restoreError.internal('readBlob', state.digest)(streamError));
};

interface Present {
  readonly size: number;
  readonly receivedAt: number;
  readonly locator?: string;
  digest?: string;
}

/**
 * Knows what each target folder holds, so an undelete never writes a message twice: a message
 * is there when one with the same size, received date and (when the target can be read back)
 * content digest is.
 */
export const makeDuplicateCheck = (deps: RestoreDeps, account: AccountId) => {
  const folders = new Map<string, Present[]>();

  const listed = async (folderPath: string): Promise<Present[]> => {
    let list = folders.get(folderPath);
    if (list === undefined) {
      const entries = await runR(deps.target.listMessages(account, folderPath), restoreError.target('listMessages', `${account}:${folderPath}`));
      list = entries.map((e) => ({ size: e.size, receivedAt: e.receivedAt, locator: e.locator }));
      folders.set(folderPath, list);
    }
    return list;
  };

  const digestOf = async (p: Present): Promise<string | undefined> => {
    if (p.digest !== undefined || deps.readTarget === undefined || p.locator === undefined) return p.digest;
    const stream = await runR(deps.readTarget(account, p.locator), restoreError.target('readTargetMessage', p.locator));
    const hash = createHash('sha256');
    const hashed = await pipe(
      TE.tryCatch(
        async () => {
          for await (const c of stream) hash.update(c as Buffer);
          return hash.digest('hex');
        },
        (cause) => restoreError.internal('readTargetMessage', p.locator)(cause),
      ),
    )();
    if (E.isLeft(hashed)) throw new RestoreAbort(hashed.left);
    p.digest = hashed.right;
    return p.digest;
  };

  return {
    has: async (folderPath: string, state: MessageState): Promise<boolean> => {
      for (const p of await listed(folderPath)) {
        if (p.size !== state.size || p.receivedAt !== state.receivedAt) continue;
        if (deps.readTarget === undefined) return true;
        if ((await digestOf(p)) === state.digest) return true;
      }
      return false;
    },
    remember: async (folderPath: string, state: MessageState): Promise<void> => {
      const list = await listed(folderPath);
      list.push({ size: state.size ?? -1, receivedAt: state.receivedAt, ...(state.digest === undefined ? {} : { digest: state.digest }) });
    },
  };
};
