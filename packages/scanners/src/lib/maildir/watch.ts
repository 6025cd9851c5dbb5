import { watch as fsWatch, promises as fsp, type FSWatcher } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { AccountId } from '@zxbackup/item-store';
import type { WatchHandlers, Watcher } from '../source';
import { parseFileName } from './flags';
import { INBOX_KEY, isFolderDirName, SUBSCRIPTIONS_FILE } from './folders';
import { errnoOf, isNotFound } from './fs-util';
import { accountOfDirs, MAILDIR } from './layout';
import type { Box } from './name-map';

/*
 * Live changes of a Maildir tree through one non-recursive `fs.watch` (inotify) per directory
 * that matters: the root, each domain and user directory, each Maildir, each folder directory
 * and each cur/ and new/ — about 3 per folder, never one per message (chokidar watches every
 * file, which costs one inotify watch and one stat per message). tmp/ and Dovecot's index files
 * are not watched: a delivery is atomic (rename from tmp/ into new/ or cur/).
 * A directory that appears later is watched as soon as its parent reports it, and its folder is
 * then reported once more, so a message delivered before the watch existed is not missed.
 * A change in cur/ or new/ names the file's base name (the message's source key); `names` is
 * told every file name seen and every cur/ or new/ watch started or stopped (the source keeps
 * its name map with them).
 */

export interface NameEvents {
  named(account: AccountId, folderKey: string, box: Box, name: string): void;
  boxWatched(account: AccountId, folderKey: string, box: Box, watched: boolean): void;
}

type Level = 'root' | 'domain' | 'user' | 'maildir' | 'folder' | 'box';

const boxOf = (path: string): Box | undefined => {
  const b = basename(path);
  return b === 'cur' || b === 'new' ? b : undefined;
};

interface Node {
  readonly level: Level;
  readonly watcher: FSWatcher;
  readonly account?: AccountId;
  readonly folderKey?: string;
  readonly box?: Box;
}

const childLevel = (level: Level, name: string): Level | undefined => {
  switch (level) {
    case 'root':
      return 'domain';
    case 'domain':
      return 'user';
    case 'user':
      return name === MAILDIR ? 'maildir' : undefined;
    case 'maildir':
      return name === 'cur' || name === 'new' ? 'box' : isFolderDirName(name) ? 'folder' : undefined;
    case 'folder':
      return name === 'cur' || name === 'new' ? 'box' : undefined;
    case 'box':
      return undefined;
  }
};

export const watchMaildirTree = async (root: string, handlers: WatchHandlers, clock: () => number, names?: NameEvents): Promise<Watcher> => {
  const nodes = new Map<string, Node>();
  const syncing = new Map<string, { again: boolean }>();
  let closed = false;
  let started = false;

  /** Account and folder of a directory under the root, from its path segments. */
  const whereIs = (path: string): { account?: AccountId; folderKey?: string } => {
    const parts = relative(root, path).split(sep);
    const [domain, user, maildir, fifth] = parts;
    if (domain === undefined || user === undefined || maildir !== MAILDIR) return {};
    const account = accountOfDirs(domain, user);
    if (account === undefined) return {};
    if (fifth === undefined) return { account };
    return { account, folderKey: fifth === 'cur' || fifth === 'new' ? INBOX_KEY : fifth };
  };

  const uncertain = (account: AccountId | undefined, reason: string): void => {
    if (!closed) handlers.onUncertain(account, reason);
  };

  const change = (account: AccountId, folderKey: string | undefined, name?: string): void => {
    if (closed) return;
    if (folderKey === undefined) handlers.onChange({ account, at: clock() });
    else handlers.onChange({ account, folderKey, at: clock(), ...(name === undefined ? {} : { names: [parseFileName(name).base] }) });
  };

  const close = (node: Node): void => {
    node.watcher.close();
    if (node.box !== undefined && node.account !== undefined && node.folderKey !== undefined) names?.boxWatched(node.account, node.folderKey, node.box, false);
  };

  const unwatch = (path: string): void => {
    for (const [p, node] of nodes) {
      if (p === path || p.startsWith(path + sep)) {
        close(node);
        nodes.delete(p);
      }
    }
  };

  const onEvent = (path: string, node: Node, filename: string | null): void => {
    if (closed) return;
    const { level, account, folderKey, box } = node;
    if (level === 'box') {
      if (account === undefined || folderKey === undefined || (filename !== null && filename.startsWith('.'))) return;
      if (filename === null || box === undefined) {
        change(account, folderKey); // no name: the folder is listed
        return;
      }
      names?.named(account, folderKey, box, filename);
      change(account, folderKey, filename);
      return;
    }
    if (filename !== null && level === 'maildir' && filename === SUBSCRIPTIONS_FILE && account !== undefined) {
      change(account, undefined);
      return;
    }
    if (filename !== null && childLevel(level, filename) === undefined) return; // Dovecot index files, tmp/, ...
    if (level === 'maildir' && account !== undefined && (filename === null || isFolderDirName(filename))) change(account, undefined);
    void sync(path, level);
  };

  const add = (path: string, level: Level): boolean => {
    if (nodes.has(path)) return false;
    const where = whereIs(path);
    let watcher: FSWatcher;
    try {
      watcher = fsWatch(path, { persistent: false }, (_event, filename) => onEvent(path, node, filename === null ? null : String(filename)));
    } catch (e) {
      if (isNotFound(e)) return false; // gone again; its parent reports that
      uncertain(where.account, `cannot watch ${path}: ${errnoOf(e) ?? String(e)}`);
      return false;
    }
    const box = level === 'box' ? boxOf(path) : undefined;
    const node: Node = { level, watcher, ...where, ...(box === undefined ? {} : { box }) };
    watcher.on('error', (e: Error) => {
      unwatch(path);
      uncertain(where.account, `watch of ${path} failed: ${e.message}`);
    });
    nodes.set(path, node);
    if (box !== undefined && where.account !== undefined && where.folderKey !== undefined) names?.boxWatched(where.account, where.folderKey, box, true);
    return true;
  };

  /** Bring the watches below `path` in line with what is on disk now. */
  const sync = async (path: string, level: Level): Promise<void> => {
    const running = syncing.get(path);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const state = { again: true };
    syncing.set(path, state);
    try {
      while (state.again && !closed) {
        state.again = false;
        const entries = await fsp.readdir(path, { withFileTypes: true }).catch((e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        });
        if (entries === undefined) {
          unwatch(path);
          return;
        }
        const present = new Set<string>();
        for (const d of entries) {
          const lv = childLevel(level, d.name);
          if (lv === undefined || !d.isDirectory()) continue;
          const child = join(path, d.name);
          present.add(child);
          if (add(child, lv)) {
            const where = whereIs(child);
            await sync(child, lv);
            // Appeared after the watch started: whatever it got before its watch existed is reported now.
            if (started && where.account !== undefined && (lv === 'box' || lv === 'maildir')) change(where.account, lv === 'box' ? where.folderKey : undefined);
          }
        }
        for (const [p, node] of nodes) {
          if (p !== path && p.startsWith(path + sep) && !p.slice(path.length + 1).includes(sep) && !present.has(p)) {
            unwatch(p);
            if (started && node.account !== undefined && node.level === 'box') change(node.account, node.folderKey);
          }
        }
      }
    } catch (e) {
      uncertain(whereIs(path).account, `cannot list ${path}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      syncing.delete(path);
    }
  };

  await fsp.stat(root); // a missing root is the caller's error, not an empty tree
  add(root, 'root');
  await sync(root, 'root');
  started = true;

  return {
    close: async () => {
      closed = true;
      for (const node of nodes.values()) close(node);
      nodes.clear();
    },
  };
};
