import { decodeMailboxName, encodeMailboxName } from './mutf7';
import { expectLeft, expectRight } from './spec-support';

describe('modified UTF-7 mailbox names', () => {
  it.each([
    ['INBOX', 'INBOX'],
    ['Entwürfe', 'Entw&APw-rfe'],
    ['A&B', 'A&-B'],
    ['&', '&-'],
    ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'],
    ['Boîte de réception', 'Bo&AO4-te de r&AOk-ception'],
    ['😀', '&2D3eAA-'],
  ])('%s <-> %s', (name, encoded) => {
    expect(encodeMailboxName(name)).toBe(encoded);
    expect(expectRight(decodeMailboxName(encoded))).toBe(name);
  });

  it.each([
    ['unterminated', '&APw'],
    ['raw 8-bit', 'Entwürfe'],
    ['encoded ASCII', '&AEE-'],
    ['bad padding bits', '&APx-'],
    ['lone surrogate', '&2D0-'],
    ['bad base64 character', '&AP/-'],
  ])('refuses %s (%s)', (_why, encoded) => {
    expect(expectLeft(decodeMailboxName(encoded))._tag).toBe('SourceInvalid');
  });

  it('round-trips random Unicode names', () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pools = [
      [0x20, 0x7e],
      [0xa0, 0x2ff],
      [0x400, 0x4ff],
      [0x4e00, 0x9fff],
      [0x1f300, 0x1f6ff],
      [0xe000, 0xf8ff],
    ] as const;
    const bad: string[] = [];
    for (let i = 0; i < 2000; i++) {
      let name = '';
      const len = 1 + rnd(12);
      for (let j = 0; j < len; j++) {
        const [lo, hi] = pools[rnd(pools.length)] as readonly [number, number];
        name += String.fromCodePoint(lo + rnd(hi - lo + 1));
      }
      const encoded = encodeMailboxName(name);
      const decoded = expectRight(decodeMailboxName(encoded));
      if (!/^[\x20-\x7e]*$/.test(encoded) || decoded !== name || encodeMailboxName(decoded) !== encoded) bad.push(name);
    }
    expect(bad).toEqual([]);
  });
});
