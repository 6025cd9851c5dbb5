import { Transform, type TransformCallback } from 'node:stream';
import type libmimeModule from 'libmime';

// libmime (with iconv-lite and encoding-japanese) loads on first use: only scans decode headers,
// and loading it costs ~50 ms of CPU at the start of every command that imports this package.
let libmime: typeof libmimeModule | undefined;
const decodeWords = (text: string): string => (libmime ??= require('libmime') as typeof libmimeModule).decodeWords(text);

/** What the engine keeps of a message's header block (for search and the restore UI). */
export interface MessageHeaders {
  readonly subject?: string;
  readonly from?: string;
  readonly to?: ReadonlyArray<string>;
  readonly messageId?: string;
  readonly sentAt?: number;
}

/** Header blocks longer than this are cut; what follows is body and never parsed. */
export const HEAD_LIMIT = 64 * 1024;

/**
 * A pass-through that keeps the first bytes of a message (up to the blank line ending the
 * header block, at most 64 KiB) while the message streams to the volume.
 */
export interface HeaderTap extends Transform {
  head(): Buffer;
}

const headerEnd = (buf: Buffer): number => {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
};

/** The header block at the start of a message's first bytes (all of them when no blank line ends it). */
export const headerBlock = (first: Buffer): Buffer => {
  const end = headerEnd(first);
  return end < 0 ? first : first.subarray(0, end);
};

export const makeHeaderTap = (): HeaderTap => {
  const chunks: Buffer[] = [];
  let kept = 0;
  let done = false;
  const tap = new Transform({
    transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (!done) {
        const take = buf.subarray(0, HEAD_LIMIT - kept);
        chunks.push(take);
        kept += take.length;
        // Look for the end of the header block across the chunk boundary too.
        const tail = Buffer.concat(chunks.length > 1 ? chunks.slice(-2) : chunks);
        if (kept >= HEAD_LIMIT || headerEnd(tail) >= 0) done = true;
      }
      cb(null, buf);
    },
  }) as HeaderTap;
  tap.head = () => headerBlock(Buffer.concat(chunks));
  return tap;
};

/** Unfolded header lines of a header block, name lower-cased; the first occurrence wins. */
const headerLines = (head: Buffer): Map<string, string> => {
  // latin1 keeps every byte; 8-bit UTF-8 headers are re-read as UTF-8 below.
  const text = head.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!out.has(name)) out.set(name, line.slice(colon + 1).trim());
  }
  return out;
};

const decodeValue = (raw: string): string => {
  const bytes = Buffer.from(raw, 'latin1');
  // Raw 8-bit headers (RFC 6532) are UTF-8 in practice; keep latin1 if they are not valid UTF-8.
  const utf8 = bytes.toString('utf8');
  const text = utf8.includes('\uFFFD') ? raw : utf8;
  try {
    return decodeWords(text).trim();
  } catch {
    // An encoded word with an unknown charset: keep the undecoded text rather than nothing.
    return text.trim();
  }
};

/** Splits an address list on commas outside quotes, angle brackets and comments. */
export const splitAddresses = (value: string): string[] => {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = 0;
  let comment = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '\\' && quoted) {
      cur += c + (value[i + 1] ?? '');
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (!quoted && c === '<') angle++;
    else if (!quoted && c === '>') angle = Math.max(0, angle - 1);
    else if (!quoted && c === '(') comment++;
    else if (!quoted && c === ')') comment = Math.max(0, comment - 1);
    if (c === ',' && !quoted && angle === 0 && comment === 0) {
      if (cur.trim() !== '') out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
};

/** Parses the header block of a message. Missing or unreadable headers are simply absent. */
export const parseMessageHeaders = (head: Buffer): MessageHeaders => {
  const lines = headerLines(head);
  const get = (name: string): string | undefined => {
    const v = lines.get(name);
    return v === undefined ? undefined : decodeValue(v);
  };
  const subject = get('subject');
  const from = get('from');
  const toRaw = lines.get('to');
  const messageId = lines.get('message-id')?.trim();
  const date = lines.get('date');
  const sentAt = date === undefined ? NaN : Date.parse(date.replace(/\s*\([^)]*\)\s*$/, ''));
  return {
    ...(subject === undefined ? {} : { subject }),
    ...(from === undefined || from === '' ? {} : { from }),
    ...(toRaw === undefined ? {} : { to: splitAddresses(toRaw).map(decodeValue) }),
    ...(messageId === undefined || messageId === '' ? {} : { messageId }),
    ...(Number.isFinite(sentAt) ? { sentAt } : {}),
  };
};
