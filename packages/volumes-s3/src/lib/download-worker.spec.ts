import { randomBytes } from 'node:crypto';
import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { downloadOffThread, stopDownloadWorker, warmDownloadWorker } from './download-worker';

// A plain HTTP server on loopback plays the store: what it answers is what each test needs
// (a body, an S3 error document, a body cut short, a body larger than anyone should buffer).
let server: Server;
let answer: (res: ServerResponse) => void;
let requested: string[];
const urlAt = (port: number, key: string): string => `http://127.0.0.1:${port}/bucket/${key}?X-Amz-Signature=0123`;
const download = (key = 'key'): Promise<Readable> => downloadOffThread(urlAt((server.address() as AddressInfo).port, key));

beforeAll(async () => {
  server = createServer((req, res) => {
    requested.push(req.url ?? '');
    answer(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
beforeEach(() => {
  requested = [];
});
afterAll(async () => {
  await stopDownloadWorker();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const readAll = async (stream: Readable): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

const sendInChunks = (res: ServerResponse, body: Buffer, chunk: number): void => {
  res.writeHead(200, { 'Content-Length': String(body.length) });
  let at = 0;
  const next = (): void => {
    while (at < body.length) {
      const more = res.write(body.subarray(at, at + chunk));
      at += chunk;
      if (!more) {
        res.once('drain', next);
        return;
      }
    }
    res.end();
  };
  next();
};

describe('downloadOffThread', () => {
  it('hands over every byte of the body, in order, as Buffers', async () => {
    warmDownloadWorker();
    const body = randomBytes(5 * 1024 * 1024 + 123);
    answer = (res) => sendInChunks(res, body, 100_000);
    const stream = await download('some/key');
    const got = await readAll(stream);
    expect(got.length).toBe(body.length);
    expect(got.equals(body)).toBe(true);
    // The URL as given: the worker signs nothing.
    expect(requested).toEqual(['/bucket/some/key?X-Amz-Signature=0123']);
  });

  it('serves several downloads at once without mixing their bytes', async () => {
    const bodies = [randomBytes(700_000), randomBytes(1_300_000), randomBytes(10)];
    let n = 0;
    answer = (res) => sendInChunks(res, bodies[n++ % bodies.length] as Buffer, 65_536);
    const streams = await Promise.all(bodies.map(() => download()));
    const got = await Promise.all(streams.map(readAll));
    expect(got.map((b) => b.length).sort((a, b) => a - b)).toEqual(bodies.map((b) => b.length).sort((a, b) => a - b));
    for (const b of got) expect(bodies.some((want) => want.equals(b))).toBe(true);
  });

  it('rejects an error answer with the S3 code and status, before any byte', async () => {
    answer = (res) => {
      const xml = '<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';
      res.writeHead(404, { 'Content-Type': 'application/xml', 'Content-Length': String(Buffer.byteLength(xml)) });
      res.end(xml);
    };
    await expect(download()).rejects.toMatchObject({ code: 'NoSuchKey', statusCode: 404, message: 'The specified key does not exist.' });
  });

  it('fails the stream when the body ends before its Content-Length', async () => {
    answer = (res) => {
      res.writeHead(200, { 'Content-Length': String(1024 * 1024) });
      res.write(randomBytes(100_000), () => res.destroy());
    };
    const stream = await download();
    await expect(readAll(stream)).rejects.toThrow();
  });

  it('rejects when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await expect(downloadOffThread(urlAt(port, 'k'))).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('stops reading the connection while the reader does not read, and cancels the download when the stream is destroyed', async () => {
    const size = 256 * 1024 * 1024;
    let sent = 0;
    let closedEarly = false;
    answer = (res) => {
      res.writeHead(200, { 'Content-Length': String(size) });
      const block = Buffer.alloc(256 * 1024, 7);
      const next = (): void => {
        while (sent < size) {
          sent += block.length;
          if (!res.write(block)) {
            res.once('drain', next);
            return;
          }
        }
        res.end();
      };
      res.on('close', () => (closedEarly = sent < size || !res.writableFinished));
      next();
    };
    const stream = await download();
    const first = await new Promise<Buffer>((resolve) => stream.once('data', (c: Buffer) => (stream.pause(), resolve(c))));
    expect(first.length).toBeGreaterThan(0);
    // The reader holds still: the server can only fill the worker's window, the stream's
    // buffer and the sockets' buffers, far from the 256 MB it has to send.
    await new Promise((r) => setTimeout(r, 700));
    const sentWhilePaused = sent;
    await new Promise((r) => setTimeout(r, 300));
    expect(sent).toBe(sentWhilePaused);
    expect(sent).toBeLessThan(48 * 1024 * 1024);
    stream.destroy();
    await new Promise((r) => setTimeout(r, 300));
    expect(closedEarly).toBe(true);
  });

  it('fails a URL it cannot parse, naming why, without a request', async () => {
    await expect(downloadOffThread('not a url')).rejects.toThrow(/Invalid URL/);
    expect(requested).toEqual([]);
  });

  it('starts a new worker after being stopped', async () => {
    await stopDownloadWorker();
    const body = randomBytes(1000);
    answer = (res) => sendInChunks(res, body, 1000);
    expect((await readAll(await download())).equals(body)).toBe(true);
  });
});
