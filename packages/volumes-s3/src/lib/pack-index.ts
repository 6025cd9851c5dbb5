import { promises as fsp } from 'node:fs';
import * as TE from 'fp-ts/TaskEither';
import { ClassicLevel } from 'classic-level';
import * as t from 'io-ts';
import type { Digest, VolumeError } from '@zxbackup/volume-contract';
import type { PackEntry, PackId } from './pack-format';

/** Where a blob is in the store. */
export interface BlobLocation extends PackEntry {
  readonly pack: PackId;
}

export interface PackInfo {
  /** Bytes of the pack object. */
  readonly size: number;
  readonly uploadedAt: number;
  readonly entries: number;
  /** Entries still pointed to by the index (not deleted, not moved to another pack). */
  readonly live: number;
  readonly liveBytes: number;
}

/** A pack whose upload started but was not recorded: after a crash, it is looked up or removed. */
export interface PendingPack {
  readonly id: PackId;
  readonly size: number;
  readonly entries: readonly PackEntry[];
}

/**
 * The local copy of the bucket's pack index, in LevelDB under the cache directory: which pack
 * holds each blob, the live bytes of each pack, the packs whose index object must be rewritten
 * (`dirty`), and the packs being uploaded (`pending`, written before the upload starts). The
 * bucket's index objects are the truth; this copy is rebuilt from them when it is missing or
 * belongs to another volume (`identity`). Writes that record an upload are synced: a blob
 * leaves the write cache only once its location is on disk here.
 */
export interface PackIndex {
  /** True once the bucket's index objects were loaded (or the volume was new). */
  synced(): boolean;
  markSynced(): Promise<void>;
  locate(d: Digest): Promise<BlobLocation | undefined>;
  /**
   * False when the index certainly does not hold `d`, known without reading the database: on
   * an index that was empty when opened (an initial SmartScan), every digest is one this
   * process added, remembered up to `RECORDED_CAP`. True means "ask `locate`".
   */
  mayHold(d: Digest): boolean;
  packInfo(id: PackId): Promise<PackInfo | undefined>;
  /** A pack's size and upload time, which never change: remembered after the first read. */
  packMeta(id: PackId): Promise<{ readonly size: number; readonly uploadedAt: number } | undefined>;
  /** `locate` of many digests in one database read. */
  locateMany(ds: readonly Digest[]): Promise<Array<BlobLocation | undefined>>;
  /**
   * Records a confirmed pack; a blob already in another pack moves here (the other loses it).
   * Synced to disk unless `sync` is false (loading the bucket's index, which `markSynced` seals).
   */
  addPack(id: PackId, size: number, uploadedAt: number, entries: readonly PackEntry[], options?: { readonly sync?: boolean }): Promise<void>;
  /** Forgets a blob; false when it was not indexed. Its pack becomes dirty. */
  remove(d: Digest): Promise<boolean>;
  /** The entries of `id` that the index still points to. */
  liveEntries(id: PackId): Promise<PackEntry[]>;
  /** Every live blob, grouped by pack (reading in this order downloads each pack once). */
  forEachLive(visit: (loc: BlobLocation) => void | Promise<void>): Promise<number>;
  dirtyPacks(limit: number): Promise<PackId[]>;
  clearDirty(id: PackId): Promise<void>;
  /** Forgets a pack removed from the store, with all its entries. */
  dropPack(id: PackId): Promise<void>;
  setPending(p: PendingPack): Promise<void>;
  pending(): Promise<PendingPack[]>;
  clearPending(id: PackId): Promise<void>;
  close(): Promise<void>;
}

// Key spaces: b:<digest> → location, e:<pack>:<digest> → entry (immutable), p:<pack> → PackInfo,
// d:<pack> → dirty, w:<pack> → pending upload, m:<name> → settings.
const BLOB = 'b:';
const ENTRY = 'e:';
const PACK = 'p:';
const DIRTY = 'd:';
const PENDING = 'w:';
const META = 'm:';
const END = '\xff';

const encodeLocation = (l: BlobLocation): string => `${l.pack} ${l.offset} ${l.length} ${l.size}`;
const decodeLocation = (digest: Digest, v: string): BlobLocation => {
  const [pack = '', offset = '', length = '', size = ''] = v.split(' ');
  return { digest, pack, offset: Number(offset), length: Number(length), size: Number(size) };
};
const encodeEntry = (e: PackEntry): string => `${e.offset} ${e.length} ${e.size}`;
const decodeEntry = (digest: Digest, v: string): PackEntry => {
  const [offset = '', length = '', size = ''] = v.split(' ');
  return { digest, offset: Number(offset), length: Number(length), size: Number(size) };
};

const indexError = (op: string, cause: unknown): VolumeError => ({ _tag: 'VolumeIOError', op, cause });

const Count = t.refinement(t.number, (n) => Number.isSafeInteger(n), 'Integer');
const PackInfoCodec = t.type({ size: Count, uploadedAt: Count, entries: Count, live: Count, liveBytes: Count });
const PendingCodec = t.type({
  size: Count,
  entries: t.array(t.type({ digest: t.string, offset: Count, length: Count, size: Count })),
});
/** A value of the index read back; a damaged one is an error naming its key, not a wrong number. */
const decoded = <A>(codec: t.Decoder<unknown, A>, key: string, v: string): A => {
  let u: unknown;
  try {
    u = JSON.parse(v);
  } catch {
    throw new Error(`the local pack index holds a damaged value at ${key}: delete the index directory to rebuild it from the bucket`);
  }
  const r = codec.decode(u);
  if (r._tag === 'Left') throw new Error(`the local pack index holds a damaged value at ${key}: delete the index directory to rebuild it from the bucket`);
  return r.right;
};

/** Digests remembered for `mayHold` (~120 bytes each); past it, every lookup reads the database. */
const RECORDED_CAP = 250_000;

/**
 * Opens (creating) the index in `dir`. `identity` names the bucket and prefix: an index left by
 * another volume (a cache directory reused after a migration) is wiped and rebuilt.
 */
export const openPackIndex = (dir: string, identity: string): TE.TaskEither<VolumeError, PackIndex> =>
  TE.tryCatch(async () => {
    const open = async (): Promise<ClassicLevel<string, string>> => {
      const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
      await db.open();
      return db;
    };
    let db = await open();
    const owner = await db.get(`${META}identity`);
    if (owner !== undefined && owner !== identity) {
      await db.close();
      await fsp.rm(dir, { recursive: true, force: true });
      db = await open();
    }
    if (owner !== identity) await db.put(`${META}identity`, identity, { sync: true });
    let empty = true;
    for await (const _ of db.keys({ gt: BLOB, lt: `${BLOB}${END}`, limit: 1 })) empty = false;
    return makePackIndex(db, (await db.get(`${META}synced`)) === '1', empty);
  }, (e) => indexError('openPackIndex', e));

const makePackIndex = (db: ClassicLevel<string, string>, wasSynced: boolean, emptyAtOpen: boolean): PackIndex => {
  let synced = wasSynced;
  // Every digest the index holds, while it started empty and holds few enough (see `mayHold`).
  let recorded: Set<Digest> | undefined = emptyAtOpen ? new Set() : undefined;
  const remember = (d: Digest): void => {
    if (recorded === undefined) return;
    if (recorded.size >= RECORDED_CAP) recorded = undefined;
    else recorded.add(d);
  };
  // Read-modify-writes of pack counters run one at a time.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <A>(f: () => Promise<A>): Promise<A> => {
    const run = tail.then(f, f);
    tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const metas = new Map<PackId, { size: number; uploadedAt: number }>();
  const getInfo = async (id: PackId): Promise<PackInfo | undefined> => {
    const v = await db.get(`${PACK}${id}`);
    return v === undefined ? undefined : decoded(PackInfoCodec, `${PACK}${id}`, v);
  };

  const liveEntries = async (id: PackId): Promise<PackEntry[]> => {
    const entries: PackEntry[] = [];
    for await (const [k, v] of db.iterator({ gt: `${ENTRY}${id}:`, lt: `${ENTRY}${id}:${END}` }))
      entries.push(decodeEntry(k.slice(ENTRY.length + id.length + 1) as Digest, v));
    const current = await db.getMany(entries.map((e) => `${BLOB}${e.digest}`));
    return entries.filter((_, i) => current[i]?.startsWith(`${id} `) === true);
  };

  const countDown = (infos: Map<PackId, PackInfo>, id: PackId, bytes: number): void => {
    const info = infos.get(id);
    if (info !== undefined) infos.set(id, { ...info, live: info.live - 1, liveBytes: info.liveBytes - bytes });
  };
  const loadInfos = async (ids: Iterable<PackId>): Promise<Map<PackId, PackInfo>> => {
    const list = [...new Set(ids)];
    const values = await db.getMany(list.map((id) => `${PACK}${id}`));
    const infos = new Map<PackId, PackInfo>();
    list.forEach((id, i) => {
      const v = values[i];
      if (v !== undefined) infos.set(id, decoded(PackInfoCodec, `${PACK}${id}`, v));
    });
    return infos;
  };

  return {
    synced: () => synced,
    markSynced: async () => {
      // A synced write syncs the log, with every unsynced write before it.
      await db.put(`${META}synced`, '1', { sync: true });
      synced = true;
    },
    locate: async (d) => {
      const v = await db.get(`${BLOB}${d}`);
      return v === undefined ? undefined : decodeLocation(d, v);
    },
    mayHold: (d) => recorded === undefined || recorded.has(d),
    packInfo: getInfo,
    packMeta: async (id) => {
      const known = metas.get(id);
      if (known !== undefined) return known;
      const info = await getInfo(id);
      if (info === undefined) return undefined;
      if (metas.size >= 100_000) metas.clear(); // a bound, not a policy: re-read when needed
      const meta = { size: info.size, uploadedAt: info.uploadedAt };
      metas.set(id, meta);
      return meta;
    },
    locateMany: async (ds) => {
      const values = await db.getMany(ds.map((d) => `${BLOB}${d}`));
      return ds.map((d, i) => {
        const v = values[i];
        return v === undefined ? undefined : decodeLocation(d, v);
      });
    },
    addPack: (id, size, uploadedAt, entries, options) =>
      serial(async () => {
        // Where the index holds every digest in memory (it started empty: a new machine loading
        // the bucket's index), only the digests it has can have a previous place to look up.
        const known = recorded === undefined ? entries : entries.filter((e) => recorded?.has(e.digest) === true);
        const previous = known.length === 0 ? [] : await db.getMany(known.map((e) => `${BLOB}${e.digest}`));
        const moved = known.flatMap((e, i) => {
          const v = previous[i];
          return v === undefined ? [] : [decodeLocation(e.digest, v)];
        }).filter((l) => l.pack !== id);
        const infos = await loadInfos(moved.map((l) => l.pack));
        for (const l of moved) countDown(infos, l.pack, l.length);
        const batch = db.batch();
        for (const e of entries) {
          batch.put(`${BLOB}${e.digest}`, encodeLocation({ ...e, pack: id }));
          batch.put(`${ENTRY}${id}:${e.digest}`, encodeEntry(e));
        }
        for (const [other, info] of infos) {
          batch.put(`${PACK}${other}`, JSON.stringify(info));
          batch.put(`${DIRTY}${other}`, '');
        }
        const info: PackInfo = {
          size,
          uploadedAt,
          entries: entries.length,
          live: entries.length,
          liveBytes: entries.reduce((n, e) => n + e.length, 0),
        };
        batch.put(`${PACK}${id}`, JSON.stringify(info));
        batch.del(`${PENDING}${id}`);
        await batch.write({ sync: options?.sync ?? true });
        for (const e of entries) remember(e.digest);
      }),
    remove: (d) =>
      serial(async () => {
        const v = await db.get(`${BLOB}${d}`);
        if (v === undefined) return false;
        const l = decodeLocation(d, v);
        const infos = await loadInfos([l.pack]);
        countDown(infos, l.pack, l.length);
        const batch = db.batch().del(`${BLOB}${d}`).put(`${DIRTY}${l.pack}`, '');
        const info = infos.get(l.pack);
        if (info !== undefined) batch.put(`${PACK}${l.pack}`, JSON.stringify(info));
        await batch.write();
        return true;
      }),
    liveEntries,
    forEachLive: async (visit) => {
      let n = 0;
      let page: Array<{ pack: PackId; digest: Digest; v: string }> = [];
      const visitPage = async (): Promise<void> => {
        const current = await db.getMany(page.map((e) => `${BLOB}${e.digest}`));
        for (const [i, e] of page.entries()) {
          if (current[i]?.startsWith(`${e.pack} `) !== true) continue;
          n++;
          await visit({ ...decodeEntry(e.digest, e.v), pack: e.pack });
        }
        page = [];
      };
      for await (const [k, v] of db.iterator({ gt: ENTRY, lt: `${ENTRY}${END}` })) {
        const [pack = '', digest = ''] = k.slice(ENTRY.length).split(':');
        page.push({ pack, digest: digest as Digest, v });
        if (page.length >= 512) await visitPage();
      }
      await visitPage();
      return n;
    },
    dirtyPacks: async (limit) => {
      const ids: PackId[] = [];
      for await (const k of db.keys({ gt: DIRTY, lt: `${DIRTY}${END}`, limit })) ids.push(k.slice(DIRTY.length));
      return ids;
    },
    clearDirty: (id) => serial(() => db.del(`${DIRTY}${id}`)),
    dropPack: (id) =>
      serial(async () => {
        metas.delete(id);
        const batch = db.batch().del(`${PACK}${id}`).del(`${DIRTY}${id}`);
        for await (const k of db.keys({ gt: `${ENTRY}${id}:`, lt: `${ENTRY}${id}:${END}` })) {
          batch.del(k);
          const d = k.slice(ENTRY.length + id.length + 1);
          // Only if it still points here (a moved blob belongs to its new pack).
          if ((await db.get(`${BLOB}${d}`))?.startsWith(`${id} `) === true) batch.del(`${BLOB}${d}`);
        }
        await batch.write({ sync: true });
      }),
    setPending: (p) => db.put(`${PENDING}${p.id}`, JSON.stringify({ size: p.size, entries: p.entries }), { sync: true }),
    pending: async () => {
      const out: PendingPack[] = [];
      for await (const [k, v] of db.iterator({ gt: PENDING, lt: `${PENDING}${END}` })) {
        const o = decoded(PendingCodec, k, v);
        out.push({ id: k.slice(PENDING.length), size: o.size, entries: o.entries.map((e) => ({ ...e, digest: e.digest as Digest })) });
      }
      return out;
    },
    clearPending: (id) => db.del(`${PENDING}${id}`, { sync: true }),
    close: async () => {
      await tail;
      await db.close();
    },
  };
};
