/*
 * IMAP modified UTF-7 (RFC 3501 5.1.3), as Dovecot writes mailbox names on disk: printable
 * ASCII stands for itself except `&`, which is written `&-`; anything else is UTF-16BE in
 * base64 with `,` instead of `/`, no padding, between `&` and `-`. Decoding is strict: it
 * accepts only the canonical encoding (the one `encodeMUtf7` produces) and throws otherwise,
 * because a corpus or a restored tree with a sloppy name is a bug we want to see.
 */

const isPrintable = (code: number): boolean => code >= 0x20 && code <= 0x7e;

const encodeRun = (units: number[]): string => {
  const buf = Buffer.alloc(units.length * 2);
  units.forEach((u, i) => buf.writeUInt16BE(u, i * 2));
  return '&' + buf.toString('base64').replace(/=+$/, '').replace(/\//g, ',') + '-';
};

export const encodeMUtf7 = (name: string): string => {
  let out = '';
  let run: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (isPrintable(code)) {
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

export const decodeMUtf7 = (encoded: string): string => {
  let out = '';
  let i = 0;
  while (i < encoded.length) {
    const code = encoded.charCodeAt(i);
    if (!isPrintable(code)) throw new Error(`modified UTF-7: raw non-ASCII character at ${i} in ${JSON.stringify(encoded)}`);
    if (code !== 0x26) {
      out += encoded[i];
      i++;
      continue;
    }
    const end = encoded.indexOf('-', i + 1);
    if (end < 0) throw new Error(`modified UTF-7: unterminated '&' at ${i} in ${JSON.stringify(encoded)}`);
    const b64 = encoded.slice(i + 1, end);
    if (b64 === '') {
      out += '&';
    } else {
      if (!/^[A-Za-z0-9+,]+$/.test(b64) || b64.length % 4 === 1) {
        throw new Error(`modified UTF-7: bad base64 run ${JSON.stringify(b64)} in ${JSON.stringify(encoded)}`);
      }
      const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
      if (bytes.length % 2 !== 0) throw new Error(`modified UTF-7: odd UTF-16 length in ${JSON.stringify(encoded)}`);
      const units: number[] = [];
      for (let k = 0; k < bytes.length; k += 2) units.push(bytes.readUInt16BE(k));
      if (encodeRun(units) !== '&' + b64 + '-' || units.some(isPrintable)) {
        throw new Error(`modified UTF-7: non-canonical run ${JSON.stringify(b64)} in ${JSON.stringify(encoded)}`);
      }
      out += String.fromCharCode(...units);
    }
    i = end + 1;
  }
  return out;
};

/** Dovecot Maildir++ directory of a folder path (`Projects/2026` -> `.Projects.2026`); INBOX is the Maildir itself (''). */
export const folderDirName = (folder: string): string => {
  if (folder === 'INBOX') return '';
  const parts = folder.split('/');
  for (const p of parts) {
    if (p === '' || p.includes('.')) throw new Error(`folder name not storable in Maildir++: ${JSON.stringify(folder)}`);
  }
  return '.' + parts.map(encodeMUtf7).join('.');
};

/** Folder path of a Maildir++ directory name (`.Entw&APw-rfe` -> `Entwürfe`). Throws on a malformed name. */
export const folderOfDirName = (dir: string): string => {
  if (dir === '') return 'INBOX';
  if (!dir.startsWith('.') || dir.length < 2) throw new Error(`not a Maildir++ folder directory: ${JSON.stringify(dir)}`);
  const parts = dir.slice(1).split('.');
  if (parts.some((p) => p === '')) throw new Error(`empty component in Maildir++ folder directory: ${JSON.stringify(dir)}`);
  return parts.map(decodeMUtf7).join('/');
};
