import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadToFilesOffThread, stopDownloadWorker, type FileDownload, type PlannedBlob } from './download-worker';

// A plain HTTP server on loopback plays the store, as in download-worker.spec.ts.
let server: Server;
let answer: (res: ServerResponse) => void;
let dir: string;
const urlOf = (): Promise<string> => Promise.resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/pack?X-Amz-Signature=0`);

beforeAll(async () => {
  server = createServer((_req, res) => answer(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'zxb-download-files-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
afterAll(async () => {
  await stopDownloadWorker();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** A pack of random blobs (with gaps between them, as deleted blobs leave) and its plan. */
const makePack = (sizes: readonly number[]): { pack: Buffer; blobs: Array<PlannedBlob & { bytes: Buffer }> } => {
  const parts: Buffer[] = [];
  const blobs: Array<PlannedBlob & { bytes: Buffer }> = [];
  let at = 0;
  for (const size of sizes) {
    const gap = randomBytes(17);
    const bytes = randomBytes(size);
    parts.push(gap, bytes);
    at += gap.length;
    blobs.push({ offset: at, length: size, digest: createHash('sha256').update(bytes).digest('hex'), wanted: 1, bytes });
    at += size;
  }
  return { pack: Buffer.concat(parts), blobs };
};

const sendInChunks = (res: ServerResponse, body: Buffer, chunk: number, upTo = body.length): void => {
  res.writeHead(200, { 'Content-Length': String(body.length) });
  let at = 0;
  const next = (): void => {
    while (at < upTo) {
      const more = res.write(body.subarray(at, Math.min(at + chunk, upTo)));
      at += chunk;
      if (!more) {
        res.once('drain', next);
        return;
      }
    }
    if (upTo >= body.length) res.end();
    else setTimeout(() => res.destroy(), 100); // the connection breaks off (after what was sent got there)
  };
  next();
};

const file = (name: string, mtimeMs = Date.UTC(2023, 4, 5, 6, 7, 8)) => ({ path: join(dir, name), mode: 0o640, mtimeMs });

describe('downloadToFilesOffThread', () => {
  it('writes each planned blob into the files asked, verified, with mode and mtime, also when asked before its bytes came', async () => {
    const { pack, blobs } = makePack([10, 30_000, 70_000, 1, 200_000]);
    answer = (res) => sendInChunks(res, pack, 7000);
    const d = downloadToFilesOffThread(urlOf());
    d.plan(blobs.map((b, i) => ({ ...b, wanted: i === 2 ? 2 : 1 })));
    const results = await Promise.all([
      ...blobs.map((_, i) => d.write(i, file(`m${i}`))),
      d.write(2, file('m2-again')), // a second message of the same content
    ]);
    expect(results.map((r) => r.kind)).toEqual(['written', 'written', 'written', 'written', 'written', 'written']);
    await d.received;
    blobs.forEach((b, i) => expect(readFileSync(join(dir, `m${i}`)).equals(b.bytes)).toBe(true));
    expect(readFileSync(join(dir, 'm2-again')).equals(blobs[2]?.bytes as Buffer)).toBe(true);
    const st = statSync(join(dir, 'm1'));
    expect(st.mode & 0o777).toBe(0o640);
    expect(st.mtimeMs).toBe(Date.UTC(2023, 4, 5, 6, 7, 8));
  });

  it('keeps what arrives before its plan (a download opened ahead), and blobs whose files are asked after they came', async () => {
    const { pack, blobs } = makePack([5000, 6000, 7000]);
    answer = (res) => sendInChunks(res, pack, 1000);
    const d = downloadToFilesOffThread(urlOf());
    await d.received; // the whole pack is there before any plan
    d.plan(blobs);
    await new Promise((r) => setTimeout(r, 50));
    for (const [i, b] of blobs.entries()) {
      expect((await d.write(i, file(`late${i}`))).kind).toBe('written');
      expect(readFileSync(join(dir, `late${i}`)).equals(b.bytes)).toBe(true);
    }
  });

  it('a blob that hashes to another digest is corrupt: no file; the others are written', async () => {
    const { pack, blobs } = makePack([4000, 4000]);
    const bad = Buffer.from(pack);
    const first = blobs[0] as PlannedBlob;
    bad[first.offset + 100] = (bad[first.offset + 100] ?? 0) ^ 1;
    answer = (res) => sendInChunks(res, bad, 3000);
    const d = downloadToFilesOffThread(urlOf());
    d.plan(blobs);
    const [a, b] = await Promise.all([d.write(0, file('bad')), d.write(1, file('good'))]);
    expect(a.kind).toBe('corrupt');
    expect(b.kind).toBe('written');
    expect(existsSync(join(dir, 'bad'))).toBe(false);
  });

  it('never writes over an existing file: that file fails with EEXIST and is left as it was', async () => {
    const { pack, blobs } = makePack([3000]);
    answer = (res) => sendInChunks(res, pack, 3000);
    writeFileSync(join(dir, 'taken'), 'keep');
    const d = downloadToFilesOffThread(urlOf());
    d.plan(blobs);
    const r = await d.write(0, file('taken'));
    expect(r.kind).toBe('failed');
    expect(r.kind === 'failed' && (r.error as { code?: string }).code).toBe('EEXIST');
    expect(readFileSync(join(dir, 'taken'), 'utf8')).toBe('keep');
  });

  it('a connection that breaks off: blobs received are written, the rest are lost (read another way), and received rejects', async () => {
    const { pack, blobs } = makePack([20_000, 20_000, 20_000]);
    answer = (res) => sendInChunks(res, pack, 5000, (blobs[1]?.offset ?? 0) + 100);
    const d = downloadToFilesOffThread(urlOf());
    d.plan(blobs);
    const results = await Promise.all(blobs.map((_, i) => d.write(i, file(`cut${i}`))));
    expect(results.map((r) => r.kind)).toEqual(['written', 'lost', 'lost']);
    await expect(d.received).rejects.toMatchObject({ code: expect.any(String) });
    expect(existsSync(join(dir, 'cut1'))).toBe(false);
  });

  it('an S3 error answer rejects received with its code and status; files asked are lost', async () => {
    answer = (res) => {
      res.writeHead(404, { 'Content-Type': 'application/xml' });
      res.end('<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>');
    };
    const d = downloadToFilesOffThread(urlOf());
    d.plan([{ offset: 0, length: 10, digest: 'a'.repeat(64), wanted: 1 }]);
    const r = await d.write(0, file('x'));
    expect(r.kind).toBe('lost');
    await expect(d.received).rejects.toMatchObject({ code: 'NoSuchKey', statusCode: 404 });
  });

  it('holds at most its window of blobs nobody asked for: the connection is not read on until files are asked', async () => {
    const { pack, blobs } = makePack(Array.from({ length: 64 }, () => 1024 * 1024)); // 64 MB
    let sent = 0;
    answer = (res) => {
      res.writeHead(200, { 'Content-Length': String(pack.length) });
      const next = (): void => {
        while (sent < pack.length) {
          const more = res.write(pack.subarray(sent, sent + 64 * 1024));
          sent += 64 * 1024;
          if (!more) {
            res.once('drain', next);
            return;
          }
        }
        res.end();
      };
      next();
    };
    const d: FileDownload = downloadToFilesOffThread(urlOf());
    d.plan(blobs);
    // Until the sending stalls (or all is sent).
    for (let last = -1, i = 0; i < 50 && (sent === 0 || sent !== last); i++) {
      last = sent;
      await new Promise((r) => setTimeout(r, 300));
    }
    // 4 MiB held, plus what the sockets' buffers take (loopback's grow to several MB): far short of the 64 MB.
    expect(sent).toBeGreaterThan(0);
    expect(sent).toBeLessThan(32 * 1024 * 1024);
    const results = await Promise.all(blobs.map((_, i) => d.write(i, file(`w${i}`))));
    expect(results.every((r) => r.kind === 'written')).toBe(true);
    await d.received;
    expect(sent).toBeGreaterThanOrEqual(pack.length);
    // 64 MB through loopback, hashed and written: seconds on a loaded 2-core machine.
  }, 30_000);

  it('cancel: files asked and not written are lost at once', async () => {
    const { pack, blobs } = makePack([1000]);
    answer = () => undefined; // the store never answers
    const d = downloadToFilesOffThread(urlOf());
    d.plan(blobs);
    const pending = d.write(0, file('never'));
    d.cancel();
    expect((await pending).kind).toBe('lost');
    await d.received;
    void pack;
  });
});
