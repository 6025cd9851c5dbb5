import * as E from 'fp-ts/Either';

/**
 * Every blob file starts with a fixed 16-byte header, so the reader never guesses how the bytes
 * are stored (content that itself starts with gzip or brotli magic stays raw content):
 *
 *   0..3   magic "ZXBV"
 *   4      format version (1)
 *   5      codec: 0 raw, 1 brotli
 *   6..7   reserved, zero
 *   8..15  raw (uncompressed) size, unsigned 64-bit big-endian
 *
 * The raw size lets `stat` answer without decompressing and lets `get` detect truncation.
 */
export const HEADER_SIZE = 16;
export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('ZXBV', 'latin1');

export type Codec = 'raw' | 'brotli';
const codecByte: Record<Codec, number> = { raw: 0, brotli: 1 };

export interface BlobHeader {
  readonly codec: Codec;
  readonly size: number;
}

export const encodeHeader = (header: BlobHeader): Buffer => {
  const out = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(out, 0);
  out[4] = FORMAT_VERSION;
  out[5] = codecByte[header.codec];
  out.writeBigUInt64BE(BigInt(header.size), 8);
  return out;
};

/** Reads the header of a blob file; a Left names what is wrong (the caller tags it `BlobCorrupt`). */
export const decodeHeader = (bytes: Buffer): E.Either<string, BlobHeader> => {
  if (bytes.length < HEADER_SIZE) return E.left(`file too short for a header (${bytes.length} bytes)`);
  if (!bytes.subarray(0, 4).equals(MAGIC)) return E.left('not a zxbackup blob file (bad magic)');
  if (bytes[4] !== FORMAT_VERSION) return E.left(`unknown blob format version ${bytes[4]}`);
  if (bytes[6] !== 0 || bytes[7] !== 0) return E.left('reserved header bytes are not zero');
  const size = bytes.readBigUInt64BE(8);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return E.left(`implausible raw size ${size}`);
  switch (bytes[5]) {
    case 0:
      return E.right({ codec: 'raw', size: Number(size) });
    case 1:
      return E.right({ codec: 'brotli', size: Number(size) });
    default:
      return E.left(`unknown codec ${bytes[5]}`);
  }
};
