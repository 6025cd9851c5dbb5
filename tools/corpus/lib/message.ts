import { Rng } from './rng';
import { EXTERNAL, langOf, paragraph, subject as makeSubject, textBytes, wrappedParagraph, type Lang, type Person, type TextKind } from './text';

/*
 * RFC 5322 / MIME messages with LF line ends (as Dovecot stores them): trace headers as
 * Dovecot LMTP writes them, RFC 2047 encoded words for non-ASCII subjects and names,
 * text/plain, multipart/alternative with HTML, multipart/mixed with base64 attachments
 * (text-like, random binary, already compressed). The builder aims at a target size and
 * returns the message as a list of buffers, so a multi-megabyte message is never copied
 * into one string.
 */

export type MessageKind = 'received' | 'sent' | 'draft';

export interface MessagePlan {
  readonly kind: MessageKind;
  readonly from: Person;
  readonly to: ReadonlyArray<Person>;
  readonly cc: ReadonlyArray<Person>;
  /**
   * Set when the LMTP transaction had this one recipient: Dovecot then adds `Delivered-To`
   * and `for <...>`; a message delivered to several local users in one transaction gets
   * neither, so every copy has the same bytes.
   */
  readonly singleRecipient?: string;
  /** Host name of the receiving server (`mail.alpha.test`). */
  readonly serverHost: string;
  readonly receivedSec: number;
  readonly targetSize: number;
}

export interface BuiltMessage {
  readonly chunks: ReadonlyArray<Buffer>;
  readonly size: number;
  /** Number of LF bytes: Dovecot's virtual size (W=) is size + lines (CRLF form). */
  readonly lines: number;
}

// ---------------------------------------------------------------------------- header encoding

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 date-time of an instant as seen at a UTC offset in minutes. */
export const formatDate = (epochSec: number, offsetMin: number): string => {
  const d = new Date((epochSec + offsetMin * 60) * 1000);
  const sign = offsetMin < 0 ? '-' : '+';
  const off = Math.abs(offsetMin);
  return (
    `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ` +
    `${p2(d.getUTCHours())}:${p2(d.getUTCMinutes())}:${p2(d.getUTCSeconds())} ${sign}${p2(Math.floor(off / 60))}${p2(off % 60)}`
  );
};

const isAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

/** RFC 2047 encoded words (each at most 75 characters), split on character boundaries. */
export const encodedWords = (text: string, mode: 'B' | 'Q'): string[] => {
  const words: string[] = [];
  const max = 75 - '=?UTF-8?Q??='.length;
  let cur: Buffer[] = [];
  let curLen = 0;
  const flush = (): void => {
    if (cur.length === 0) return;
    const bytes = Buffer.concat(cur);
    words.push(mode === 'B' ? `=?UTF-8?B?${bytes.toString('base64')}?=` : `=?UTF-8?Q?${qEncode(bytes)}?=`);
    cur = [];
    curLen = 0;
  };
  for (const ch of text) {
    const b = Buffer.from(ch);
    const len = mode === 'B' ? b.length : qEncode(b).length;
    const total = mode === 'B' ? Math.ceil((curLen + len) / 3) * 4 : curLen + len;
    if (total > max) flush();
    cur.push(b);
    curLen += len;
  }
  flush();
  return words;
};

const qEncode = (bytes: Buffer): string => {
  let s = '';
  for (const b of bytes) {
    if (b === 0x20) s += '_';
    else if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x21 || b === 0x2a || b === 0x2b || b === 0x2d || b === 0x2f) {
      s += String.fromCharCode(b);
    } else s += '=' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return s;
};

/** Unstructured text (a subject): as is when ASCII, else encoded words (Q for mostly-Latin text, B otherwise). */
const encodeText = (text: string): string => {
  if (isAscii(text)) return text;
  const nonAscii = [...text].filter((c) => c.charCodeAt(0) > 0x7e).length;
  return encodedWords(text, nonAscii / [...text].length < 0.3 ? 'Q' : 'B').join(' ');
};

const formatMailbox = (p: Person): string =>
  isAscii(p.name) ? `"${p.name.replace(/(["\\])/g, '\\$1')}" <${p.address}>` : `${encodedWords(p.name, 'B').join(' ')} <${p.address}>`;

/** `Name: value` folded at spaces to lines of at most 78 characters. */
const header = (name: string, value: string): string => {
  const tokens = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const t of tokens) {
    if (line.length + 1 + t.length > 78 && line.length > name.length + 1) {
      lines.push(line);
      line = ' ' + t;
    } else line += ' ' + t;
  }
  lines.push(line);
  return lines.join('\n') + '\n';
};

// ---------------------------------------------------------------------------- body encodings

/** Quoted-printable (RFC 2045) of LF-terminated UTF-8 text, soft breaks at 76 columns. */
export const quotedPrintable = (buf: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(buf.length * 3 + Math.ceil(buf.length / 25) * 2 + 16);
  const HEX = '0123456789ABCDEF';
  let o = 0;
  let col = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i] as number;
    if (b === 10) {
      out[o++] = 10;
      col = 0;
      continue;
    }
    const next = buf[i + 1];
    const encode = b === 61 || (b < 32 && b !== 9) || b > 126 || ((b === 32 || b === 9) && (next === undefined || next === 10));
    const len = encode ? 3 : 1;
    if (col + len > 75) {
      out[o++] = 61;
      out[o++] = 10;
      col = 0;
    }
    if (encode) {
      out[o++] = 61;
      out[o++] = HEX.charCodeAt(b >> 4);
      out[o++] = HEX.charCodeAt(b & 15);
    } else out[o++] = b;
    col += len;
  }
  return out.subarray(0, o);
};

const B64 = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');

/**
 * Base64 in 76-character lines, each ending in LF. Encoded by hand straight into the output:
 * going through toString('base64') and then inserting line breaks costs three times as much.
 */
export const base64Lines = (raw: Buffer): Buffer => {
  const n = raw.length;
  const fullLines = Math.floor(n / 57);
  const chars = Math.ceil(n / 3) * 4;
  const out = Buffer.allocUnsafe(chars + Math.ceil(chars / 76));
  let o = 0;
  let i = 0;
  for (let l = 0; l < fullLines; l++) {
    for (let g = 0; g < 19; g++) {
      const t = ((raw[i] as number) << 16) | ((raw[i + 1] as number) << 8) | (raw[i + 2] as number);
      i += 3;
      out[o] = B64[t >>> 18] as number;
      out[o + 1] = B64[(t >>> 12) & 63] as number;
      out[o + 2] = B64[(t >>> 6) & 63] as number;
      out[o + 3] = B64[t & 63] as number;
      o += 4;
    }
    out[o++] = 10;
  }
  if (i < n) {
    o += out.write(raw.toString('base64', i), o, 'latin1');
    out[o++] = 10;
  }
  return out.subarray(0, o);
};

const countLf = (buf: Buffer): number => {
  let n = 0;
  let i = buf.indexOf(10);
  while (i >= 0) {
    n++;
    i = buf.indexOf(10, i + 1);
  }
  return n;
};

// ---------------------------------------------------------------------------- parts

interface Leaf {
  readonly headers: string;
  /** The encoded body as a list of buffers (a multipart's parts are not copied together). */
  readonly body: ReadonlyArray<Buffer>;
  /** LF count of the body (known without scanning multi-megabyte base64). */
  readonly lines: number;
}

const leafOf = (headers: string, body: Buffer): Leaf => ({ headers, body: [body], lines: countLf(body) });
const base64Leaf = (headers: string, raw: Buffer): Leaf => {
  const body = base64Lines(raw);
  return { headers, body: [body], lines: Math.ceil((body.length - 1) / 77) };
};

const textLeaf = (rng: Rng, subtype: 'plain' | 'html', text: string): Leaf => {
  const raw = Buffer.from(text);
  const ascii = !/[^\t\n\x20-\x7e]/.test(text);
  const longLines = subtype === 'html';
  const flowed = subtype === 'plain' && rng.chance(0.3) ? '; format=flowed' : '';
  const type = `Content-Type: text/${subtype}; charset=UTF-8${flowed}\n`;
  let cte: string;
  let body: Buffer;
  if (ascii && !longLines) {
    cte = '7bit';
    body = raw;
  } else if (!longLines && rng.chance(0.4)) {
    cte = '8bit';
    body = raw;
  } else {
    cte = 'quoted-printable';
    body = quotedPrintable(raw);
  }
  return leafOf(`${type}Content-Transfer-Encoding: ${cte}\n`, body);
};

const GREETING: Record<Lang, string> = { en: 'Hi', de: 'Hallo', fr: 'Bonjour' };
const CLOSING: Record<Lang, string> = { en: 'Best regards,', de: 'Viele Grüße,', fr: 'Cordialement,' };

const firstName = (p: Person): string => p.name.split(' ')[0] ?? p.name;

/** Plain text of about `target` characters: greeting, paragraphs, closing, signature, maybe a quoted reply. */
const bodyText = (rng: Rng, lang: Lang, from: Person, to: Person | undefined, target: number, quoted: boolean, sentSec: number): string => {
  const head = `${GREETING[lang]} ${to === undefined ? 'all' : firstName(to)},\n\n`;
  const tail = `\n${CLOSING[lang]}\n${firstName(from)}\n\n-- \n${from.name}\n${from.address}\n`;
  const paras: string[] = [];
  let len = head.length + tail.length;
  const ownTarget = quoted ? Math.min(target, 200 + rng.int(0, 1500)) : target;
  do {
    const p = wrappedParagraph(rng, lang);
    paras.push(p);
    len += p.length + 2;
  } while (len < ownTarget);
  let text = head + paras.join('\n\n') + '\n' + tail;
  if (quoted && len < target) {
    const q: string[] = [];
    let qlen = 0;
    while (len + qlen < target) {
      const p = wrappedParagraph(rng, lang)
        .split('\n')
        .map((l) => '> ' + l)
        .join('\n');
      q.push(p);
      qlen += p.length + 3;
    }
    text += `\nOn ${formatDate(sentSec - rng.int(600, 10 * 86_400), 0)}, ${to?.name ?? 'someone'} wrote:\n` + q.join('\n>\n') + '\n';
  }
  return text;
};

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const htmlOf = (text: string): string =>
  '<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head><body>\n' +
  text
    .split('\n\n')
    .map((p) => `<p style="margin:0 0 1em 0">${escapeHtml(p).replace(/\n/g, '<br>\n')}</p>`)
    .join('\n') +
  '\n</body></html>\n';

const newsletterRow = (rng: Rng, lang: Lang): string =>
  `<tr><td style="padding:16px 24px;font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:20px;color:#333333">` +
  `<h2 style="margin:0 0 8px 0;font-size:18px;color:#1a4f8b">${escapeHtml(paragraph(rng, lang).slice(0, 60))}</h2>` +
  `${escapeHtml(paragraph(rng, lang))} <a href="https://shop.example/p/${rng.hex(12)}?utm_source=newsletter&amp;utm_medium=email" style="color:#1a4f8b">Read more</a>` +
  `</td></tr>\n`;

interface Row {
  readonly raw: Buffer;
  readonly qp: Buffer;
  readonly qpLines: number;
}
const ROWS = new Map<Lang, Row[]>();

// Rows are made and quoted-printable encoded once per language: encoding every newsletter
// byte by byte was the generator's hottest loop. Each row ends in a hard line break, so
// encoded rows can be concatenated.
const rowsOf = (lang: Lang): Row[] => {
  let rows = ROWS.get(lang);
  if (rows === undefined) {
    const r = Rng.derive('corpus-newsletter', lang);
    rows = Array.from({ length: 512 }, () => {
      const raw = Buffer.from(newsletterRow(r, lang));
      const qp = quotedPrintable(raw);
      return { raw, qp, qpLines: countLf(qp) };
    });
    ROWS.set(lang, rows);
  }
  return rows;
};

/** A newsletter-style HTML part of about `target` encoded bytes (tables, inline styles, links). */
const newsletterLeaf = (rng: Rng, lang: Lang, target: number): Leaf => {
  const b64 = rng.chance(0.3); // some senders base64 their HTML
  const head = Buffer.from(
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Newsletter</title></head>\n' +
      `<body style="margin:0;padding:0;background:#f4f4f4"><!-- ${rng.hex(16)} --><table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0">\n`,
  );
  const foot = Buffer.from(
    `<tr><td style="font-size:11px;color:#999999;padding:24px">You receive this mail because you subscribed. <a href="https://shop.example/unsubscribe/${rng.hex(24)}">Unsubscribe</a></td></tr>\n` +
      '</table></body></html>\n',
  );
  const pool = rowsOf(lang);
  const picked: Row[] = [];
  let len = head.length + foot.length;
  while (len < target) {
    const row = rng.pick(pool);
    picked.push(row);
    len += b64 ? Math.ceil(row.raw.length * 1.37) : row.qp.length;
  }
  const type = 'Content-Type: text/html; charset=UTF-8\n';
  if (b64) return base64Leaf(`${type}Content-Transfer-Encoding: base64\n`, Buffer.concat([head, ...picked.map((r) => r.raw), foot]));
  const h = quotedPrintable(head);
  const f = quotedPrintable(foot);
  return {
    headers: `${type}Content-Transfer-Encoding: quoted-printable\n`,
    body: [h, ...picked.map((r) => r.qp), f],
    lines: countLf(h) + countLf(f) + picked.reduce((n, r) => n + r.qpLines, 0),
  };
};

type AttachmentFamily = 'text' | 'binary' | 'compressed';

const ATTACHMENTS: Record<AttachmentFamily, ReadonlyArray<readonly [string, string, TextKind | Buffer]>> = {
  text: [
    ['notes.txt', 'text/plain; charset=UTF-8', 'prose'],
    ['Protokoll Sitzung.txt', 'text/plain; charset=UTF-8', 'prose'],
    ['report-2025-Q3.csv', 'text/csv; charset=UTF-8', 'csv'],
    ['Übersicht Umsätze.csv', 'text/csv; charset=UTF-8', 'csv'],
    ['server.log', 'text/plain; charset=UTF-8', 'log'],
  ],
  binary: [
    ['data.bin', 'application/octet-stream', Buffer.alloc(0)],
    ['Scan_0042.pdf', 'application/pdf', Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1')],
    ['firmware.img', 'application/octet-stream', Buffer.from('\x7fELF\x02\x01\x01\x00', 'latin1')],
  ],
  compressed: [
    ['IMG_2041.jpg', 'image/jpeg', Buffer.from('ffd8ffe000104a46494600010101004800480000', 'hex')],
    ['screenshot.png', 'image/png', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')],
    ['archive.zip', 'application/zip', Buffer.from('504b0304140000000800', 'hex')],
    ['backup.tar.gz', 'application/gzip', Buffer.from('1f8b0800000000000003', 'hex')],
    ['Angebot Müller.docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', Buffer.from('504b0304140006000800', 'hex')],
  ],
};

const dispositionName = (name: string): string =>
  isAscii(name) ? `filename="${name}"` : `filename*=UTF-8''${encodeURIComponent(name).replace(/'/g, '%27')}`;

const contentTypeName = (name: string): string => (isAscii(name) ? `"${name}"` : `"${encodedWords(name, 'Q').join(' ')}"`);

const attachmentLeaf = (rng: Rng, rawSize: number): Leaf => {
  const family = rng.weighted<AttachmentFamily>([['text', 0.3], ['binary', 0.25], ['compressed', 0.45]]);
  const [name, type, content] = rng.pick(ATTACHMENTS[family]);
  let raw: Buffer;
  if (typeof content === 'string') raw = textBytes(rng, content, rawSize);
  else {
    raw = rng.bytes(Math.max(rawSize, content.length));
    content.copy(raw, 0);
  }
  const headers =
    header('Content-Type', `${type}; name=${contentTypeName(name)}`) +
    header('Content-Disposition', `attachment; ${dispositionName(name)}`) +
    'Content-Transfer-Encoding: base64\n';
  return base64Leaf(headers, raw);
};

const multipart = (rng: Rng, subtype: 'alternative' | 'mixed', parts: ReadonlyArray<Leaf>): Leaf => {
  const boundary = `----=_Part_${rng.int(1000, 99999)}_${rng.hex(10)}.${rng.int(1_600_000_000, 1_800_000_000)}`;
  const chunks: Buffer[] = [];
  let lines = 0;
  const add = (b: Buffer, n: number): void => {
    chunks.push(b);
    lines += n;
  };
  const addText = (s: string): void => add(Buffer.from(s), s.split('\n').length - 1);
  if (subtype === 'mixed') addText('This is a multi-part message in MIME format.\n');
  for (const p of parts) {
    addText(`--${boundary}\n${p.headers}\n`);
    for (const b of p.body) add(b, 0);
    lines += p.lines;
  }
  addText(`--${boundary}--\n`);
  return { headers: `Content-Type: multipart/${subtype};\n boundary="${boundary}"\n`, body: chunks, lines };
};

// ---------------------------------------------------------------------------- message

const USER_AGENTS = [
  'User-Agent: Mozilla Thunderbird 128.5.0',
  'X-Mailer: Microsoft Outlook 16.0',
  'X-Mailer: Apple Mail (2.3774.200.91.1.1)',
  'User-Agent: Roundcube Webmail/1.6.9',
  'User-Agent: K-9 Mail for Android',
];
const OFFSETS = [0, 60, 120, -300, -480, 540, 330, 60, 60];
const LMTP_ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

const lmtpId = (rng: Rng): string => {
  let s = '';
  for (let i = 0; i < 22; i++) s += LMTP_ID_CHARS.charAt(rng.int(0, 64));
  return s;
};

const domainOf = (address: string): string => address.slice(address.indexOf('@') + 1);

export const buildMessage = (rng: Rng, plan: MessagePlan): BuiltMessage => {
  const subj = plan.kind === 'draft' && rng.chance(0.2) ? '' : makeSubject(rng);
  const lang = langOf(rng, subj);
  const senderDomain = domainOf(plan.from.address);
  const sentSec = plan.kind === 'received' ? plan.receivedSec - rng.int(2, 1200) : plan.receivedSec;
  const offset = rng.pick(OFFSETS);
  const local = plan.from.address.endsWith('.test');

  let h = '';
  if (plan.kind === 'received') {
    const dateStr = formatDate(plan.receivedSec, 0);
    h += `Return-Path: <${plan.from.address}>\n`;
    if (plan.singleRecipient !== undefined) h += `Delivered-To: ${plan.singleRecipient}\n`;
    const relay = local ? `submission.${senderDomain}` : `mx${rng.int(1, 4)}.${senderDomain}`;
    const ip = `198.51.100.${rng.int(2, 254)}`;
    h +=
      `Received: from ${plan.serverHost} ([127.0.0.1])\n\tby ${plan.serverHost} with LMTP\n\tid ${lmtpId(rng)}\n\t(envelope-from <${plan.from.address}>)` +
      (plan.singleRecipient !== undefined ? `\n\tfor <${plan.singleRecipient}>; ${dateStr}\n` : `; ${dateStr}\n`);
    h += `Received: from ${relay} (${relay} [${ip}])\n\tby ${plan.serverHost} (Postfix) with ESMTPS id ${rng.hex(10).toUpperCase()};\n\t${formatDate(plan.receivedSec - 1, 0)}\n`;
    if (!local && rng.chance(0.45)) {
      const key = rng.bytes(290).toString('base64');
      let sig = '';
      for (let i = 0; i < 6; i++) sig += key.slice(i * 56, i * 56 + 56) + ' ';
      h += header(
        'DKIM-Signature',
        `v=1; a=rsa-sha256; c=relaxed/relaxed; d=${senderDomain}; s=s${rng.int(2020, 2026)}; t=${sentSec}; ` +
          `h=from:to:subject:date:message-id:mime-version:content-type; bh=${key.slice(340, 383)}=; b=${sig.trim()}`,
      );
      h += header('Authentication-Results', `${plan.serverHost}; dkim=pass header.d=${senderDomain}; spf=pass smtp.mailfrom=${plan.from.address}`);
    }
  }
  h += header('From', formatMailbox(plan.from));
  if (plan.to.length > 0) h += header('To', plan.to.map(formatMailbox).join(', '));
  if (plan.cc.length > 0) h += header('Cc', plan.cc.map(formatMailbox).join(', '));
  h += header('Subject', encodeText(subj));
  h += `Date: ${formatDate(sentSec, offset)}\n`;
  h += `Message-ID: <${rng.hex(8)}-${rng.hex(4)}-${rng.hex(4)}-${rng.hex(12)}@${senderDomain}>\n`;
  const reply = subj.startsWith('Re: ');
  if (reply) {
    const parent = `<${rng.hex(16)}@${plan.to[0] !== undefined ? domainOf(plan.to[0].address) : senderDomain}>`;
    h += `In-Reply-To: ${parent}\n` + header('References', `<${rng.hex(16)}@${senderDomain}> ${parent}`);
  }
  if (plan.kind !== 'received' || rng.chance(0.6)) h += rng.pick(USER_AGENTS) + '\n';
  if (plan.kind === 'draft') h += 'X-Mozilla-Draft-Info: internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0\n';
  if (lang !== 'en') h += `Content-Language: ${lang}\n`;
  h += 'MIME-Version: 1.0\n';

  // Size plan: headers are fixed now; text, an HTML alternative, a newsletter body or attachments fill the rest.
  let alt = rng.chance(plan.kind === 'draft' ? 0.3 : 0.55);
  const altFactor = alt ? 2.9 : 1.05;
  const fixed = Buffer.byteLength(h) + (alt ? 420 : 90);
  const budget = Math.max(0, plan.targetSize - fixed);
  let textTarget = Math.min(budget / altFactor, Math.max(150, rng.lognormal(1400, 0.8)));
  const filler = budget - textTarget * altFactor;
  let newsletter = 0;
  let attachBudget = 0;
  if (filler < 3000) {
    textTarget += filler / altFactor;
  } else if (plan.kind !== 'draft' && filler < 200_000 && rng.chance(plan.kind === 'received' ? 0.55 : 0.2)) {
    // Rich HTML (newsletters, notifications, Outlook mails) rather than an attachment.
    alt = true;
    newsletter = filler;
  } else {
    attachBudget = filler;
  }
  textTarget = Math.max(60, textTarget);

  const text = bodyText(rng, lang, plan.from, plan.to[0], textTarget, reply, sentSec);
  let body: Leaf = textLeaf(rng, 'plain', text);
  if (alt) {
    body = multipart(rng, 'alternative', [body, newsletter > 0 ? newsletterLeaf(rng, lang, newsletter) : textLeaf(rng, 'html', htmlOf(text))]);
  }
  if (attachBudget > 0) {
    const n = attachBudget < 100_000 ? 1 : rng.weighted([[1, 5], [2, 3], [3, 1]] as const);
    const weights = Array.from({ length: n }, () => 0.2 + rng.float());
    const wsum = weights.reduce((a, b) => a + b, 0);
    const leaves: Leaf[] = [body];
    for (const w of weights) {
      const share = (attachBudget * w) / wsum - 260;
      leaves.push(attachmentLeaf(rng, Math.max(64, Math.floor(share / (4 / 3) / (77 / 76)))));
    }
    body = multipart(rng, 'mixed', leaves);
  }

  const head = Buffer.from(h + body.headers + '\n');
  const chunks = [head, ...body.body];
  const size = chunks.reduce((n, c) => n + c.length, 0);
  return { chunks, size, lines: countLf(head) + body.lines };
};

/** A correspondent from outside the server. */
export const externalPerson = (rng: Rng): Person => rng.pick(EXTERNAL);
