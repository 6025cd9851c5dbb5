import * as E from 'fp-ts/Either';
import type { SourceError } from '../source';

/*
 * IMAP modified UTF-7 (RFC 3501 §5.1.3), the encoding Dovecot uses for Maildir++ folder names
 * on disk: printable ASCII stands for itself except `&` (written `&-`); every other run of
 * characters is `&` + base64 of its UTF-16BE code units with `,` for `/`, unpadded, + `-`.
 * The decoder is as strict as Dovecot's: it refuses what Dovecot would never write, so that
 * decode(encode(x)) === x and encode(decode(y)) === y for every accepted y.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,';
const VALUE = new Map<string, number>([...ALPHABET].map((c, i) => [c, i]));

const isDirect = (code: number): boolean => code >= 0x20 && code <= 0x7e;

const encodeRun = (units: number[]): string => {
  let out = '';
  let bits = 0;
  let nbits = 0;
  for (const u of units) {
    bits = (bits << 16) | u;
    nbits += 16;
    while (nbits >= 6) {
      nbits -= 6;
      out += ALPHABET[(bits >> nbits) & 0x3f];
    }
    bits &= (1 << nbits) - 1;
  }
  if (nbits > 0) out += ALPHABET[(bits << (6 - nbits)) & 0x3f];
  return `&${out}-`;
};

/** Encode a mailbox name (any Unicode string) into IMAP modified UTF-7. */
export const encodeMailboxName = (name: string): string => {
  let out = '';
  let run: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (isDirect(code)) {
      if (run.length > 0) {
        out += encodeRun(run);
        run = [];
      }
      out += code === 0x26 ? '&-' : name[i];
    } else {
      run.push(code);
    }
  }
  if (run.length > 0) out += encodeRun(run);
  return out;
};

const invalid = (name: string, why: string): E.Either<SourceError, never> =>
  E.left({ _tag: 'SourceInvalid', op: 'decodeMailboxName', key: name, message: `invalid modified UTF-7 in "${name}": ${why}` });

/** Decode an IMAP modified UTF-7 mailbox name; refuses malformed or non-canonical input. */
export const decodeMailboxName = (encoded: string): E.Either<SourceError, string> => {
  let out = '';
  let i = 0;
  while (i < encoded.length) {
    const code = encoded.charCodeAt(i);
    if (!isDirect(code)) return invalid(encoded, `character 0x${code.toString(16)} must be encoded`);
    if (code !== 0x26) {
      out += encoded[i];
      i++;
      continue;
    }
    const end = encoded.indexOf('-', i + 1);
    if (end < 0) return invalid(encoded, 'unterminated "&" sequence');
    if (end === i + 1) {
      out += '&';
      i = end + 1;
      continue;
    }
    let bits = 0;
    let nbits = 0;
    const units: number[] = [];
    for (let j = i + 1; j < end; j++) {
      const v = VALUE.get(encoded[j] as string);
      if (v === undefined) return invalid(encoded, `"${encoded[j]}" is not a modified base64 character`);
      bits = ((bits << 6) | v) & 0xffffff;
      nbits += 6;
      if (nbits >= 16) {
        nbits -= 16;
        units.push((bits >> nbits) & 0xffff);
      }
    }
    if (nbits >= 6 || (bits & ((1 << nbits) - 1)) !== 0) return invalid(encoded, 'bad padding bits');
    for (let k = 0; k < units.length; k++) {
      const u = units[k] as number;
      if (isDirect(u)) return invalid(encoded, 'printable ASCII must not be encoded');
      if (u >= 0xd800 && u <= 0xdbff) {
        const low = units[k + 1];
        if (low === undefined || low < 0xdc00 || low > 0xdfff) return invalid(encoded, 'unpaired surrogate');
        out += String.fromCharCode(u, low);
        k++;
      } else if (u >= 0xdc00 && u <= 0xdfff) {
        return invalid(encoded, 'unpaired surrogate');
      } else {
        out += String.fromCharCode(u);
      }
    }
    i = end + 1;
  }
  return E.right(out);
};
