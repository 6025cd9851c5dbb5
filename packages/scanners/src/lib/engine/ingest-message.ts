import * as E from 'fp-ts/Either';
import type { AccountId } from '@zxbackup/item-store';
import { describeVolumeError, type BlobVolume } from '@zxbackup/volume-contract';
import type { MessageEntry, Source, SourceError } from '../source';
import { Abort, engineError } from './errors';
import { HEAD_LIMIT, headerBlock, makeHeaderTap, parseMessageHeaders, type MessageHeaders } from './message-headers';

export interface IngestedMessage {
  readonly digest: string;
  readonly size: number;
  /** false when the volume already held these bytes (deduplicated). */
  readonly stored: boolean;
  readonly headers: MessageHeaders;
}

/**
 * Streams one message from the source into the volume, parsing its header block on the way.
 * Resolves undefined when the message vanished between the listing and the read (it moved or
 * was deleted meanwhile: the next scan sees where it went). Other failures throw an `Abort`.
 */
export const ingestMessage = async (source: Source, volume: BlobVolume, account: AccountId, entry: MessageEntry): Promise<IngestedMessage | undefined> => {
  const file = source.localFile?.(account, entry.locator);
  if (file !== undefined) {
    const put = await volume.putFile(file, { headBytes: HEAD_LIMIT, headEnd: 'blankLine' })();
    if (E.isRight(put)) {
      const { digest, size, stored, head } = put.right;
      return { digest, size, stored, headers: parseMessageHeaders(headerBlock(head)) };
    }
    const failed = put.left;
    // Gone from where it was listed (a flag change renames it): the stream path finds it by name.
    if (!(failed._tag === 'SourceUnreadable' && failed.code === 'ENOENT')) {
      if (failed._tag === 'SourceUnreadable') {
        const cause: SourceError = { _tag: 'SourceIOError', op: 'readBlob', key: entry.locator, message: describeVolumeError(failed), cause: failed.cause };
        throw new Abort({ error: engineError.source('readBlob', `${account}:${entry.locator}`)(cause) });
      }
      throw new Abort({ error: engineError.volume('putBlob', `${account}:${entry.locator}`)(failed) });
    }
  }
  return ingestByStream(source, volume, account, entry);
};

const ingestByStream = async (source: Source, volume: BlobVolume, account: AccountId, entry: MessageEntry): Promise<IngestedMessage | undefined> => {
  const opened = await source.openBlob(account, entry.locator)();
  if (E.isLeft(opened)) {
    if (opened.left._tag === 'SourceNotFound') return undefined;
    throw new Abort({ error: engineError.source('openBlob', `${account}:${entry.locator}`)(opened.left) });
  }
  const input = opened.right;
  const tap = makeHeaderTap();
  let readError: unknown;
  input.on('error', (e) => {
    readError = e;
    tap.destroy(e);
  });
  input.pipe(tap);
  const put = await volume.put(tap)();
  if (readError !== undefined) {
    if ((readError as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const cause: SourceError = {
      _tag: 'SourceIOError',
      op: 'readBlob',
      key: entry.locator,
      message: readError instanceof Error ? readError.message : String(readError),
      cause: readError,
    };
    throw new Abort({ error: engineError.source('readBlob', `${account}:${entry.locator}`)(cause) });
  }
  if (E.isLeft(put)) {
    input.destroy();
    throw new Abort({ error: engineError.volume('putBlob', `${account}:${entry.locator}`)(put.left) });
  }
  return { digest: put.right.digest, size: put.right.size, stored: put.right.stored, headers: parseMessageHeaders(tap.head()) };
};
