import { promises as fsp } from 'node:fs';
import { crc32 } from 'node:zlib';

/**
 * A record on disk: a 16-byte header then the JSON payload.
 *
 *   u32 LE  payload length
 *   u32 LE  CRC32 of (length, sequence, payload)
 *   u64 LE  sequence number (the record's LogPosition)
 *
 * The sequence number in the frame lets recovery tell a torn tail (nothing valid follows)
 * from damage in the middle (the next record is still there), and replay detect gaps.
 */
export const HEADER_BYTES = 16;
/** Larger lengths can only be damage; also bounds what a reader allocates. */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;

const TWO_32 = 2 ** 32;

const frameCrc = (buf: Buffer, start: number, payloadLength: number): number =>
  crc32(buf.subarray(start + 8, start + HEADER_BYTES + payloadLength), crc32(buf.subarray(start, start + 4))) >>> 0;

export const encodeFrame = (seq: number, payload: Buffer): Buffer => {
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(seq % TWO_32, 8);
  frame.writeUInt32LE(Math.floor(seq / TWO_32), 12);
  payload.copy(frame, HEADER_BYTES);
  frame.writeUInt32LE(frameCrc(frame, 0, payload.length), 4);
  return frame;
};

export type FrameAt =
  | { readonly kind: 'record'; readonly seq: number; readonly payload: Buffer; readonly length: number }
  /** Fewer bytes than the frame needs; at the end of a file this is a torn write. */
  | { readonly kind: 'short' }
  | { readonly kind: 'bad'; readonly why: string };

/** Reads the frame at `start` of `buf`, looking at no byte at or beyond `end`. */
export const frameAt = (buf: Buffer, start: number, end: number): FrameAt => {
  if (end - start < HEADER_BYTES) return { kind: 'short' };
  const length = buf.readUInt32LE(start);
  if (length > MAX_PAYLOAD_BYTES) return { kind: 'bad', why: `impossible record length ${length}` };
  if (end - start < HEADER_BYTES + length) return { kind: 'short' };
  if (frameCrc(buf, start, length) !== buf.readUInt32LE(start + 4)) return { kind: 'bad', why: 'CRC mismatch' };
  const seq = buf.readUInt32LE(start + 12) * TWO_32 + buf.readUInt32LE(start + 8);
  return { kind: 'record', seq, payload: buf.subarray(start + HEADER_BYTES, start + HEADER_BYTES + length), length: HEADER_BYTES + length };
};

/** True if a valid frame carrying sequence `seq` starts anywhere in `buf`. */
export const containsFrameWithSeq = (buf: Buffer, seq: number): boolean => {
  const lo = seq % TWO_32;
  const hi = Math.floor(seq / TWO_32);
  for (let at = 0; at + HEADER_BYTES <= buf.length; at++) {
    if (buf.readUInt32LE(at + 8) !== lo || buf.readUInt32LE(at + 12) !== hi) continue;
    const f = frameAt(buf, at, buf.length);
    if (f.kind === 'record') return true;
  }
  return false;
};

export type ReadStep =
  | { readonly kind: 'record'; readonly offset: number; readonly seq: number; readonly payload: Buffer }
  | { readonly kind: 'eof' }
  /** Damaged or incomplete frame at `offset`; `short` when the file ended inside it. */
  | { readonly kind: 'bad'; readonly offset: number; readonly short: boolean; readonly why: string };

export interface SegmentReader {
  readonly next: () => Promise<ReadStep>;
  readonly close: () => Promise<void>;
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * Reads a segment frame by frame with a bounded buffer (one chunk, or one record if larger).
 * A returned payload is only valid until the next call.
 */
export const openSegmentReader = async (file: string): Promise<SegmentReader> => {
  const fh = await fsp.open(file, 'r');
  let buf = Buffer.alloc(0);
  let bufStart = 0; // file offset of buf[0]
  let pos = 0; // file offset of the next frame
  let atEof = false;

  // Makes buf hold at least `n` bytes from `pos`, unless the file ends first.
  const fill = async (n: number): Promise<void> => {
    const have = bufStart + buf.length - pos;
    if (have >= n || atEof) return;
    const next = Buffer.allocUnsafe(Math.max(n, CHUNK_BYTES));
    buf.copy(next, 0, pos - bufStart);
    let filled = have;
    while (filled < next.length) {
      const { bytesRead } = await fh.read(next, filled, next.length - filled, pos + filled);
      if (bytesRead === 0) {
        atEof = true;
        break;
      }
      filled += bytesRead;
    }
    buf = next.subarray(0, filled);
    bufStart = pos;
  };

  const next = async (): Promise<ReadStep> => {
    await fill(HEADER_BYTES);
    const local = pos - bufStart;
    const available = buf.length - local;
    if (available === 0) return { kind: 'eof' };
    if (available >= HEADER_BYTES) {
      const length = buf.readUInt32LE(local);
      if (length <= MAX_PAYLOAD_BYTES) await fill(HEADER_BYTES + length);
    }
    const at = pos - bufStart;
    const f = frameAt(buf, at, buf.length);
    switch (f.kind) {
      case 'short':
        return { kind: 'bad', offset: pos, short: true, why: 'file ends inside a record' };
      case 'bad':
        return { kind: 'bad', offset: pos, short: false, why: f.why };
      case 'record': {
        const offset = pos;
        pos += f.length;
        return { kind: 'record', offset, seq: f.seq, payload: f.payload };
      }
    }
  };

  return { next, close: () => fh.close() };
};
