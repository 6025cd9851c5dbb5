import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { AccountId } from '@zxbackup/item-store';
import { makeMaildirSource } from '../maildir/maildir-source';
import { makeMaildirTarget } from '../maildir/maildir-target';
import type { Source } from '../source';
import { unwrap } from './harness';
import type { Snapshot } from './store-snapshot';

/*
 * Helpers for specs on real Maildir trees: write mail with the maildir target, change the tree
 * the way a mail server would (rename for flags and moves, unlink, rename folder directories),
 * and read what a tree holds with the maildir source.
 */

export const maildirOf = (root: string, account: AccountId): string => {
  const [user, domain] = account.split('@') as [string, string];
  return join(root, domain, user, 'Maildir');
};

const folderDir = (maildir: string, key: string): string => (key === '' ? maildir : join(maildir, key));

/** Writes a message into `folderPath` (`INBOX`, `Projects/2026`) of a tree; returns its base name. */
export const deliver = async (root: string, account: AccountId, folderPath: string, content: string | Buffer, flags: string[], receivedAt: number): Promise<string> => {
  const target = makeMaildirTarget({ root });
  await unwrap(target.ensureFolder(account, folderPath, { kind: 'folder', path: folderPath, view: 'message' }));
  const { sourceKey } = await unwrap(
    target.writeMessage(account, folderPath, { content: Readable.from([Buffer.isBuffer(content) ? content : Buffer.from(content)]), flags, receivedAt }),
  );
  if (target.flush !== undefined) await unwrap(target.flush());
  return sourceKey;
};

/** Finds the file of a message by base name in a folder (key `''` is INBOX, `.Projects`...). */
export const findFile = async (maildir: string, key: string, base: string): Promise<{ dir: string; name: string }> => {
  for (const sub of ['cur', 'new']) {
    const dir = join(folderDir(maildir, key), sub);
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const name = names.find((n) => n === base || n.startsWith(`${base}:`));
    if (name !== undefined) return { dir, name };
  }
  throw new Error(`no message ${base} in ${key || 'INBOX'}`);
};

/** Changes the standard flags of a message (letters, e.g. 'RS'), keeping keyword letters. */
export const setFlagLetters = async (maildir: string, key: string, base: string, letters: string): Promise<void> => {
  const { dir, name } = await findFile(maildir, key, base);
  const info = name.includes(':2,') ? (name.split(':2,')[1] ?? '') : '';
  const keywords = [...info].filter((c) => c >= 'a' && c <= 'z');
  const next = [...new Set([...letters, ...keywords])].sort().join('');
  await fsp.rename(join(dir, name), join(folderDir(maildir, key), 'cur', `${base}:2,${next}`));
};

export const moveFile = async (maildir: string, from: string, base: string, to: string): Promise<void> => {
  const { dir, name } = await findFile(maildir, from, base);
  const dest = join(folderDir(maildir, to), 'cur');
  await fsp.mkdir(dest, { recursive: true });
  await fsp.rename(join(dir, name), join(dest, name.includes(':2,') ? name : `${name}:2,`));
};

export const removeFile = async (maildir: string, key: string, base: string): Promise<void> => {
  const { dir, name } = await findFile(maildir, key, base);
  await fsp.unlink(join(dir, name));
};

/** What a tree holds for one account, read through the maildir source (a full scan). */
export const treeSnapshot = async (root: string, account: AccountId, source: Source = makeMaildirSource({ root })): Promise<Snapshot> => {
  const out: Snapshot = {};
  const folders: Array<{ path: string; entries: Array<{ locator: string; flags: ReadonlyArray<string>; receivedAt: number }> }> = [];
  await unwrap(
    source.scanAccount(account, undefined, { full: true }, async (ev) => {
      if (ev.type === 'folder') folders.push({ path: ev.meta.path, entries: [...ev.entries] });
    }),
  );
  for (const f of folders) {
    const list: Snapshot[string] = [];
    for (const e of f.entries) {
      const chunks: Buffer[] = [];
      for await (const c of await unwrap(source.openBlob(account, e.locator))) chunks.push(c as Buffer);
      list.push({ content: Buffer.concat(chunks).toString('latin1'), flags: [...e.flags].sort(), receivedAt: e.receivedAt });
    }
    out[f.path] = list.sort((x, y) => x.content.localeCompare(y.content));
  }
  return out;
};
