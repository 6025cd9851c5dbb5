import { renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as TE from 'fp-ts/TaskEither';
import type { AccountId } from '@zxbackup/item-store';
import type { BlobVolume, PutFileOptions } from '@zxbackup/volume-contract';
import { makeMemoryVolume, readAll, sha256Hex } from '@zxbackup/volume-contract/testing';
import { makeMaildirSource } from '../maildir/maildir-source';
import { makeTempDirs, mkFolder, putMessage } from '../maildir/spec-support';
import type { MessageEntry, Source } from '../source';
import { Abort } from './errors';
import { ingestMessage } from './ingest-message';

const ALICE = 'alice@alpha.test' as AccountId;
const T1 = Date.UTC(2024, 0, 2, 3, 4, 5);
const MESSAGE = 'From: bob@beta.test\r\nSubject: quarterly numbers\r\nMessage-ID: <q1@beta.test>\r\n\r\nSee attached.\r\n';

const tmp = makeTempDirs();
afterEach(tmp.cleanup);

/** One message in alice's INBOX, and its listing entry. */
const setUp = async (): Promise<{ source: Source; maildir: string; entry: MessageEntry }> => {
  const root = tmp.make();
  const maildir = join(root, 'alpha.test', 'alice', 'Maildir');
  mkFolder(maildir, '');
  putMessage(join(maildir, 'cur', '1700000001.M1P1.host:2,S'), MESSAGE, T1);
  const source = makeMaildirSource({ root });
  const listed = await source.listFolder(ALICE, '')();
  if (E.isLeft(listed)) throw new Error(JSON.stringify(listed.left));
  const [entry] = listed.right.entries;
  if (entry === undefined) throw new Error('the message was not listed');
  return { source, maildir, entry };
};

/** A volume that records how each message reached it. */
const recording = (inner: BlobVolume): { volume: BlobVolume; files: string[]; streams: number } => {
  const log = { files: [] as string[], streams: 0 };
  const volume: BlobVolume = {
    ...inner,
    put: (content, options) => {
      log.streams += 1;
      return inner.put(content, options);
    },
    putFile: (file: string, options?: PutFileOptions) => {
      log.files.push(file);
      return inner.putFile(file, options);
    },
  };
  return Object.assign(log, { volume });
};

describe('ingestMessage', () => {
  it('hands a Maildir message file to the volume and parses its headers from the returned head', async () => {
    const { source, maildir, entry } = await setUp();
    const memory = makeMemoryVolume();
    const log = recording(memory);
    const ingested = await ingestMessage(source, log.volume, ALICE, entry);
    expect(ingested).toMatchObject({ digest: sha256Hex(Buffer.from(MESSAGE)), size: MESSAGE.length, stored: true });
    expect(ingested?.headers.subject).toBe('quarterly numbers');
    expect(ingested?.headers.messageId).toBe('<q1@beta.test>');
    expect(log.files).toEqual([join(maildir, entry.locator)]);
    expect(log.streams).toBe(0);
    const stored = await memory.get(sha256Hex(Buffer.from(MESSAGE)))();
    if (E.isLeft(stored)) throw new Error('not stored');
    expect((await readAll(stored.right)).toString()).toBe(MESSAGE);
  });

  it('follows a message renamed since the listing (a flag change) through the stream path', async () => {
    const { source, maildir, entry } = await setUp();
    renameSync(join(maildir, 'cur', '1700000001.M1P1.host:2,S'), join(maildir, 'cur', '1700000001.M1P1.host:2,RS'));
    const log = recording(makeMemoryVolume());
    const ingested = await ingestMessage(source, log.volume, ALICE, entry);
    expect(ingested?.digest).toBe(sha256Hex(Buffer.from(MESSAGE)));
    expect(ingested?.headers.subject).toBe('quarterly numbers');
    expect(log.files).toHaveLength(1);
    expect(log.streams).toBe(1);
  });

  it('a message deleted since the listing is skipped (the next scan sees it gone)', async () => {
    const { source, maildir, entry } = await setUp();
    unlinkSync(join(maildir, entry.locator));
    expect(await ingestMessage(source, makeMemoryVolume(), ALICE, entry)).toBeUndefined();
  });

  it('a volume failure aborts with the volume error; an unreadable file with a source error', async () => {
    const { source, entry } = await setUp();
    const full: BlobVolume = { ...makeMemoryVolume(), putFile: () => TE.left({ _tag: 'VolumeFull', op: 'put', cause: 'ENOSPC' }) };
    await expect(ingestMessage(source, full, ALICE, entry)).rejects.toMatchObject({ reason: { error: { _tag: 'EngineVolumeError', cause: { _tag: 'VolumeFull' } } } });
    const unreadable: BlobVolume = {
      ...makeMemoryVolume(),
      putFile: (file) => TE.left({ _tag: 'SourceUnreadable', op: 'put', key: file, code: 'EIO', cause: 'disk error' }),
    };
    const failure = await ingestMessage(source, unreadable, ALICE, entry).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Abort);
    expect(failure).toMatchObject({ reason: { error: { _tag: 'EngineSourceError', cause: { _tag: 'SourceIOError', op: 'readBlob' } } } });
  });
});
