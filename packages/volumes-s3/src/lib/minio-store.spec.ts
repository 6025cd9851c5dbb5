import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { mailLikeText } from '@zxbackup/volume-contract/testing';
import type { S3Error } from './errors';
import { makeMinioStore } from './minio-store';

// A stand-in S3 server that answers every PUT with 200 and the ETag `etagFor` chooses, so the
// store's own confirmation of an upload can be tested without a real server.
interface Received {
  readonly method: string;
  readonly url: string;
  readonly body: Buffer;
}
let server: Server;
let received: Received[];
let etagFor: (body: Buffer) => string;

const expectRight = async (te: TE.TaskEither<S3Error, void>): Promise<void> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected a success, got ${r.left._tag}: ${String(r.left.cause)}`);
};
const expectLeft = async (te: TE.TaskEither<S3Error, void>): Promise<S3Error> => {
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
      received.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(200, { ETag: `"${etagFor(body)}"`, 'Content-Length': '0' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  received = [];
  etagFor = md5;
});

const store = () =>
  makeMinioStore(
    {
      endPoint: '127.0.0.1',
      port: (server.address() as AddressInfo).port,
      useSSL: false,
      accessKey: 'k',
      secretKey: 's',
      region: 'us-east-1',
      bucket: 'unit',
      prefix: '',
    },
    { uploadTimeoutMs: () => 5000 },
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
