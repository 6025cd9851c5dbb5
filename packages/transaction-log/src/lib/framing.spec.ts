import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { containsFrameWithSeq, encodeFrame, frameAt, HEADER_BYTES, openSegmentReader, type ReadStep } from './framing';
import { makeTempDirs } from '../test-support/test-util';

const temp = makeTempDirs();
afterAll(() => temp.cleanup());

const payload = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('frames', () => {
  it('round-trips sequence numbers beyond 32 bits and payloads', () => {
    for (const seq of [1, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER]) {
      const frame = encodeFrame(seq, payload(`{"seq":${seq}}`));
      const f = frameAt(frame, 0, frame.length);
      expect(f.kind).toBe('record');
      if (f.kind === 'record') {
        expect(f.seq).toBe(seq);
        expect(f.payload.toString('utf8')).toBe(`{"seq":${seq}}`);
        expect(f.length).toBe(frame.length);
      }
    }
  });

  it('reports every single-byte change as bad, never as another record', () => {
    const frame = encodeFrame(7, payload('{"a":"hello world"}'));
    for (let at = 0; at < frame.length; at++) {
      const damaged = Buffer.from(frame);
      damaged[at] = (damaged[at] ?? 0) ^ 0x40;
      expect(frameAt(damaged, 0, damaged.length).kind).not.toBe('record');
    }
  });

  it('reports a frame cut anywhere as short', () => {
    const frame = encodeFrame(3, payload('{"x":1}'));
    for (let end = 0; end < frame.length; end++) expect(frameAt(frame, 0, end).kind).toBe('short');
  });

  it('finds a frame with a given sequence number at any offset', () => {
    const buf = Buffer.concat([Buffer.from([1, 2, 3]), encodeFrame(41, payload('{}')), encodeFrame(42, payload('[]'))]);
    expect(containsFrameWithSeq(buf, 42)).toBe(true);
    expect(containsFrameWithSeq(buf, 41)).toBe(true);
    expect(containsFrameWithSeq(buf, 43)).toBe(false);
    expect(containsFrameWithSeq(buf.subarray(0, buf.length - 1), 42)).toBe(false);
  });
});

describe('segment reader', () => {
  const readAll = async (file: string): Promise<ReadStep[]> => {
    const reader = await openSegmentReader(file);
    const steps: ReadStep[] = [];
    try {
      for (;;) {
        const step = await reader.next();
        steps.push(step.kind === 'record' ? { ...step, payload: Buffer.from(step.payload) } : step);
        if (step.kind !== 'record') return steps;
      }
    } finally {
      await reader.close();
    }
  };

  it('reads records larger than its chunk and across chunk boundaries', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const frames = [encodeFrame(1, payload('"small"')), encodeFrame(2, payload(JSON.stringify(big))), encodeFrame(3, payload('"tail"'))];
    const file = path.join(temp.make(), 'seg');
    writeFileSync(file, Buffer.concat(frames));
    const steps = await readAll(file);
    expect(steps.map((s) => s.kind)).toEqual(['record', 'record', 'record', 'eof']);
    const second = steps[1];
    expect(second?.kind === 'record' && JSON.parse(second.payload.toString('utf8'))).toBe(big);
    expect(steps[2]).toMatchObject({ kind: 'record', seq: 3, offset: (frames[0]?.length ?? 0) + (frames[1]?.length ?? 0) });
  });

  it('stops at a cut record with its offset', async () => {
    const a = encodeFrame(1, payload('"a"'));
    const b = encodeFrame(2, payload('"bbbbbbbb"'));
    const file = path.join(temp.make(), 'seg');
    writeFileSync(file, Buffer.concat([a, b.subarray(0, HEADER_BYTES + 2)]));
    const steps = await readAll(file);
    expect(steps).toHaveLength(2);
    expect(steps[1]).toMatchObject({ kind: 'bad', offset: a.length, short: true });
  });
});
