import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/Either';
import { pipe } from 'fp-ts/function';
import * as t from 'io-ts';
import { Digest } from '@zxbackup/volume-contract';

/**
 * The bucket layout of the S3 volume (restic's design, for the same reason: a store like Swift
 * spends ~15 ms of CPU per request, so one object per 20 KB message cannot keep up):
 *
 *   <prefix>packs/<xx>/<pack id>   blobs back to back, each sealed on its own when encrypted
 *   <prefix>index/<pack id>        which blob lies where in that pack (JSON, sealed like any object)
 *
 * A pack id is random (the pack is streamed while its key is already needed); `xx` is its last
 * two characters, spreading keys as the local volume does. A pack is immutable: deleting blobs
 * rewrites its index object, and a pack mostly dead is repacked (its live blobs move to a new
 * pack) then removed. The index objects are what a new machine reads to find every blob.
 */
export type PackId = string;

export const newPackId = (): PackId => randomBytes(16).toString('hex');
export const isPackId = (s: string): s is PackId => /^[0-9a-f]{32}$/.test(s);

export const packKey = (prefix: string, id: PackId): string => `${prefix}packs/${id.slice(-2)}/${id}`;
export const indexKey = (prefix: string, id: PackId): string => `${prefix}index/${id}`;
export const indexPrefix = (prefix: string): string => `${prefix}index/`;
export const packsPrefix = (prefix: string): string => `${prefix}packs/`;

/** `<prefix>packs/<xx>/<id>` → the id, or undefined for anything else. */
export const packIdOfKey = (prefix: string, key: string): PackId | undefined => {
  const m = /^([0-9a-f]{2})\/([0-9a-f]{32})$/.exec(key.slice(packsPrefix(prefix).length));
  return key.startsWith(packsPrefix(prefix)) && m !== null && m[2]?.endsWith(m[1] ?? '') ? m[2] : undefined;
};

/** `<prefix>index/<id>` → the id, or undefined. */
export const packIdOfIndexKey = (prefix: string, key: string): PackId | undefined => {
  const rest = key.slice(indexPrefix(prefix).length);
  return key.startsWith(indexPrefix(prefix)) && isPackId(rest) ? rest : undefined;
};

/** One blob in a pack: where its stored (maybe sealed) bytes are, and its plaintext size. */
export interface PackEntry {
  readonly digest: Digest;
  readonly offset: number;
  readonly length: number;
  readonly size: number;
}

const NonNegativeInt = t.refinement(t.number, (n) => Number.isSafeInteger(n) && n >= 0, 'NonNegativeInt');

/** The index object of one pack. Entries are tuples: the object stays small (~100 bytes a blob). */
const PackIndexObject = t.type({
  v: t.literal(1),
  pack: t.string,
  /** Bytes of the pack object. */
  size: NonNegativeInt,
  /** Epoch ms of the upload. */
  at: NonNegativeInt,
  entries: t.array(t.tuple([Digest, NonNegativeInt, NonNegativeInt, NonNegativeInt])),
});
type PackIndexObject = t.TypeOf<typeof PackIndexObject>;

const isNonNegativeInt = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * `PackIndexObject.is`, written out: a new machine decodes every index object of the bucket
 * (~300 entries each), and the codec's decode took ~3 us an entry, most of a restore's index
 * load besides the requests. The codec still words the error of an object that fails this.
 */
const isPackIndexObject = (u: unknown): u is PackIndexObject => {
  if (typeof u !== 'object' || u === null) return false;
  const o = u as Record<string, unknown>;
  if (o['v'] !== 1 || typeof o['pack'] !== 'string' || !isNonNegativeInt(o['size']) || !isNonNegativeInt(o['at'])) return false;
  const entries = o['entries'];
  if (!Array.isArray(entries)) return false;
  for (const e of entries as unknown[]) {
    if (!Array.isArray(e) || e.length !== 4 || !Digest.is(e[0]) || !isNonNegativeInt(e[1]) || !isNonNegativeInt(e[2]) || !isNonNegativeInt(e[3])) return false;
  }
  return true;
};

export const encodeIndexObject = (pack: PackId, size: number, at: number, entries: readonly PackEntry[]): Buffer =>
  Buffer.from(
    JSON.stringify({ v: 1, pack, size, at, entries: entries.map((e) => [e.digest, e.offset, e.length, e.size]) } satisfies PackIndexObject),
  );

/** Parses an index object; a wrong shape, another pack's object or entries outside the pack are errors. */
export const decodeIndexObject = (
  expected: PackId,
  bytes: Buffer,
): E.Either<string, { size: number; at: number; entries: PackEntry[] }> =>
  pipe(
    E.tryCatch(
      () => JSON.parse(bytes.toString('utf8')) as unknown,
      () => 'not JSON',
    ),
    E.flatMap((u) =>
      pipe(
        isPackIndexObject(u) ? E.right(u) : PackIndexObject.decode(u),
        E.mapLeft((errs) => `not a pack index (${errs.length} problems, first at ${errs[0]?.context.map((c) => c.key).filter((k) => k !== '').join('.') ?? '?'})`),
      ),
    ),
    E.flatMap((o) => {
      if (o.pack !== expected) return E.left(`describes pack ${o.pack}, not ${expected}`);
      const outside = o.entries.find(([, offset, length]) => offset + length > o.size);
      if (outside !== undefined) return E.left(`blob ${outside[0]} lies outside the ${o.size} bytes of the pack`);
      return E.right({
        size: o.size,
        at: o.at,
        entries: o.entries.map(([digest, offset, length, size]) => ({ digest, offset, length, size })),
      });
    }),
  );
