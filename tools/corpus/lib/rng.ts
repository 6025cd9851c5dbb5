import { createCipheriv, createHash } from 'node:crypto';

/*
 * Seeded randomness for the corpus tools. Everything the generator and the mutator decide
 * comes from here, never from Math.random or the clock, so the same arguments give the same
 * tree. Streams are derived from labels (`Rng.derive(seed, 'msg', 17)`), so one message's
 * content does not depend on how many numbers other messages consumed.
 */

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

let zeros = Buffer.alloc(0);

/** xoshiro128** seeded from SHA-256 of its labels. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  private constructor(seed: Buffer) {
    this.s0 = seed.readUInt32LE(0);
    this.s1 = seed.readUInt32LE(4);
    this.s2 = seed.readUInt32LE(8);
    this.s3 = seed.readUInt32LE(12) | 1; // never the all-zero state
  }

  static derive(...labels: ReadonlyArray<string | number>): Rng {
    return new Rng(createHash('sha256').update(labels.map(String).join('\u0000')).digest());
  }

  /** A child stream: independent of how much this one is used afterwards. */
  fork(label: string | number): Rng {
    return Rng.derive(this.u32(), this.u32(), this.u32(), this.u32(), label);
  }

  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: ReadonlyArray<T>): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[this.int(0, items.length)] as T;
  }

  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    const total = items.reduce((s, [, w]) => s + w, 0);
    let x = this.float() * total;
    for (const [item, w] of items) {
      x -= w;
      if (x < 0) return item;
    }
    const last = items[items.length - 1];
    if (last === undefined) throw new Error('Rng.weighted: empty list');
    return last[0];
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  lognormal(median: number, sigma: number): number {
    return median * Math.exp(sigma * this.normal());
  }

  shuffle<T>(items: ReadonlyArray<T>): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const tmp = out[i] as T;
      out[i] = out[j] as T;
      out[j] = tmp;
    }
    return out;
  }

  hex(chars: number): string {
    let s = '';
    while (s.length < chars) s += this.u32().toString(16).padStart(8, '0');
    return s.slice(0, chars);
  }

  /** `n` incompressible bytes: an AES-128-CTR key stream keyed from this generator (fast, deterministic). */
  bytes(n: number): Buffer {
    const key = Buffer.alloc(16);
    const iv = Buffer.alloc(16);
    for (let i = 0; i < 4; i++) {
      key.writeUInt32LE(this.u32(), i * 4);
      iv.writeUInt32LE(this.u32(), i * 4);
    }
    if (zeros.length < n) zeros = Buffer.alloc(Math.max(n, 1 << 20));
    return createCipheriv('aes-128-ctr', key, iv).update(zeros.subarray(0, n));
  }
}
