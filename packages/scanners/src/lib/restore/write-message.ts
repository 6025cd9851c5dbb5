import { createHash } from 'node:crypto';
import { pipe } from 'fp-ts/function';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId, MessageMeta, Transaction } from '@zxbackup/item-store';
import { describeVolumeError, VolumeStreamError, type BlobFile, type BlobVolume, type Digest, type VolumeError } from '@zxbackup/volume-contract';
import { runR, type RestoreDeps } from './deps';
import { RestoreAbort, restoreError, type RestoreError } from './errors';
import { isHeldContent, type MessageContent, type RestoreTarget, type SourceError } from '../source';

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

/**
 * The file path of a restore: the volume writes each message's file (`writeToFile`, from its
 * own thread where it has one) into the name the target gives (`writeMessageFile`), so the
 * bytes never pass through this thread. Only when both sides can.
 */
export interface FilePath {
  readonly writeToFile: NonNullable<BlobVolume['writeToFile']>;
  readonly writeMessageFile: NonNullable<RestoreTarget['writeMessageFile']>;
  /**
   * The restore's first failed fill. A target commits files in groups, so it reports a fill that
   * failed at a later write or at its flush, as a failure of its own: the restore reports the
   * fill's failure instead, as precisely as the stream path does.
   */
  readonly failures: { readonly first: () => RestoreError | undefined; readonly record: (e: RestoreError) => void };
}

export const filePathOf = (deps: Pick<RestoreDeps, 'volume' | 'target'>): FilePath | undefined => {
  const { volume, target } = deps;
  if (volume.writeToFile === undefined || target.writeMessageFile === undefined) return undefined;
  let first: RestoreError | undefined;
  return {
    writeToFile: volume.writeToFile.bind(volume),
    writeMessageFile: target.writeMessageFile.bind(target),
    failures: {
      first: () => first,
      record: (e) => {
        first ??= e;
      },
    },
  };
};

/** A failure of the file itself (`writeFile`): the target's file system (ENOSPC, EACCES...), not the volume. */
const isFileFailure = (e: VolumeError): boolean => e.op === 'writeFile';

/**
 * What a failed fill rejects with, for the target: the file system's own error (errno `code`)
 * when the file failed, so the target maps it as one of its own; the volume's failure otherwise.
 */
const fillRejection = (e: VolumeError): Error => (isFileFailure(e) && e.cause instanceof Error ? e.cause : new VolumeStreamError(e));

/**
 * Writes a message through the file path: the target names a new file, the volume writes the
 * blob into it (verifying it). Resolves once the file is complete (the target commits it later,
 * in its group). A corrupt or missing blob fails with the volume's error (`readBlob`), as the
 * stream path does; a file that cannot be written is the target's (`writeMessage`).
 */
export const writeMessageFileFromBlob = async (
  files: FilePath,
  account: AccountId,
  folderPath: string,
  state: { readonly digest: string; readonly size: number; readonly receivedAt: number },
  flags: ReadonlyArray<string>,
): Promise<void> => {
  const key = `${account}:${folderPath}`;
  const digest = state.digest as Digest;
  let filled: Promise<void> | undefined;
  const fill = (file: BlobFile): Promise<void> =>
    (filled = (async () => {
      const r = await files.writeToFile(digest, file)();
      if (E.isRight(r)) return;
      const e = r.left;
      files.failures.record(isFileFailure(e) ? restoreError.target('writeMessage', key)(fileError(e, file.path)) : restoreError.volume('readBlob', digest)(e));
      throw fillRejection(e);
    })());
  const written = await files.writeMessageFile(account, folderPath, { size: state.size, flags, receivedAt: state.receivedAt, fill })();
  if (E.isLeft(written)) throw new RestoreAbort(files.failures.first() ?? restoreError.target('writeMessage', key)(written.left));
  if (filled === undefined) throw new RestoreAbort(restoreError.internal('writeMessage', key)(new Error('the target did not fill the message\'s file')));
  try {
    await filled;
  } catch (error) {
    throw new RestoreAbort(files.failures.first() ?? restoreError.internal('writeMessage', key)(error));
  }
};

const fileError = (e: VolumeError, path: string): SourceError => ({
  _tag: 'SourceIOError',
  op: 'writeMessage',
  key: e.key ?? path,
  message: describeVolumeError(e),
  cause: e.cause,
});

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
