import type { AccountId } from '@zxbackup/item-store';
import type { MessageEntry } from '../source';
import { parseFileName } from './flags';
import { INBOX_KEY } from './folders';

/*
 * Where each message of a watched folder is now, by base name, so that a live change naming
 * its files can be looked up with a stat or two instead of a readdir of the whole folder.
 * A folder's map is built by a listing and kept up to date by the watcher, which reports every
 * name that appears in or vanishes from cur/ and new/ (a rename reports both names; an event
 * does not say which way, so every name is kept as a candidate until a lookup stats it).
 *
 * The map of a folder is trusted ("complete") only when it comes from a listing taken while
 * both cur/ and new/ were watched, with no watch started or stopped since: otherwise a name
 * may have changed unseen and the caller lists the folder again. Names reported while a
 * listing runs are kept on top of what the listing saw, so a rename during a listing is never
 * forgotten. A candidate too many is harmless (its stat fails); one too few would turn a
 * flag change into a deletion, which is why every rule here errs on the side of keeping.
 */

export type Box = 'cur' | 'new';

interface FolderNames {
  readonly watched: { cur: number; new: number };
  /** Bumped whenever a watch of this folder starts or stops. */
  epoch: number;
  complete: boolean;
  /** base name → candidate locator → sequence number of the event that named it (0: a listing). */
  byBase: Map<string, Map<string, number>>;
  size: number;
}

/** Taken before a listing, handed back with its result. */
export interface ListingToken {
  readonly epoch: number;
  readonly seq: number;
  readonly watched: boolean;
}

export interface Candidate {
  readonly locator: string;
  readonly seq: number;
}

export const locatorOf = (folderKey: string, box: Box, name: string): string => (folderKey === INBOX_KEY ? `${box}/${name}` : `${folderKey}/${box}/${name}`);

export class NameMap {
  private readonly folders = new Map<string, FolderNames>();
  private total = 0;
  /** One counter for every folder: a token compares against it. */
  private seq = 0;

  /** `limit`: bound on the candidates kept over all folders; the least recently used folders are forgotten first. */
  constructor(private readonly limit: number) {}

  private state(account: AccountId, folderKey: string, create: boolean): FolderNames | undefined {
    const key = `${account}\0${folderKey}`;
    let s = this.folders.get(key);
    if (s !== undefined) {
      // Most recently used last.
      this.folders.delete(key);
      this.folders.set(key, s);
    } else if (create) {
      s = { watched: { cur: 0, new: 0 }, epoch: 0, complete: false, byBase: new Map(), size: 0 };
      this.folders.set(key, s);
    }
    return s;
  }

  private forget(s: FolderNames): void {
    this.total -= s.size;
    s.byBase = new Map();
    s.size = 0;
    s.complete = false;
  }

  private trim(keep: FolderNames): void {
    for (const [key, s] of this.folders) {
      if (this.total <= this.limit) return;
      if (s === keep) continue;
      this.forget(s);
      if (s.watched.cur === 0 && s.watched.new === 0) this.folders.delete(key);
    }
    if (this.total > this.limit) this.forget(keep);
  }

  private add(s: FolderNames, base: string, locator: string, seq: number): void {
    let c = s.byBase.get(base);
    if (c === undefined) s.byBase.set(base, (c = new Map()));
    if (!c.has(locator)) {
      s.size++;
      this.total++;
    }
    c.set(locator, Math.max(seq, c.get(locator) ?? 0));
  }

  /** The watcher started (true) or stopped (false) watching a cur/ or new/ directory. */
  boxWatched(account: AccountId, folderKey: string, box: Box, watched: boolean): void {
    const s = this.state(account, folderKey, watched);
    if (s === undefined) return;
    s.watched[box] = Math.max(0, s.watched[box] + (watched ? 1 : -1));
    s.epoch++;
    this.forget(s);
    if (s.watched.cur === 0 && s.watched.new === 0) this.folders.delete(`${account}\0${folderKey}`);
  }

  /** The watcher saw `name` appear in or vanish from `box` of the folder. */
  named(account: AccountId, folderKey: string, box: Box, name: string): void {
    const s = this.state(account, folderKey, false);
    if (s === undefined) return; // not watched: nothing here is trusted anyway
    this.add(s, parseFileName(name).base, locatorOf(folderKey, box, name), ++this.seq);
    if (this.total > this.limit) this.trim(s);
  }

  beginListing(account: AccountId, folderKey: string): ListingToken {
    const s = this.state(account, folderKey, false);
    return { epoch: s?.epoch ?? -1, seq: this.seq, watched: s !== undefined && s.watched.cur > 0 && s.watched.new > 0 };
  }

  /** A complete listing of the folder, begun at `token`. */
  listed(account: AccountId, folderKey: string, token: ListingToken, entries: ReadonlyArray<MessageEntry>): void {
    const s = this.state(account, folderKey, false);
    if (s === undefined) return;
    if (!token.watched || s.epoch !== token.epoch) {
      this.forget(s);
      return;
    }
    const before = s.byBase;
    this.forget(s);
    for (const e of entries) this.add(s, e.sourceKey, e.locator, 0);
    // Names reported since the listing began may be newer than what it saw.
    for (const [base, c] of before) for (const [locator, seq] of c) if (seq > token.seq) this.add(s, base, locator, seq);
    s.complete = true;
    if (this.total > this.limit) this.trim(s);
  }

  /** The current sequence number: candidates named after it have a greater one. */
  mark(): number {
    return this.seq;
  }

  /**
   * The candidate locators of each key, or undefined when the folder's map is not trusted or
   * does not know a key (the caller lists the folder).
   */
  candidates(account: AccountId, folderKey: string, keys: ReadonlyArray<string>): Map<string, Candidate[]> | undefined {
    const s = this.state(account, folderKey, false);
    if (s === undefined || !s.complete) return undefined;
    const out = new Map<string, Candidate[]>();
    for (const key of keys) {
      const c = s.byBase.get(key);
      if (c === undefined || c.size === 0) return undefined;
      out.set(key, [...c].map(([locator, seq]) => ({ locator, seq })));
    }
    return out;
  }

  /** A lookup begun at `mark` found the message under exactly this name: the other candidates it tried are gone. */
  confirm(account: AccountId, folderKey: string, key: string, locator: string, mark: number): void {
    const s = this.state(account, folderKey, false);
    const c = s?.byBase.get(key);
    if (s === undefined || c === undefined) return;
    for (const [other, seq] of c) {
      // Named again after the lookup began: it may be back, keep it.
      if (other !== locator && seq <= mark) {
        c.delete(other);
        s.size--;
        this.total--;
      }
    }
  }

  /** The folder's epoch while its map is trusted, else undefined (a lookup compares it before and after waiting). */
  trusted(account: AccountId, folderKey: string): number | undefined {
    const s = this.state(account, folderKey, false);
    return s?.complete === true ? s.epoch : undefined;
  }

  /** Was `key` named by the watcher after `mark`? */
  namedSince(account: AccountId, folderKey: string, key: string, mark: number): boolean {
    const c = this.state(account, folderKey, false)?.byBase.get(key);
    return c !== undefined && [...c.values()].some((seq) => seq > mark);
  }

  /** A lookup begun at `mark` found none of the names of `key`: forget it, unless it was named again since. */
  gone(account: AccountId, folderKey: string, key: string, mark: number): void {
    const s = this.state(account, folderKey, false);
    const c = s?.byBase.get(key);
    if (s === undefined || c === undefined || [...c.values()].some((seq) => seq > mark)) return;
    s.byBase.delete(key);
    s.size -= c.size;
    this.total -= c.size;
  }
}
