import * as t from 'io-ts';

interface DigestBrand {
  readonly Digest: unique symbol;
}

/** Lower-case hex SHA-256 of a blob's raw bytes: the blob's identity on every volume. */
export const Digest = t.brand(
  t.string,
  (s): s is t.Branded<string, DigestBrand> => /^[0-9a-f]{64}$/.test(s),
  'Digest',
);
export type Digest = t.TypeOf<typeof Digest>;

/** Blobs live under `items/<xx>/<digest>`, xx being the last two hex characters (the seed's layout). */
export const digestShard = (digest: Digest): string => digest.slice(-2);
