import { Readable } from 'node:stream';
import type { AccountId } from '@zxbackup/item-store';
import * as TE from 'fp-ts/TaskEither';
import type { BlobVolume, Digest } from '@zxbackup/volume-contract';
import { makeMemoryVolume, sha256Hex } from '@zxbackup/volume-contract/testing';
import { makeScanEngine } from '../engine/smart-scan';
import { makeFakeSource } from '../testing/fake-source';
import { makeFakeTarget } from '../testing/fake-target';
import { makeCounterTxIds, makeManualClock, openTempStore, unwrap } from '../testing/harness';
import { isHeldContent, type MessageContent } from '../source';
import { makeReadAhead, prefetchBlob } from './read-ahead';
import { makeRestoreEngine } from './restore-engine';

const tick = (ms = 1): Promise<void> => new Promise((r) => setTimeout(r, ms));
const readAll = async (s: MessageContent): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};
const putBytes = async (volume: BlobVolume, bytes: Buffer): Promise<Digest> => {
  const r = await volume.put(Readable.from([bytes]))();
  if (r._tag === 'Left') throw new Error(r.left._tag);
  return r.right.digest;
};

describe('makeReadAhead', () => {
  it('writes in push order, `writers` at a time, with at most `depth` items accepted', async () => {
    const made: number[] = [];
    const started: number[] = [];
    let running = 0;
    let maxRunning = 0;
    const ahead = makeReadAhead<number>(5, 2, async (i) => {
      started.push(i);
      maxRunning = Math.max(maxRunning, ++running);
      await tick(2);
      running--;
    });
    const producer = (async () => {
      for (let i = 0; i < 20; i++) {
        await ahead.push(() => (made.push(i), i));
        expect(made.length - (started.length - running)).toBeLessThanOrEqual(5); // accepted, not done
      }
    })();
    await producer;
    await ahead.drain();
    expect(started).toEqual([...Array(20).keys()]);
    expect(maxRunning).toBe(2);
  });

  it('once full, accepts the next items together when half the window is free (one batch of fetches)', async () => {
    const writes: Array<() => void> = [];
    const ahead = makeReadAhead<number>(8, 8, (i) => new Promise<void>((done) => (writes[i] = done)));
    const made: number[] = [];
    const producer = (async () => {
      for (let i = 0; i < 16; i++) await ahead.push(() => (made.push(i), i));
    })();
    await tick();
    expect(made).toHaveLength(8);
    // Three writes finish: still less than half free, nothing new is accepted.
    for (const i of [0, 1, 2]) writes[i]?.();
    await tick();
    expect(made).toHaveLength(8);
    // The fourth frees half the window: four are accepted at once.
    writes[3]?.();
    await tick();
    expect(made).toHaveLength(12);
    for (let i = 4; i < 16; i++) {
      while (writes[i] === undefined) await tick();
      writes[i]?.();
    }
    await producer;
    await ahead.drain();
    expect(made).toEqual([...Array(16).keys()]);
  });

  it('after a failure nothing new starts, and push and drain throw the first failure', async () => {
    const started: number[] = [];
    const ahead = makeReadAhead<number>(4, 1, async (i) => {
      started.push(i);
      await tick();
      if (i === 2) throw new Error('write 2 failed');
    });
    const pushed: Promise<void>[] = [];
    let thrown: unknown;
    try {
      for (let i = 0; i < 10; i++) await ahead.push(() => i);
    } catch (e) {
      thrown = e;
    }
    pushed.push(ahead.drain());
    await expect(Promise.all(pushed)).rejects.toThrow('write 2 failed');
    expect(String(thrown)).toContain('write 2 failed');
    expect(started).toEqual([0, 1, 2]);
  });
});

describe('prefetchBlob', () => {
  it('fetches a small blob at once, before the write asks for it', async () => {
    const volume = makeMemoryVolume();
    const bytes = Buffer.from('Subject: hi\r\n\r\nhello\r\n');
    const d = await putBytes(volume, bytes);
    let gets = 0;
    const counting: BlobVolume = { ...volume, get: (x) => () => (gets++, volume.get(x)()) };
    const task = prefetchBlob(counting, d, bytes.length);
    expect(gets).toBe(1);
    const r = await task();
    if (r._tag === 'Left') throw new Error(r.left._tag);
    expect((await readAll(r.right)).equals(bytes)).toBe(true);
  });

  it('opens a big blob only when the write runs, and streams it', async () => {
    const volume = makeMemoryVolume();
    const bytes = Buffer.alloc(3000, 7);
    const d = await putBytes(volume, bytes);
    let gets = 0;
    const counting: BlobVolume = { ...volume, get: (x) => () => (gets++, volume.get(x)()) };
    const task = prefetchBlob(counting, d, bytes.length, 1000);
    expect(gets).toBe(0);
    const r = await task();
    expect(gets).toBe(1);
    if (r._tag === 'Left') throw new Error(r.left._tag);
    expect((await readAll(r.right)).equals(bytes)).toBe(true);
  });

  it("a corrupt blob fetched ahead is the fetch's BlobCorrupt (no write starts); a missing one is BlobNotFound", async () => {
    const volume = makeMemoryVolume();
    const bytes = Buffer.from('some message body');
    const d = await putBytes(volume, bytes);
    volume.tamper(d, (b) => Buffer.concat([b, Buffer.from('x')]));
    const r = await prefetchBlob(volume, d, bytes.length)();
    expect(r._tag === 'Left' && r.left._tag).toBe('BlobCorrupt');
    const missing = await prefetchBlob(volume, sha256Hex(Buffer.from('never')), 5)();
    expect(missing._tag === 'Left' && missing.left._tag).toBe('BlobNotFound');
  });

  it("takes a small blob from the volume's readWhole where it has one: its parts as they are, no stream", async () => {
    const volume = makeMemoryVolume();
    const bytes = Buffer.from('Subject: parts\r\n\r\nin two\r\n');
    const d = await putBytes(volume, bytes);
    const parts = [bytes.subarray(0, 9), bytes.subarray(9)];
    let gets = 0;
    const whole: BlobVolume = { ...volume, get: (x) => () => (gets++, volume.get(x)()), readWhole: (x) => (x === d ? TE.right(parts) : TE.left({ _tag: 'BlobNotFound', op: 'get', key: x })) };
    const r = await prefetchBlob(whole, d, bytes.length)();
    if (r._tag === 'Left') throw new Error(r.left._tag);
    expect(isHeldContent(r.right)).toBe(true);
    expect(r.right).toEqual(parts);
    expect(gets).toBe(0);
  });
});

describe('restoreAccount with read-ahead', () => {
  it('fetches blobs ahead of a single writer and restores the same messages in the same order', async () => {
    const { store, close } = await openTempStore();
    try {
      const ALICE = 'alice@example.test' as AccountId;
      const source = makeFakeSource();
      const inner = makeMemoryVolume();
      let inFlight = 0;
      let maxInFlight = 0;
      // A remote volume: every get answers after a delay.
      const volume: BlobVolume = {
        ...inner,
        get: (d) => async () => {
          maxInFlight = Math.max(maxInFlight, ++inFlight);
          await tick(5);
          inFlight--;
          return inner.get(d)();
        },
      };
      const clock = makeManualClock();
      source.addAccount(ALICE, { settings: {} });
      for (let i = 0; i < 30; i++)
        source.putMessage(ALICE, 'INBOX', `k${String(i).padStart(2, '0')}`, `Subject: m${i}\r\n\r\nbody ${i}\r\n`, { receivedAt: 1_700_000_000_000 + i });
      await unwrap(makeScanEngine({ store, volume: inner, source, txIds: makeCounterTxIds(), clock: clock.now }).smartScan());
      const restoreWith = async (readAhead: number, account: string) => {
        const target = makeFakeTarget();
        const dest = account as AccountId;
        const summary = await unwrap(
          makeRestoreEngine({ store, volume, target, concurrency: 1, readAhead }).restoreAccount({ account: ALICE, newAccount: dest, at: clock.now() + 1, undelete: false }),
        );
        return { summary, written: target.accounts.get(dest)?.folders.get('INBOX')?.messages.map((m) => m.content.toString()) };
      };
      maxInFlight = 0;
      const plain = await restoreWith(1, 'one@example.test');
      expect(maxInFlight).toBe(1);
      maxInFlight = 0;
      const ahead = await restoreWith(8, 'ahead@example.test');
      expect(maxInFlight).toBeGreaterThan(1);
      expect(maxInFlight).toBeLessThanOrEqual(8);
      expect(ahead.summary).toEqual(plain.summary);
      expect(ahead.summary.messages).toBe(30);
      expect(ahead.written).toEqual(plain.written);
      expect(new Set(ahead.written)).toEqual(new Set(source.snapshot(ALICE)['INBOX']?.map((m) => m.content)));
    } finally {
      await close();
    }
  });
});
