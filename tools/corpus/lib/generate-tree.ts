import { existsSync, mkdirSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createFolder, maildirOf, place, planAccounts, receivedDate, uniqueBase, fileName, writeFileWithMtime, type AccountDef } from './corpus';
import { buildMessage, externalPerson, type MessageKind } from './message';
import { folderDirName } from './mutf7';
import { Rng } from './rng';
import { sha512Crypt, SALT_CHARS } from './sha512-crypt';
import type { Person } from './text';

/*
 * Writes a whole corpus. One message is built at a time (at most --max-size bytes in memory),
 * written to each of its recipients' folders and dropped; only per-account counters and the
 * list of sizes stay in memory.
 */

export interface GenerateOptions {
  readonly out: string;
  readonly messages: number;
  readonly domains: number;
  readonly users: number;
  readonly seed: string;
  readonly passwd?: string;
  /** Home directory prefix in the passwd-file (default: the absolute --out). */
  readonly homeBase?: string;
  readonly maxSize: number;
  readonly refDate: string;
  /** Fraction of message files that are copies of a message delivered to several local users at once. */
  readonly sharedFraction: number;
  readonly spanDays: number;
}

export interface FolderStats {
  messages: number;
  bytes: number;
  inNew: number;
}

export interface AccountStats {
  account: string;
  messages: number;
  bytes: number;
  sharedCopies: number;
  folders: Record<string, FolderStats>;
}

export interface GenerateSummary {
  out: string;
  seed: string;
  refDate: string;
  messages: number;
  bytes: number;
  deliveries: number;
  sharedCopies: number;
  sizes: { min: number; median: number; mean: number; p90: number; p99: number; max: number };
  accounts: AccountStats[];
}

export const password = (email: string): string => `${email.slice(0, email.indexOf('@'))}-pw`;

const serverHostOf = (accounts: ReadonlyArray<AccountDef>): string => `mail.${accounts[0]?.domain ?? 'example.test'}`;

export const generateTree = (o: GenerateOptions): GenerateSummary => {
  const refSec = Math.floor(Date.parse(o.refDate) / 1000);
  const accounts = planAccounts(o.seed, o.domains, o.users);
  const host = serverHostOf(accounts);
  if (existsSync(o.out) && readdirSync(o.out).length > 0) throw new Error(`output directory is not empty: ${o.out}`);
  mkdirSync(o.out, { recursive: true });

  const stats = new Map<string, AccountStats>();
  const usedNames = new Map<string, Set<string>>();
  for (const a of accounts) {
    const maildir = maildirOf(o.out, a);
    for (const f of a.folders) createFolder(maildir, f, refSec);
    stats.set(a.email, {
      account: a.email,
      messages: 0,
      bytes: 0,
      sharedCopies: 0,
      folders: Object.fromEntries(a.folders.map((f) => [f.name, { messages: 0, bytes: 0, inNew: 0 }])),
    });
    usedNames.set(a.email, new Set());
  }

  const plan = Rng.derive(o.seed, 'plan');
  const weights = accounts.map((a) => [a, a.weight] as const);
  // A share p of received deliveries (80% of all) going to ~2.7 recipients on average makes
  // 0.8p*2.7/(1+0.8p*1.7) of the files shared copies; solve for p.
  const pShared = accounts.length > 1 ? o.sharedFraction / (2.7 - 1.7 * o.sharedFraction) / 0.8 : 0;
  const sizes: number[] = [];
  let files = 0;
  let deliveries = 0;
  let sharedCopies = 0;
  while (files < o.messages) {
    const owner = plan.weighted(weights);
    const kind = plan.weighted<MessageKind>([['received', 0.8], ['sent', 0.16], ['draft', 0.04]]);
    const recipients: AccountDef[] = [owner];
    if (kind === 'received' && plan.chance(pShared)) {
      const k = Math.min(plan.weighted([[2, 5], [3, 3], [4, 2]] as const), accounts.length, o.messages - files);
      const others = plan.shuffle(accounts.filter((a) => a !== owner));
      // Colleagues in the same domain first, as for a team list.
      others.sort((x, y) => Number(x.domain !== owner.domain) - Number(y.domain !== owner.domain));
      recipients.push(...others.slice(0, k - 1));
    }
    const rng = Rng.derive(o.seed, 'message', deliveries);
    const receivedSec = receivedDate(rng, refSec, o.spanDays);
    const built = buildMessage(rng, {
      kind,
      ...people(rng, kind, owner, recipients, accounts),
      ...(recipients.length === 1 && kind === 'received' ? { singleRecipient: owner.email } : {}),
      serverHost: host,
      receivedSec,
      targetSize: messageSize(rng, o.maxSize),
    });
    for (const r of recipients) {
      const where = place(rng, r, kind, refSec - receivedSec);
      const names = usedNames.get(r.email) as Set<string>;
      let base = uniqueBase(rng, receivedSec, host, built.size, built.size + built.lines);
      while (names.has(base)) base = uniqueBase(rng, receivedSec, host, built.size, built.size + built.lines);
      names.add(base);
      const dir = join(maildirOf(o.out, r), folderDirName(where.folder.name), where.inNew ? 'new' : 'cur');
      writeFileWithMtime(join(dir, fileName(base, where.inNew, where.flags, [...where.folder.keywords])), built.chunks, receivedSec);
      const s = stats.get(r.email) as AccountStats;
      const fs = s.folders[where.folder.name] as { messages: number; bytes: number; inNew: number };
      s.messages++;
      s.bytes += built.size;
      fs.messages++;
      fs.bytes += built.size;
      if (where.inNew) fs.inNew++;
      if (recipients.length > 1) {
        s.sharedCopies++;
        sharedCopies++;
      }
      sizes.push(built.size);
      files++;
    }
    deliveries++;
  }

  if (o.passwd !== undefined) writePasswd(o.passwd, accounts, o.seed, o.homeBase ?? resolve(o.out));
  stampDirectories(o.out, refSec);

  sizes.sort((a, b) => a - b);
  const total = sizes.reduce((a, b) => a + b, 0);
  const q = (p: number): number => sizes[Math.min(sizes.length - 1, Math.floor(p * sizes.length))] ?? 0;
  return {
    out: o.out,
    seed: o.seed,
    refDate: new Date(refSec * 1000).toISOString(),
    messages: files,
    bytes: total,
    deliveries,
    sharedCopies,
    sizes: { min: sizes[0] ?? 0, median: q(0.5), mean: Math.round(total / Math.max(1, sizes.length)), p90: q(0.9), p99: q(0.99), max: sizes[sizes.length - 1] ?? 0 },
    accounts: [...stats.values()],
  };
};

/** Lognormal around a 20 KB median with a long tail (mean ~50 KB), at least 1 KB, at most maxSize. */
export const messageSize = (rng: Rng, maxSize: number): number => Math.round(Math.min(maxSize - 2048, Math.max(1024, rng.lognormal(20_000, 1.354))));

const people = (
  rng: Rng,
  kind: MessageKind,
  owner: AccountDef,
  recipients: ReadonlyArray<AccountDef>,
  accounts: ReadonlyArray<AccountDef>,
): { from: Person; to: Person[]; cc: Person[] } => {
  const others = accounts.filter((a) => !recipients.includes(a));
  const someone = (): Person => (others.length > 0 && rng.chance(0.25) ? rng.pick(others).person : externalPerson(rng));
  if (kind === 'received') {
    const to = recipients.map((r) => r.person);
    const cc = rng.chance(0.15) ? [someone()] : [];
    // A recipient may be on Cc rather than To.
    if (to.length > 2 && rng.chance(0.5)) cc.push(to.pop() as Person);
    return { from: someone(), to, cc };
  }
  const n = kind === 'draft' && rng.chance(0.3) ? 0 : rng.weighted([[1, 6], [2, 2], [3, 1]] as const);
  const to: Person[] = [];
  for (let i = 0; i < n; i++) {
    const p = someone();
    if (!to.includes(p) && p.address !== owner.email) to.push(p);
  }
  return { from: owner.person, to, cc: rng.chance(0.1) ? [someone()] : [] };
};

const writePasswd = (path: string, accounts: ReadonlyArray<AccountDef>, seed: string, homeBase: string): void => {
  const lines = accounts.map((a) => {
    const rng = Rng.derive(seed, 'passwd', a.email);
    let salt = '';
    for (let i = 0; i < 16; i++) salt += SALT_CHARS.charAt(rng.int(0, 64));
    const hash = sha512Crypt(password(a.email), salt);
    return `${a.email}:{SHA512-CRYPT}${hash}:5000:5000::${homeBase}/${a.domain}/${a.user}::userdb_quota_rule=*:storage=${a.quota}\n`;
  });
  writeFileSync(path, lines.join(''));
};

/** Directories get the reference date as mtime too, so two runs give identical trees (file contents, names and times). */
const stampDirectories = (root: string, refSec: number): void => {
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
    utimesSync(dir, refSec, refSec);
  };
  if (statSync(root).isDirectory()) walk(root);
};
