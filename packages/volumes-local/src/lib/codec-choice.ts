import * as zlib from 'node:zlib';
import type { Codec } from './format';

export type CompressionMode = 'auto' | 'always' | 'never';

// Brotli at quality 0 measured fastest for its ratio among what Node's zlib offers, both ways
// (see the package README for the figures): a `get` pays the decompression on every read. A 1 MB
// window bounds each (de)compressor's memory while keeping most of the ratio.
const BROTLI_QUALITY = 0;
const BROTLI_WINDOW_BITS = 20;

export const brotliParams = (sizeHint?: number): zlib.BrotliOptions => ({
  params: {
    [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
    [zlib.constants.BROTLI_PARAM_LGWIN]: BROTLI_WINDOW_BITS,
    ...(sizeHint === undefined ? {} : { [zlib.constants.BROTLI_PARAM_SIZE_HINT]: sizeHint }),
  },
});

export const compressSync = (bytes: Buffer): Buffer => zlib.brotliCompressSync(bytes, brotliParams(bytes.length));

// Below this, the header and codec overhead eat the gain.
const MIN_COMPRESSIBLE_BYTES = 256;
// Blobs up to this size are probed whole: the probe's output is then the stored body.
const WHOLE_PROBE_BYTES = 16 * 1024;
// Larger blobs are judged by a window from their middle: the bulk of a message is like its
// middle (an attachment), not like its start (headers and a short text part). Brotli on random
// bytes costs ~11 us per KB, so the window is kept small.
const PROBE_WINDOW_BYTES = 8 * 1024;
// Store compressed only when the probe at least shrinks it to this share. Mail text (~0.35-0.45)
// qualifies. Base64 attachments (~0.76) do not: they are most of a mailbox's bytes, and saving a
// quarter of them would cost as much CPU on put and get as all the rest (see the README's
// figures); random or already-compressed data (~1.0) never does.
const MAX_COMPRESSED_RATIO = 0.7;

// Random and already-compressed bytes (zip, jpeg, pdf streams) have an order-0 entropy near 8
// bits per byte; base64 has 6, mail text 4-5. Counting bytes of a 4 KB sample costs ~4 us, where
// brotli spends ~100 us failing to shrink 8 KB of random bytes.
const ENTROPY_SAMPLE_BYTES = 4096;
const INCOMPRESSIBLE_BITS_PER_BYTE = 7.2;

/** Whether a sample looks random at a glance (order-0 entropy), so no probe is worth running. */
export const looksIncompressible = (sample: Buffer): boolean => {
  const n = Math.min(sample.length, ENTROPY_SAMPLE_BYTES);
  if (n < 1024) return false;
  const counts = new Uint32Array(256);
  for (let i = 0; i < n; i += 1) {
    const byte = sample[i] as number;
    counts[byte] = (counts[byte] as number) + 1;
  }
  let bits = 0;
  for (const count of counts) {
    if (count > 0) {
      const p = count / n;
      bits -= p * Math.log2(p);
    }
  }
  return bits >= INCOMPRESSIBLE_BITS_PER_BYTE;
};

export interface CodecChoice {
  readonly codec: Codec;
  /** The compressed body when the probe already produced it (the probe was the whole blob). */
  readonly compressed?: Buffer;
}

/**
 * Decides how to store a blob from (the start of) its bytes. `sample` is the whole blob when it
 * is held whole, or its first chunks when it is streamed. Runs on the calling thread: at most a
 * 16 KB compression.
 */
export const chooseCodec = (sample: Buffer, mode: CompressionMode, wholeBlob: boolean): CodecChoice => {
  if (mode === 'never' || (mode === 'auto' && sample.length < MIN_COMPRESSIBLE_BYTES)) return { codec: 'raw' };
  if (sample.length <= WHOLE_PROBE_BYTES) {
    if (mode === 'auto' && looksIncompressible(sample)) return { codec: 'raw' };
    const probe = compressSync(sample);
    if (mode === 'always' || probe.length <= sample.length * MAX_COMPRESSED_RATIO) {
      return wholeBlob ? { codec: 'brotli', compressed: probe } : { codec: 'brotli' };
    }
    return { codec: 'raw' };
  }
  if (mode === 'always') return { codec: 'brotli' };
  const at = Math.floor((sample.length - PROBE_WINDOW_BYTES) / 2);
  const window = sample.subarray(at, at + PROBE_WINDOW_BYTES);
  if (looksIncompressible(window)) return { codec: 'raw' };
  return compressSync(window).length <= window.length * MAX_COMPRESSED_RATIO ? { codec: 'brotli' } : { codec: 'raw' };
};
