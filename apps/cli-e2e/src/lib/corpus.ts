import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// tools/corpus is not an Nx project but scripts (tools/corpus/README.md names this suite as a
// consumer of lib/*): the boundary rule cannot tell, and only this file imports them.
/* eslint-disable @nx/enforce-module-boundaries */
import { DEFAULT_REF_DATE } from '../../../../tools/corpus/lib/corpus';
import { generateTree, type GenerateSummary } from '../../../../tools/corpus/lib/generate-tree';
import { listMaildirTree, type MaildirListing, type MaildirMessage } from '../../../../tools/corpus/lib/maildir';
import { diffSnapshots, snapshotMaildirTree, type MaildirSnapshot, type SnapshotMessage } from '../../../../tools/corpus/lib/maildir-snapshot';
import { mutateTree, type MutateOptions, type MutationSummary } from '../../../../tools/corpus/lib/mutation';
/* eslint-enable @nx/enforce-module-boundaries */

/*
 * The corpus side of the end-to-end tests: generated Maildir trees (tools/corpus), the changes
 * applied to them, and the canonical snapshots restored trees are compared with.
 */

export { diffSnapshots, listMaildirTree, snapshotMaildirTree };
export type { MaildirListing, MaildirMessage, MaildirSnapshot, MutationSummary, SnapshotMessage };

export const makeWorkDir = (name: string): string => mkdtempSync(join(tmpdir(), `zxb-e2e-${name}-`));

export const removeWorkDir = (dir: string): void => {
  if (process.env['ZXB_E2E_KEEP'] === '1') {
    process.stderr.write(`kept ${dir}\n`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
};

export const generateCorpus = (out: string, o: { readonly messages: number; readonly domains: number; readonly users: number; readonly seed: string; readonly maxSize?: number }): GenerateSummary =>
  generateTree({
    out,
    messages: o.messages,
    domains: o.domains,
    users: o.users,
    seed: o.seed,
    maxSize: o.maxSize ?? 2_000_000,
    refDate: DEFAULT_REF_DATE,
    spanDays: 730,
    sharedFraction: 0.07,
  });

export const mutateCorpus = (o: MutateOptions): MutationSummary => mutateTree(o);

/** `alice@alpha.test` → `alice.t0@alpha.test`: the restored account in a drill target. */
export const drillAccount = (account: string, suffix: string): string => {
  const at = account.indexOf('@');
  return `${account.slice(0, at)}.${suffix}${account.slice(at)}`;
};

/** One account of a snapshot, under another name (to compare a restored account with its original). */
export const accountAs = (snapshot: MaildirSnapshot, account: string, as: string): MaildirSnapshot => {
  const folders = snapshot[account];
  return folders === undefined ? {} : { [as]: folders };
};

/** The differences between an account as expected and as restored under another name (empty = equal). */
export const diffAccount = (expected: MaildirSnapshot, account: string, restored: MaildirSnapshot, restoredAs: string): string[] =>
  diffSnapshots(accountAs(expected, account, account), accountAs(restored, restoredAs, account));

export const messageCount = (snapshot: MaildirSnapshot, account?: string): number =>
  Object.entries(snapshot)
    .filter(([a]) => account === undefined || a === account)
    .reduce((n, [, folders]) => n + Object.values(folders).reduce((m, ms) => m + ms.length, 0), 0);

/** Messages of one account by base name (unique per account; kept by flag changes, moves and renames). */
export const byBase = (listing: MaildirListing, account: string): Map<string, MaildirMessage> => {
  const out = new Map<string, MaildirMessage>();
  for (const f of Object.values(listing[account]?.folders ?? {})) for (const m of f.messages) out.set(m.base, m);
  return out;
};

/** A deleted message as it was just before the deletion, and the folder it was deleted from. */
export interface DeletedMessage {
  readonly folder: string;
  readonly message: SnapshotMessage;
}

/** The messages of `account` that `summary` deleted, looked up in the listing taken before the mutation. */
export const deletedMessages = (before: MaildirListing, summary: MutationSummary, account: string): DeletedMessage[] => {
  const bases = byBase(before, account);
  return (summary.accounts[account]?.deleted ?? []).map((d) => {
    const message = bases.get(d.base);
    if (message === undefined || message.sha256 === undefined) throw new Error(`deleted message ${d.base} of ${account} is not in the listing before the change (list with hash: true)`);
    return { folder: d.folder, message: { sha256: message.sha256, mtimeMs: message.mtimeMs, flags: message.flags } };
  });
};

/** A copy of one account's snapshot with `extra` messages added to their folders. */
export const withMessages = (snapshot: MaildirSnapshot, account: string, extra: ReadonlyArray<{ readonly folder: string; readonly message: SnapshotMessage }>): MaildirSnapshot => {
  const folders: Record<string, SnapshotMessage[]> = {};
  for (const [name, ms] of Object.entries(snapshot[account] ?? {})) folders[name] = [...ms];
  for (const { folder, message } of extra) (folders[folder] ??= []).push(message);
  return { [account]: folders };
};
