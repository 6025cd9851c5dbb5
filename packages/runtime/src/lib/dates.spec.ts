import * as E from 'fp-ts/Either';
import { parseInstant, resolveInstant } from './dates';

const right = <A>(e: E.Either<string, A>): A => {
  if (E.isLeft(e)) throw new Error(`expected Right, got Left: ${e.left}`);
  return e.right;
};

describe('parseInstant', () => {
  it('reads ISO-8601, epoch ms and the zxsuite dd/MM/yyyy HH:mm:ss form', () => {
    expect(right(parseInstant('2026-11-20T10:00:00Z'))).toBe(Date.UTC(2026, 10, 20, 10, 0, 0));
    expect(right(parseInstant('1763632800000'))).toBe(1763632800000);
    expect(right(parseInstant('20/11/2026 10:30:15'))).toBe(new Date(2026, 10, 20, 10, 30, 15).getTime());
    expect(right(parseInstant('20/11/2026'))).toBe(new Date(2026, 10, 20).getTime());
  });
  it('accepts first/last only where allowed', () => {
    expect(right(parseInstant('last', ['last']))).toBe('last');
    expect(right(parseInstant('FIRST', ['first', 'last']))).toBe('first');
    expect(E.isLeft(parseInstant('last'))).toBe(true);
  });
  it('rejects impossible dates and garbage with a message naming the input', () => {
    const bad = parseInstant('31/02/2026 10:00:00');
    expect(E.isLeft(bad) && bad.left).toContain('31/02/2026');
    expect(E.isLeft(parseInstant('yesterday'))).toBe(true);
    expect(E.isLeft(parseInstant('2026-13-45'))).toBe(true);
  });
  it('resolves keywords against the clock', () => {
    expect(resolveInstant('last', 42)).toBe(42);
    expect(resolveInstant('first', 42)).toBe(0);
    expect(resolveInstant(7, 42)).toBe(7);
  });
});
