import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import type { History } from './codecs';
import { appendState, decodeHistory, deletedAt, encodeHistory, isDeletedAt, markDeleted, stateAt, stateAtTx, validateHistory } from './history';
import { entry, expectLeft, expectRight, msg, txid } from './util.spec-helper';

const A = msg('a');
const B = msg('b', ['\\Seen']);
const C = msg('c', ['\\Seen'], 'archive');
const D1 = 'a'.repeat(64);
const D2 = 'b'.repeat(64);

// created at 100 (tx 1), updated at 200 (tx 5), deleted at 300 (tx 7), re-created at 400 (tx 9)
const full: History = [
  entry(1, 100, 200, 'create', A),
  entry(5, 200, 300, 'update', B),
  entry(7, 300, 400, 'delete', B),
  entry(9, 400, null, 'create', C),
];

describe('appendState', () => {
  const golden: ReadonlyArray<[string, History, Parameters<typeof appendState>[1], O.Option<History>]> = [
    ['first state is a create', [], { tx: txid(1), at: 100, meta: A }, O.some([entry(1, 100, null, 'create', A)])],
    [
      'a new state closes the previous one',
      [entry(1, 100, null, 'create', A)],
      { tx: txid(2), at: 150, meta: B },
      O.some([entry(1, 100, 150, 'create', A), entry(2, 150, null, 'update', B)]),
    ],
    ['an identical state records nothing', [entry(1, 100, null, 'create', A)], { tx: txid(2), at: 150, meta: msg('a') }, O.none],
    [
      'a new digest alone is a change',
      [entry(1, 100, null, 'create', A, { digest: D1, size: 3 })],
      { tx: txid(2), at: 150, meta: A, digest: D2, size: 3 },
      O.some([entry(1, 100, 150, 'create', A, { digest: D1, size: 3 }), entry(2, 150, null, 'update', A, { digest: D2, size: 3 })]),
    ],
    [
      'a state after a delete is a create, even if identical',
      [entry(1, 100, 200, 'create', A), entry(2, 200, null, 'delete', A)],
      { tx: txid(3), at: 250, meta: A },
      O.some([entry(1, 100, 200, 'create', A), entry(2, 200, 250, 'delete', A), entry(3, 250, null, 'create', A)]),
    ],
    [
      'the same instant as the last start is allowed',
      [entry(1, 100, null, 'create', A)],
      { tx: txid(2), at: 100, meta: B },
      O.some([entry(1, 100, 100, 'create', A), entry(2, 100, null, 'update', B)]),
    ],
  ];
  it.each(golden)('%s', (_name, history, change, expected) => {
    expect(expectRight(appendState(history, change))).toEqual(expected);
  });

  it('does not touch its input', () => {
    const h = [entry(1, 100, null, 'create', A)];
    expectRight(appendState(h, { tx: txid(2), at: 150, meta: B }));
    expect(h).toEqual([entry(1, 100, null, 'create', A)]);
  });

  it('refuses a transaction id not above the last one', () => {
    expectLeft(appendState([entry(5, 100, null, 'create', A)], { tx: txid(5), at: 150, meta: B }), 'Conflict');
    expectLeft(appendState([entry(5, 100, null, 'create', A)], { tx: txid(4), at: 150, meta: A }), 'Conflict');
  });

  it('refuses an instant before the last start', () => {
    expectLeft(appendState([entry(5, 100, null, 'create', A)], { tx: txid(6), at: 99, meta: B }), 'Conflict');
  });

  it('refuses an instant that is not epoch milliseconds', () => {
    expectLeft(appendState([], { tx: txid(1), at: -1, meta: A }), 'DecodeError');
    expectLeft(appendState([], { tx: txid(1), at: 1.5, meta: A }), 'DecodeError');
  });

  it('lets control fields in the metadata never override the entry', () => {
    const sneaky = { ...A, tx: 99, end: 5 } as unknown as typeof A;
    const h = expectRight(appendState([], { tx: txid(1), at: 100, meta: sneaky }));
    expect(O.map((x: History) => [x[0]?.tx, x[0]?.end])(h)).toEqual(O.some([1, null]));
  });
});

describe('markDeleted', () => {
  it('appends a delete repeating the last metadata and digest', () => {
    const h = [entry(1, 100, null, 'create', A, { digest: D1, size: 9 })];
    expect(expectRight(markDeleted(h, { tx: txid(2), at: 300 }))).toEqual(
      O.some([entry(1, 100, 300, 'create', A, { digest: D1, size: 9 }), entry(2, 300, null, 'delete', A, { digest: D1, size: 9 })]),
    );
  });

  it('records nothing for an item already deleted or never seen', () => {
    expect(expectRight(markDeleted([entry(1, 100, 200, 'create', A), entry(2, 200, null, 'delete', A)], { tx: txid(3), at: 300 }))).toEqual(O.none);
    expect(expectRight(markDeleted([], { tx: txid(3), at: 300 }))).toEqual(O.none);
  });

  it('refuses an older transaction', () => {
    expectLeft(markDeleted([entry(4, 100, null, 'create', A)], { tx: txid(3), at: 300 }), 'Conflict');
  });
});

describe('point-in-time queries', () => {
  const at: ReadonlyArray<[number, number | null]> = [
    [99, null], // before creation
    [100, 1],
    [199, 1],
    [200, 5],
    [299, 5],
    [300, null], // deleted
    [399, null],
    [400, 9],
    [10_000, 9],
  ];
  it.each(at)('stateAt(%i) is tx %p', (t, tx) => {
    expect(O.toNullable(O.map((e: { tx: number }) => e.tx)(stateAt(full, t)))).toBe(tx);
  });

  const byTx: ReadonlyArray<[number, number | null]> = [
    [0, null],
    [1, 1],
    [4, 1],
    [5, 5],
    [6, 5],
    [7, null],
    [8, null],
    [9, 9],
    [100, 9],
  ];
  it.each(byTx)('stateAtTx(%i) is tx %p', (tx, expected) => {
    expect(O.toNullable(O.map((e: { tx: number }) => e.tx)(stateAtTx(full, tx)))).toBe(expected);
  });

  it('never returns a zero-length state', () => {
    const h = [entry(1, 100, 100, 'create', A), entry(2, 100, null, 'update', B)];
    expect(O.map((e: { tx: number }) => e.tx)(stateAt(h, 100))).toEqual(O.some(2));
  });

  it('tells deleted from not yet created', () => {
    expect([99, 150, 300, 399, 400].map((t) => isDeletedAt(full, t))).toEqual([false, false, true, true, false]);
    expect(deletedAt(full)).toEqual(O.none);
    expect(deletedAt(full.slice(0, 3).map((e, i) => (i === 2 ? { ...e, end: null } : e)))).toEqual(O.some(300));
  });
});

describe('validateHistory', () => {
  const bad: ReadonlyArray<[string, History]> = [
    ['empty', []],
    ['tx not increasing', [entry(2, 100, 200, 'create', A), entry(2, 200, null, 'update', B)]],
    ['start decreasing', [entry(1, 100, 50, 'create', A), entry(2, 50, null, 'update', B)]],
    ['end is not the next start', [entry(1, 100, 150, 'create', A), entry(2, 200, null, 'update', B)]],
    ['an open entry before the last', [entry(1, 100, null, 'create', A), entry(2, 200, null, 'update', B)]],
    ['a closed last entry', [entry(1, 100, 200, 'create', A)]],
    ['a closed last delete', [entry(1, 100, 200, 'create', A), entry(2, 200, 300, 'delete', A)]],
  ];
  it.each(bad)('rejects %s', (_name, h) => {
    expectLeft(validateHistory(h), 'DecodeError');
  });

  it('accepts a history ending with a delete', () => {
    expect(E.isRight(validateHistory([entry(1, 100, 200, 'create', A), entry(2, 200, null, 'delete', A)]))).toBe(true);
  });
});

describe('decodeHistory / encodeHistory', () => {
  it('round-trips', () => {
    expect(expectRight(decodeHistory(encodeHistory(full)))).toEqual(full);
  });

  it('reports bad JSON as a DecodeError instead of throwing', () => {
    expect(expectLeft(decodeHistory('[{"tx":1,', 'alice/1'), 'DecodeError').message).toMatch(/not valid JSON at alice\/1/);
  });

  it('names the field and the value that are wrong', () => {
    const broken = JSON.stringify([{ ...entry(1, 100, null, 'create', A), flags: 'seen' }]);
    const e = expectLeft(decodeHistory(broken), 'DecodeError');
    expect(e.message).toContain('flags');
    expect(e.message).toContain('"seen"');
  });

  it('names an unknown kind', () => {
    const e = expectLeft(decodeHistory(JSON.stringify([{ ...entry(1, 100, null, 'create', A), kind: 'fax' }])), 'DecodeError');
    expect(e.message).toMatch(/kind: expected one of .*got "fax"/);
  });

  it('rejects a non-array and a history that breaks the invariants', () => {
    expectLeft(decodeHistory('{}'), 'DecodeError');
    expectLeft(decodeHistory(JSON.stringify([entry(1, 100, 200, 'create', A)])), 'DecodeError');
  });
});
