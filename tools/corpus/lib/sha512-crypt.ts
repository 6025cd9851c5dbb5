import { createHash, type Hash } from 'node:crypto';

/*
 * SHA-512-crypt (`$6$salt$hash`, Drepper's "Unix crypt using SHA-256 and SHA-512"), the
 * `{SHA512-CRYPT}` scheme of Dovecot's passwd-file. Written here because node has no crypt(3)
 * and the generated passwd-file must be deterministic (salt from the seed) yet real.
 */

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ORDER: ReadonlyArray<readonly [number, number, number]> = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
  [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
  [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

const sha512 = (): Hash => createHash('sha512');

const repeatTo = (digest: Buffer, len: number): Buffer => {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = digest[i % 64] as number;
  return out;
};

export const SALT_CHARS = ITOA64;

export const sha512Crypt = (password: string, salt: string, rounds = 5000): string => {
  const p = Buffer.from(password);
  const s = Buffer.from(salt.slice(0, 16));
  const b = sha512().update(p).update(s).update(p).digest();
  const actx = sha512().update(p).update(s);
  let n = p.length;
  for (; n > 64; n -= 64) actx.update(b);
  actx.update(b.subarray(0, n));
  for (n = p.length; n > 0; n >>= 1) actx.update(n & 1 ? b : p);
  let c = actx.digest();
  const dp = sha512();
  for (let i = 0; i < p.length; i++) dp.update(p);
  const pBytes = repeatTo(dp.digest(), p.length);
  const ds = sha512();
  for (let i = 0; i < 16 + (c[0] as number); i++) ds.update(s);
  const sBytes = ds.digest().subarray(0, s.length);
  for (let i = 0; i < rounds; i++) {
    const ctx = sha512();
    ctx.update(i & 1 ? pBytes : c);
    if (i % 3) ctx.update(sBytes);
    if (i % 7) ctx.update(pBytes);
    ctx.update(i & 1 ? c : pBytes);
    c = ctx.digest();
  }
  let out = '';
  const b64 = (w: number, chars: number): void => {
    for (let i = 0; i < chars; i++) {
      out += ITOA64.charAt(w & 0x3f);
      w >>>= 6;
    }
  };
  for (const [x, y, z] of ORDER) b64(((c[x] as number) << 16) | ((c[y] as number) << 8) | (c[z] as number), 4);
  b64(c[63] as number, 2);
  const roundsPart = rounds === 5000 ? '' : `rounds=${rounds}$`;
  return `$6$${roundsPart}${s.toString()}$${out}`;
};
