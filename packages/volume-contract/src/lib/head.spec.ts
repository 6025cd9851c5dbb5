import { headLength } from './head';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('headLength', () => {
  it('is limit (or the length) without an end', () => {
    expect(headLength(b('Subject: x\n\nbody'), 5)).toBe(5);
    expect(headLength(b('abc'), 1000)).toBe(3);
    expect(headLength(b('abc'), -1)).toBe(0);
  });

  it.each([
    ['LF', 'Subject: x\nFrom: y\n\nbody\n\nmore', 'Subject: x\nFrom: y\n\n'],
    ['CRLF', 'Subject: x\r\nFrom: y\r\n\r\nbody\r\n\r\n', 'Subject: x\r\nFrom: y\r\n\r\n'],
    ['a message that starts with its blank line', '\n\nbody', '\n\n'],
    ['CR LF after a bare LF', 'A: 1\n\r\nbody', 'A: 1\n\r\n'],
    ['no blank line at all', 'A: 1\nB: 2\n', 'A: 1\nB: 2\n'],
    ['a lone CR LF CR at the end', 'A: 1\r\n\r', 'A: 1\r\n\r'],
  ])('ends after the first blank line with blankLine (%s)', (_label, text, head) => {
    expect(headLength(b(text), 1000, 'blankLine')).toBe(head.length);
  });

  it('never passes the limit, even when the blank line is right after it', () => {
    expect(headLength(b('A: 1\n\nbody'), 5, 'blankLine')).toBe(5);
    expect(headLength(b('A: 1\n\nbody'), 6, 'blankLine')).toBe(6);
    expect(headLength(b('A: 1\r\n\r\nbody'), 7, 'blankLine')).toBe(7);
  });

  it('reads only its view of a larger buffer', () => {
    const whole = b('xxxxA: 1\n\nbody');
    expect(headLength(whole.subarray(4), 1000, 'blankLine')).toBe('A: 1\n\n'.length);
  });
});
