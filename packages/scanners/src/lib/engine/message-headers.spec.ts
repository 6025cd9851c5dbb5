import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { makeHeaderTap, parseMessageHeaders, splitAddresses } from './message-headers';

const through = async (chunks: Buffer[]): Promise<{ head: Buffer; out: Buffer }> => {
  const tap = makeHeaderTap();
  const got: Buffer[] = [];
  await pipeline(Readable.from(chunks), tap, new Writable({ write: (c: Buffer, _e, cb) => (got.push(c), cb()) }));
  return { head: tap.head(), out: Buffer.concat(got) };
};

describe('message headers', () => {
  it('passes every byte through and keeps the header block, however it is split', async () => {
    const msg = Buffer.from('Subject: hi\r\nFrom: a@b.test\r\n\r\nbody\r\n\r\nmore');
    for (const size of [1, 3, 7, 1000]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < msg.length; i += size) chunks.push(msg.subarray(i, i + size));
      const { head, out } = await through(chunks);
      expect(out.equals(msg)).toBe(true);
      expect(head.toString()).toBe('Subject: hi\r\nFrom: a@b.test');
    }
  });

  it('keeps at most 64 KiB of a message without a blank line', async () => {
    const big = Buffer.alloc(200_000, 'x');
    const { head, out } = await through([big]);
    expect(out.length).toBe(200_000);
    expect(head.length).toBe(64 * 1024);
  });

  it('decodes RFC 2047 words, folded lines and raw UTF-8', () => {
    const h = parseMessageHeaders(
      Buffer.from(
        'Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n =?UTF-8?B?IGF1cyBLw7Zsbg==?=\r\nFrom: Zoë <zoe@example.test>\r\nTo: "Last, First" <f@x.test>,\r\n\tb@y.test\r\nMessage-ID:  <id-1@x.test> \r\nDate: Wed, 4 Mar 2026 08:30:00 +0100 (CET)\r\n',
        'utf8',
      ),
    );
    expect(h).toEqual({
      subject: 'Grüße aus Köln',
      from: 'Zoë <zoe@example.test>',
      to: ['"Last, First" <f@x.test>', 'b@y.test'],
      messageId: '<id-1@x.test>',
      sentAt: Date.UTC(2026, 2, 4, 7, 30),
    });
  });

  it('leaves out what is missing or unreadable', () => {
    expect(parseMessageHeaders(Buffer.from('X-Other: 1\nDate: not a date\n'))).toEqual({});
  });

  it('splits address lists only on top-level commas', () => {
    expect(splitAddresses('a@x, "B, b" <b@x>, c (comment, here) <c@x>,')).toEqual(['a@x', '"B, b" <b@x>', 'c (comment, here) <c@x>']);
  });
});
