/**
 * Where the head `putFile` returns may stop before `headBytes`: `blankLine` ends it after the
 * first empty line (LF LF, or LF CR LF as in CR LF CR LF), the end of a mail's header block. A
 * scan then copies a mail's header block, not the first 64 KiB of every mail: most of a
 * mailbox's bytes, copied into fresh memory, for nothing.
 */
export type HeadEnd = 'blankLine';

/** How many of the first bytes of `bytes` make its head: at most `limit`; with `blankLine`, up to and with the first empty line. */
export const headLength = (bytes: Uint8Array, limit: number, end?: HeadEnd): number => {
  const n = Math.min(bytes.length, Math.max(0, limit));
  if (end !== 'blankLine') return n;
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, n);
  for (let lf = view.indexOf(0x0a); lf >= 0 && lf + 1 < n; lf = view.indexOf(0x0a, lf + 1)) {
    if (view[lf + 1] === 0x0a) return lf + 2;
    if (view[lf + 1] === 0x0d && lf + 2 < n && view[lf + 2] === 0x0a) return lf + 3;
  }
  return n;
};
