import * as E from 'fp-ts/Either';
import { decodeStoredTransaction, decodeTransaction, slowDecoders } from './decode';
import { expectLeft } from './util.spec-helper';

/*
 * The hand-written fast path must never accept what the io-ts codecs refuse. Every field of a
 * message row (and a few that are not fields) is set, one or two at a time, to values of every
 * JSON type; fast and slow must agree, and the decoders' answer must be the codecs' answer.
 */

const base: Record<string, unknown> = {
  tx: 12,
  start: 1_700_000_000_000,
  op: 'update',
  kind: 'message',
  folderId: 'inbox',
  flags: ['\\Seen'],
  receivedAt: 1_699_000_000_000,
  sourceKey: '1767225600.M1P1234.host,S=4213',
  subject: 'Hello',
  from: 'a@example.test',
  to: ['b@example.test'],
  messageId: '<1@example.test>',
  sentAt: 1_698_000_000_000,
  digest: 'a'.repeat(64),
  size: 4213,
};

const REMOVE = Symbol('remove');
const values: ReadonlyArray<unknown> = [
  REMOVE, null, true, 0, -1, 1.5, 2 ** 60, 7, '', 'x', 'inbox', 'bad id!', 'create', 'delete', 'message', 'folder',
  'a'.repeat(64), 'A'.repeat(64), 'a'.repeat(63), [], ['x'], [1], [null], {}, { a: 1 },
];
const fields = [...Object.keys(base), 'end', 'extra', 'path', 'view'];

const variants = function* (): Generator<Record<string, unknown>> {
  yield { ...base };
  for (const f of fields) {
    for (const v of values) {
      const u = { ...base };
      if (v === REMOVE) delete u[f];
      else u[f] = v;
      yield u;
    }
  }
  // pairs of optional fields removed or broken together
  const optional = ['sourceKey', 'subject', 'from', 'to', 'messageId', 'sentAt', 'digest', 'size'];
  for (const a of optional) for (const b of optional) yield { ...base, [a]: undefined, [b]: null };
};

describe('the fast decoding path', () => {
  it('accepts only what the codecs accept, stored rows and transactions alike', () => {
    let fastAccepted = 0;
    let checked = 0;
    for (const raw of variants()) {
      const u = JSON.parse(JSON.stringify(raw)) as unknown; // what a reader sees: JSON only
      const withEnd = JSON.parse(JSON.stringify({ ...raw, end: 'end' in raw ? raw['end'] : null })) as unknown;
      for (const [mode, input, slow, decode] of [
        ['absent', u, slowDecoders.stored, decodeStoredTransaction('spec')],
        ['present', withEnd, slowDecoders.transaction, decodeTransaction('spec')],
      ] as const) {
        const fast = slowDecoders.fastMessage(input, mode);
        const ok = slow(input);
        if (fast) {
          fastAccepted++;
          expect({ input, ok }).toEqual({ input, ok: true });
        }
        expect({ input, decoded: E.isRight(decode(input)) }).toEqual({ input, decoded: ok });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
    expect(fastAccepted).toBeGreaterThan(100); // the fast path is taken, not only the fallback
  });

  it('refuses a stored row that carries end, and words errors by field', () => {
    expect(expectLeft(decodeStoredTransaction('spec', 'k')({ ...base, end: null }), 'DecodeError').message).toMatch(/end/);
    expect(expectLeft(decodeStoredTransaction('spec', 'k')({ ...base, folderId: 3 }), 'DecodeError').message).toMatch(/folderId/);
    expect(expectLeft(decodeTransaction('spec', 'k')({ ...base, end: null, kind: 'nope' }), 'DecodeError').message).toMatch(/kind/);
  });
});
