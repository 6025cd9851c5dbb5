import * as E from 'fp-ts/Either';
import { AccountId, type AccountMeta } from '@zxbackup/item-store';
import type { SourceError } from '../source';

/*
 * Dovecot passwd-file: `user@domain:password:uid:gid:gecos:home:shell:extra fields`, one user
 * a line, `#` comments. The positional fields and the extra fields (`key=value` or a bare
 * `key`) are kept as account settings `passwd.<field>` / `passwd.extra.<key>`, so that a
 * restore writes the same line back; `userdb_quota_rule=*:storage=...` also gives quotaBytes.
 */

const POSITIONAL = ['uid', 'gid', 'gecos', 'home', 'shell'] as const;
const EXTRA_PREFIX = 'passwd.extra.';

export interface PasswdEntry {
  readonly account: AccountId;
  /** 1-based line number, for messages. */
  readonly line: number;
  readonly meta: AccountMeta;
}

const SIZE_UNITS: Record<string, number> = { B: 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Bytes of a quota rule's storage limit; undefined for relative (`+`, `%`) or other rules. */
export const quotaBytesOfRule = (rule: string): number | undefined => {
  const limits = rule.slice(rule.indexOf(':') + 1);
  for (const part of limits.split(':')) {
    const m = /^(storage|bytes)=(\d+)([bBkKmMgGtT]?)$/.exec(part);
    if (m === null) continue;
    const unit = m[3] === '' ? (m[1] === 'storage' ? 1024 : 1) : (SIZE_UNITS[(m[3] as string).toUpperCase()] as number);
    return Number(m[2]) * unit;
  }
  return undefined;
};

const bad = (file: string, line: number, why: string): E.Either<SourceError, never> =>
  E.left({ _tag: 'SourceInvalid', op: 'readPasswdFile', key: `${file}:${line}`, message: `${file} line ${line}: ${why}` });

/** Decode a passwd-file; the first bad line fails the whole file, naming the line. */
export const parsePasswdFile = (file: string, text: string): E.Either<SourceError, ReadonlyArray<PasswdEntry>> => {
  const out: PasswdEntry[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, '');
    const n = i + 1;
    if (raw.trim() === '' || raw.startsWith('#')) continue;
    const fields = raw.split(':');
    const user = fields[0] as string;
    const address = user.toLowerCase();
    if (!AccountId.is(address) || !address.includes('@')) return bad(file, n, `user "${user}" is not a mail address (user@domain)`);
    const previous = seen.get(address);
    if (previous !== undefined) return bad(file, n, `user "${user}" is already defined on line ${previous}`);
    seen.set(address, n);
    const password = fields[1] ?? '';
    const settings: Record<string, string> = {};
    POSITIONAL.forEach((name, k) => {
      const v = fields[k + 2];
      if (v !== undefined && v !== '') settings[`passwd.${name}`] = v;
    });
    for (const field of ['uid', 'gid'] as const) {
      const v = settings[`passwd.${field}`];
      if (v !== undefined && !/^[0-9]+$|^[a-z_][a-z0-9_-]*$/i.test(v)) return bad(file, n, `${field} "${v}" is neither a number nor a name`);
    }
    // Extra fields are space separated and may themselves contain ':' (quota rules do).
    const extra = fields.slice(7).join(':').trim();
    let quotaBytes: number | undefined;
    let locked = false;
    if (extra !== '') {
      for (const item of extra.split(/\s+/)) {
        const eq = item.indexOf('=');
        const key = eq < 0 ? item : item.slice(0, eq);
        const value = eq < 0 ? '' : item.slice(eq + 1);
        if (!/^[A-Za-z0-9_./-]+$/.test(key)) return bad(file, n, `extra field "${item}" has no valid name`);
        settings[EXTRA_PREFIX + key] = value;
        if (key === 'userdb_quota_rule' || key === 'quota_rule') {
          const q = quotaBytesOfRule(value);
          if (q === undefined && /(storage|bytes)=/.test(value) && !/[+%]/.test(value)) return bad(file, n, `cannot read quota rule "${value}"`);
          if (q !== undefined) quotaBytes = q;
        }
        if (key === 'nologin') locked = true;
      }
    }
    const meta: AccountMeta = {
      kind: 'account',
      address,
      status: locked ? 'locked' : 'active',
      settings,
      sourceKey: user,
      ...(password !== '' ? { passwordHash: password } : {}),
      ...(quotaBytes !== undefined ? { quotaBytes } : {}),
      ...(settings['passwd.gecos'] !== undefined ? { displayName: settings['passwd.gecos'] } : {}),
    };
    out.push({ account: address, line: n, meta });
  }
  return E.right(out);
};

/** The passwd-file line of an account, from its metadata (the inverse of `parsePasswdFile`). */
export const formatPasswdLine = (account: AccountId, meta: AccountMeta): string => {
  const settings = meta.settings;
  const str = (k: string): string => {
    const v = settings[k];
    return typeof v === 'string' ? v : '';
  };
  const extras: string[] = [];
  for (const [k, v] of Object.entries(settings)) {
    if (!k.startsWith(EXTRA_PREFIX) || typeof v !== 'string') continue;
    const key = k.slice(EXTRA_PREFIX.length);
    extras.push(v === '' ? key : `${key}=${v}`);
  }
  if (meta.quotaBytes !== undefined && !extras.some((x) => x.startsWith('userdb_quota_rule=') || x.startsWith('quota_rule='))) {
    extras.push(`userdb_quota_rule=*:bytes=${meta.quotaBytes}`);
  }
  const user = meta.sourceKey !== undefined && meta.sourceKey.toLowerCase() === account ? meta.sourceKey : account;
  return [user, meta.passwordHash ?? '', ...POSITIONAL.map((p) => str(`passwd.${p}`)), extras.join(' ')].join(':');
};

/**
 * The file with the account's line added, or its password hash updated; undefined when the
 * file already says so.
 */
export const upsertPasswdLine = (text: string, account: AccountId, meta: AccountMeta): string | undefined => {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const idx = lines.findIndex((l) => !l.startsWith('#') && (l.split(':')[0] ?? '').toLowerCase() === account);
  if (idx < 0) return [...lines, formatPasswdLine(account, meta)].join('\n') + '\n';
  if (meta.passwordHash === undefined) return undefined;
  const fields = (lines[idx] as string).split(':');
  if (fields[1] === meta.passwordHash) return undefined;
  while (fields.length < 2) fields.push('');
  fields[1] = meta.passwordHash;
  lines[idx] = fields.join(':');
  return lines.join('\n') + '\n';
};
