import { pseudoRandomBytes, mailLikeText } from '@zxbackup/volume-contract/testing';
import { brotliDecompressSync } from 'node:zlib';
import { chooseCodec, looksIncompressible } from './codec-choice';

const base64Of = (bytes: Buffer): Buffer => Buffer.from(bytes.toString('base64').replace(/(.{76})/g, '$1\r\n'), 'latin1');

describe('chooseCodec', () => {
  const text = mailLikeText(12_000, 1);
  const bigText = mailLikeText(300_000, 2);
  const random = pseudoRandomBytes(12_000, 3);
  const attachment = base64Of(pseudoRandomBytes(200_000, 4));

  it('compresses small mail text whole and hands back the compressed body', () => {
    const choice = chooseCodec(text, 'auto', true);
    expect(choice.codec).toBe('brotli');
    expect(brotliDecompressSync(choice.compressed as Buffer).equals(text)).toBe(true);
    expect((choice.compressed as Buffer).length).toBeLessThan(text.length * 0.7);
  });

  it('compresses large text, judged by a window (no body: the caller compresses it all)', () => {
    expect(chooseCodec(bigText, 'auto', true)).toEqual({ codec: 'brotli' });
  });

  it('stores random bytes and base64 attachments raw', () => {
    expect(chooseCodec(random, 'auto', true)).toEqual({ codec: 'raw' });
    expect(chooseCodec(attachment, 'auto', true)).toEqual({ codec: 'raw' });
  });

  it('judges a large message by its bulk: a text head before a base64 attachment stays raw', () => {
    const message = Buffer.concat([text.subarray(0, 6_000), attachment]);
    expect(chooseCodec(message, 'auto', true)).toEqual({ codec: 'raw' });
  });

  it('leaves tiny blobs raw in auto mode; never and always force the codec', () => {
    expect(chooseCodec(Buffer.from('Subject: hi\r\n\r\nhi\r\n'), 'auto', true)).toEqual({ codec: 'raw' });
    expect(chooseCodec(text, 'never', true)).toEqual({ codec: 'raw' });
    expect(chooseCodec(random, 'always', true).codec).toBe('brotli');
    expect(chooseCodec(bigText, 'always', false)).toEqual({ codec: 'brotli' });
  });

  it('tells random bytes from base64 and text by their byte entropy', () => {
    expect(looksIncompressible(random)).toBe(true);
    expect(looksIncompressible(attachment)).toBe(false);
    expect(looksIncompressible(text)).toBe(false);
    expect(looksIncompressible(random.subarray(0, 100))).toBe(false); // too short to judge
  });
});
