import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { mailLikeText } from '@zxbackup/volume-contract/testing';
import type { S3Error } from './errors';
import { makeMinioStore } from './minio-store';
import type { ObjectStore } from './object-store';
import { stopUploadWorker, type FileBlob } from './upload-worker';

// A stand-in S3 server that answers every PUT with 200 and the ETag `etagFor` chooses, so the
// store's own confirmation of an upload can be tested without a real server.
interface Received {
  readonly method: string;
  readonly url: string;
  readonly contentMd5: string | undefined;
  readonly body: Buffer;
}
let server: Server;
let received: Received[];
let etagFor: (body: Buffer) => string;
/** How the stand-in answers a request it received whole (by default 200 with `etagFor`'s ETag); `hang` never answers. */
let respond: ((res: ServerResponse, body: Buffer) => void) | 'hang';

const expectRight = async <A>(te: TE.TaskEither<S3Error, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected a success, got ${r.left._tag}: ${String(r.left.cause)}`);
  return r.right;
};
const expectLeft = async <A>(te: TE.TaskEither<S3Error, A>): Promise<S3Error> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected a failure');
  return r.left;
};

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const contentMd5 = req.headers['content-md5'];
      received.push({ method: req.method ?? '', url: req.url ?? '', contentMd5: typeof contentMd5 === 'string' ? contentMd5 : undefined, body });
      if (respond === 'hang') return;
      respond(res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  await stopUploadWorker();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  received = [];
  etagFor = md5;
  respond = (res, body) => {
    res.writeHead(200, { ETag: `"${etagFor(body)}"`, 'Content-Length': '0' });
    res.end();
  };
});

const store = (options: { readonly port?: number; readonly timeoutMs?: number } = {}) =>
  makeMinioStore(
    {
      endPoint: '127.0.0.1',
      port: options.port ?? (server.address() as AddressInfo).port,
      useSSL: false,
      accessKey: 'k',
      secretKey: 's',
      region: 'us-east-1',
      bucket: 'unit',
      prefix: '',
    },
    { uploadTimeoutMs: () => options.timeoutMs ?? 5000 },
  );

describe('minio store: a PUT is confirmed by its answer', () => {
  it('an ETag equal to the MD5 of the bytes sent confirms the upload, in one request', async () => {
    const bytes = mailLikeText(20_000, 1);
    await expectRight(store().put('items/ab/x', Readable.from([bytes]), bytes.length, { sha256: 'x' }));
    expect(received.map((r) => r.method)).toEqual(['PUT']);
    expect(received[0]?.body.equals(bytes)).toBe(true);
  });

  it('another ETag fails the put (VolumeIOError), so the uploader keeps the blob and retries', async () => {
    etagFor = () => '0'.repeat(32);
    const bytes = mailLikeText(5000, 2);
    const e = await expectLeft(store().put('items/ab/y', Readable.from([bytes]), bytes.length, {}));
    expect(e._tag).toBe('VolumeIOError');
    expect((e.cause as { code?: string }).code).toBe('UploadNotConfirmed');
  });

  it('a body shorter than announced is never sent', async () => {
    const bytes = mailLikeText(5000, 3);
    const e = await expectLeft(store().put('items/ab/z', Readable.from([bytes.subarray(0, 4000)]), bytes.length, {}));
    expect(e._tag).toBe('VolumeIOError');
    expect(received).toEqual([]);
  });
});

describe('minio store: putFileBlobs sends blobs of local files from the upload worker', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'zxb-file-blobs-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Blobs written into one file after `gap` bytes of something else each, as spool records are. */
  const spool = (name: string, blobs: readonly Buffer[], gap = 48): FileBlob[] => {
    const file = path.join(dir, name);
    const parts: Buffer[] = [];
    const out: FileBlob[] = [];
    let at = 0;
    for (const b of blobs) {
      parts.push(Buffer.alloc(gap, 0x21), b);
      at += gap;
      out.push({ file, offset: at, length: b.length, digest: createHash('sha256').update(b).digest('hex') });
      at += b.length;
    }
    writeFileSync(file, Buffer.concat(parts));
    return out;
  };
  const sizeOf = (blobs: readonly FileBlob[]): number => blobs.reduce((n, b) => n + b.length, 0);
  const putBlobs = (s: ObjectStore, key: string, blobs: readonly FileBlob[], size = sizeOf(blobs)) => {
    if (s.putFileBlobs === undefined) throw new Error('the minio store has no putFileBlobs');
    return s.putFileBlobs(key, blobs, size);
  };

  it('sends the blobs of several files back to back in one PUT with their Content-MD5, and reuses its buffers', async () => {
    // Larger, then smaller, then larger again: a reused buffer holds bytes of the one before.
    for (const [round, sizes] of [[1, [300_000, 5_000]], [2, [1_000]], [3, [2_000_000, 70_000, 9]]] as const) {
      received = [];
      const contents = sizes.map((n, i) => mailLikeText(n, round * 10 + i));
      const blobs = [...spool(`a${round}`, contents.slice(0, 1)), ...spool(`b${round}`, contents.slice(1))];
      expect(await expectRight(putBlobs(store(), `packs/0${round}`, blobs))).toEqual({ kind: 'stored' });
      const whole = Buffer.concat(contents);
      expect(received.map((r) => [r.method, r.url.split('?')[0]])).toEqual([['PUT', `/unit/packs/0${round}`]]);
      expect(received[0]?.body.equals(whole)).toBe(true);
      expect(received[0]?.contentMd5).toBe(createHash('md5').update(whole).digest('base64'));
    }
  });

  it('a blob whose bytes on disk do not hash to its digest: nothing is sent, and the answer names it', async () => {
    const blobs = spool('bad', [mailLikeText(4000, 1), mailLikeText(4000, 2)]);
    const bad = { ...(blobs[1] as FileBlob), digest: createHash('sha256').update('other bytes').digest('hex') };
    const answer = await expectRight(putBlobs(store(), 'packs/bad', [blobs[0] as FileBlob, bad]));
    expect(answer).toEqual({ kind: 'corrupt', digest: bad.digest, actual: blobs[1]?.digest });
    expect(received).toEqual([]);
  });

  it.each([
    ['another ETag', 'VolumeIOError', 'UploadNotConfirmed', (res: ServerResponse) => res.writeHead(200, { ETag: `"${'0'.repeat(32)}"`, 'Content-Length': '0' }).end()],
    ['a 503 SlowDown', 'VolumeUnavailable', 'SlowDown', (res: ServerResponse) => res.writeHead(503).end('<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>')],
    ['a 400 BadDigest', 'VolumeIOError', 'BadDigest', (res: ServerResponse) => res.writeHead(400).end('<Error><Code>BadDigest</Code><Message>The Content-MD5 you specified did not match.</Message></Error>')],
  ])('%s fails the put as %s (%s)', async (_label, tag, code, answer) => {
    respond = answer;
    const blobs = spool('answered', [mailLikeText(3000, 5)]);
    const e = await expectLeft(putBlobs(store(), 'packs/answered', blobs));
    expect(e._tag).toBe(tag);
    expect((e.cause as { code?: string }).code).toBe(code);
    expect(received).toHaveLength(1);
  });

  it('a store that never answers: UploadTimeout, unavailable (retried later)', async () => {
    respond = 'hang';
    const blobs = spool('hang', [mailLikeText(3000, 6)]);
    const e = await expectLeft(putBlobs(store({ timeoutMs: 300 }), 'packs/hang', blobs));
    expect(e._tag).toBe('VolumeUnavailable');
    expect((e.cause as { code?: string }).code).toBe('UploadTimeout');
  });

  it('a store nobody listens for: unavailable; a missing spool file: an I/O error', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const blobs = spool('refused', [mailLikeText(3000, 7)]);
    const e = await expectLeft(putBlobs(store({ port }), 'packs/refused', blobs));
    expect(e).toMatchObject({ _tag: 'VolumeUnavailable' });
    expect((e.cause as { code?: string }).code).toBe('ECONNREFUSED');
    const gone = await expectLeft(putBlobs(store(), 'packs/gone', [{ ...(blobs[0] as FileBlob), file: path.join(dir, 'nothing') }]));
    expect(gone._tag).toBe('VolumeIOError');
    expect((gone.cause as { code?: string }).code).toBe('ENOENT');
    expect(received).toEqual([]);
  });
});
