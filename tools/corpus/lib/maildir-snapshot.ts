import { listMaildirTree, type MaildirListing } from './maildir';

/*
 * A canonical description of a Maildir++ tree for end-to-end tests: account -> folder (decoded
 * path) -> messages as { sha256 of the bytes, IMAP flags with keyword names, received date }.
 * File base names, letter assignment in dovecot-keywords, cur/ vs new/ and tmp/ do not count
 * (a restore may legitimately choose other names and letters); bytes, flags, keyword names,
 * folder names (empty folders included) and dates do. Compare with `diffSnapshots` or a deep
 * equality: both orders are canonical.
 */

export interface SnapshotMessage {
  readonly sha256: string;
  /** Sorted: `$Forwarded`, `\\Answered`, `\\Deleted`, `\\Draft`, `\\Flagged`, `\\Seen` and keyword names. */
  readonly flags: ReadonlyArray<string>;
  /** Received date (file mtime) in epoch milliseconds. */
  readonly mtimeMs: number;
}

/** account (`user@domain`) -> folder path -> messages, every level sorted. */
export type MaildirSnapshot = Record<string, Record<string, SnapshotMessage[]>>;

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const keyOf = (m: SnapshotMessage): string => `${m.sha256} ${String(m.mtimeMs).padStart(15, '0')} ${m.flags.join(' ')}`;

/** Canonical snapshot of a listing made with `hash: true`. */
export const snapshotFromListing = (listing: MaildirListing): MaildirSnapshot => {
  const snap: MaildirSnapshot = {};
  for (const account of Object.keys(listing).sort(cmp)) {
    const acc = listing[account];
    if (acc === undefined) continue;
    const folders: Record<string, SnapshotMessage[]> = {};
    for (const folder of Object.keys(acc.folders).sort(cmp)) {
      const messages = acc.folders[folder]?.messages ?? [];
      folders[folder] = messages
        .map((m): SnapshotMessage => {
          if (m.sha256 === undefined) throw new Error('snapshotFromListing needs a listing made with hash: true');
          return { sha256: m.sha256, flags: [...m.flags].sort(cmp), mtimeMs: m.mtimeMs };
        })
        .sort((a, b) => cmp(keyOf(a), keyOf(b)));
    }
    snap[account] = folders;
  }
  return snap;
};

/** Reads every message of the tree (streamed, one file at a time) and returns its canonical snapshot. */
export const snapshotMaildirTree = (root: string): MaildirSnapshot => snapshotFromListing(listMaildirTree(root, { hash: true }));

const show = (m: SnapshotMessage): string => `${m.sha256.slice(0, 12)} @${new Date(m.mtimeMs).toISOString()} [${m.flags.join(' ')}]`;

/** Human-readable differences (empty when equal), at most `limit` lines. */
export const diffSnapshots = (expected: MaildirSnapshot, actual: MaildirSnapshot, limit = 50): string[] => {
  const out: string[] = [];
  const accounts = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort(cmp);
  for (const account of accounts) {
    const e = expected[account];
    const a = actual[account];
    if (e === undefined || a === undefined) {
      out.push(`${account}: account ${e === undefined ? 'unexpected' : 'missing'}`);
      continue;
    }
    const folders = [...new Set([...Object.keys(e), ...Object.keys(a)])].sort(cmp);
    for (const folder of folders) {
      const em = e[folder];
      const am = a[folder];
      if (em === undefined || am === undefined) {
        out.push(`${account} ${folder}: folder ${em === undefined ? 'unexpected' : 'missing'} (${(em ?? am ?? []).length} messages)`);
        continue;
      }
      const count = new Map<string, number>();
      for (const m of em) count.set(keyOf(m), (count.get(keyOf(m)) ?? 0) + 1);
      for (const m of am) count.set(keyOf(m), (count.get(keyOf(m)) ?? 0) - 1);
      const bySha = (ms: ReadonlyArray<SnapshotMessage>, sha: string): SnapshotMessage[] => ms.filter((m) => m.sha256 === sha);
      const shas = new Set<string>();
      for (const [k, n] of count) if (n !== 0) shas.add(k.slice(0, 64));
      for (const sha of [...shas].sort(cmp)) {
        const want = bySha(em, sha).filter((m) => (count.get(keyOf(m)) ?? 0) > 0);
        const got = bySha(am, sha).filter((m) => (count.get(keyOf(m)) ?? 0) < 0);
        if (want.length > 0 && got.length > 0) out.push(`${account} ${folder}: expected ${want.map(show).join(', ')} got ${got.map(show).join(', ')}`);
        else if (want.length > 0) out.push(`${account} ${folder}: missing ${want.map(show).join(', ')}`);
        else out.push(`${account} ${folder}: unexpected ${got.map(show).join(', ')}`);
      }
    }
  }
  return out.length > limit ? [...out.slice(0, limit), `... ${out.length - limit} more`] : out;
};
