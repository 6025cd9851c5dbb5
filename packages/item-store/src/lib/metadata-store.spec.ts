import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import { MemoryLevel } from 'memory-level';
import type { AccountStat, ItemChange, MetadataStore } from './api';
import type { History, Transaction } from './codecs';
import { stateAt, validateHistory } from './history';
import { makeMetadataStore, type LevelDb } from './metadata-store';
import { acc, entry, expectLeft, iid, msg, run, txid } from './util.spec-helper';

const alice = acc('alice@example.test');
const bob = acc('bob@example.test');

const up = (account: typeof alice, item: string, tx: number, at: number, subject: string, extra: Partial<ItemChange> = {}): ItemChange =>
  ({ kind: 'upsert', account, itemId: iid(item), tx: txid(tx), at, meta: msg(subject), ...extra }) as ItemChange;
const del = (account: typeof alice, item: string, tx: number, at: number): ItemChange => ({ kind: 'delete', account, itemId: iid(item), tx: txid(tx), at });

const history = async (store: MetadataStore, account: typeof alice, item: string): Promise<History> =>
  O.getOrElse((): History => [])(await run(store.getHistory(account, iid(item))));

describe('metadata store (memory-level)', () => {
  let db: LevelDb;
  let store: MetadataStore;
  beforeEach(() => {
    db = new MemoryLevel<string, string>();
    store = makeMetadataStore(db);
  });
  afterEach(async () => {
    await run(store.close());
  });

  it('records creates, updates and deletes as a history', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a')] }));
    await run(store.commit({ changes: [up(alice, 'm1', 2, 200, 'b'), del(alice, 'm1', 3, 300)] }));
    expect(await history(store, alice, 'm1')).toEqual([
      entry(1, 100, 200, 'create', msg('a')),
      entry(2, 200, 300, 'update', msg('b')),
      entry(3, 300, null, 'delete', msg('b')),
    ]);
  });

  it('applies several changes of one item in one batch in order, and skips identical states', async () => {
    const r = await run(
      store.commit({
        changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm1', 2, 110, 'a'), up(alice, 'm1', 3, 120, 'b'), del(alice, 'm1', 4, 130), up(alice, 'm1', 5, 140, 'c')],
      }),
    );
    expect(r).toEqual({ recorded: 4, unchanged: 1 });
    const h = await history(store, alice, 'm1');
    expect(h.map((e) => [e.tx, e.op, e.start, e.end])).toEqual([
      [1, 'create', 100, 120],
      [3, 'update', 120, 130],
      [4, 'delete', 130, 140],
      [5, 'create', 140, null],
    ]);
    expect(E.isRight(validateHistory(h))).toBe(true);
    // re-created, so it is not in the deletion index any more
    expect(await run(store.deletedBetween(0, 1000))).toEqual([]);
  });

  it('refuses a whole batch when one change conflicts, writing nothing', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 5, 100, 'a')] }));
    const e = await store.commit({ changes: [up(alice, 'm2', 6, 100, 'x'), up(alice, 'm1', 4, 200, 'b')] })();
    expectLeft(e, 'Conflict');
    expect(await run(store.getHistory(alice, iid('m2')))).toEqual(O.none);
    expect(await history(store, alice, 'm1')).toEqual([entry(5, 100, null, 'create', msg('a'))]);
    // nothing of the refused batch lingers in memory either
    await run(store.commit({ changes: [up(alice, 'm2', 7, 300, 'y'), up(alice, 'm1', 8, 300, 'c')] }));
    expect(await history(store, alice, 'm2')).toEqual([entry(7, 300, null, 'create', msg('y'))]);
    expect(await history(store, alice, 'm1')).toEqual([entry(5, 100, 300, 'create', msg('a')), entry(8, 300, null, 'update', msg('c'))]);
  });

  it('keeps account counters and takes the scan state of the given stats in the same batch', async () => {
    await run(
      store.commit({
        changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm2', 2, 100, 'b'), up(bob, 'm1', 3, 100, 'c')],
        accountStats: [{ format: 1, account: alice, items: 999, deletedItems: 999, cursor: { uidNext: 7 }, lastScanAt: 150 }],
        backupStat: { format: 1, firstRunAt: 100, counters: { scans: 1 } },
      }),
    );
    await run(store.commit({ changes: [del(alice, 'm2', 4, 200), del(alice, 'm2', 5, 210), del(alice, 'nope', 6, 220)] }));
    expect(O.toNullable(await run(store.getAccountStat(alice)))).toEqual<AccountStat>({
      format: 1,
      account: alice,
      items: 1,
      deletedItems: 1,
      cursor: { uidNext: 7 },
      lastScanAt: 150,
      lastTx: 4,
    });
    expect(O.toNullable(await run(store.getAccountStat(bob)))).toMatchObject({ items: 1, deletedItems: 0, lastTx: 3 });
    expect(await run(store.listAccounts())).toEqual([alice, bob]);
    expect(await run(store.getBackupStat())).toEqual({ format: 1, firstRunAt: 100, counters: { scans: 1 } });
  });

  it('answers point-in-time queries per item and per account', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm2', 2, 100, 'b'), up(alice, 'm3', 3, 150, 'c'), up(bob, 'm9', 4, 100, 'z')] }));
    await run(store.commit({ changes: [up(alice, 'm1', 5, 200, 'a2'), del(alice, 'm2', 6, 200)] }));

    expect(O.map((e: Transaction) => e.tx)(await run(store.stateAt(alice, iid('m1'), 199)))).toEqual(O.some(1));
    expect(O.map((e: Transaction) => e.tx)(await run(store.stateAt(alice, iid('m1'), 200)))).toEqual(O.some(5));
    expect(await run(store.stateAt(alice, iid('m2'), 250))).toEqual(O.none);
    expect(O.map((e: Transaction) => e.tx)(await run(store.stateAtTx(alice, iid('m2'), txid(5))))).toEqual(O.some(2));

    const seen = async (at: number | 'now') => {
      const out: Array<[string, number]> = [];
      const n = await run(store.forEachItemAt(alice, at, (id, s) => void out.push([id, s.tx])));
      expect(n).toBe(out.length);
      return out;
    };
    expect(await seen(120)).toEqual([['m1', 1], ['m2', 2]]);
    expect(await seen(199)).toEqual([['m1', 1], ['m2', 2], ['m3', 3]]);
    expect(await seen(200)).toEqual([['m1', 5], ['m3', 3]]);
    expect(await seen('now')).toEqual([['m1', 5], ['m3', 3]]);
    expect(await seen(50)).toEqual([]);
  });

  it('indexes deletions by instant and account', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm2', 2, 100, 'b'), up(bob, 'm1', 3, 100, 'c')] }));
    await run(store.commit({ changes: [del(alice, 'm1', 4, 200), del(bob, 'm1', 5, 250), del(alice, 'm2', 6, 300)] }));
    expect(await run(store.deletedBetween(200, 300))).toEqual([
      { account: alice, itemId: 'm1', deletedAt: 200, tx: 4 },
      { account: bob, itemId: 'm1', deletedAt: 250, tx: 5 },
    ]);
    expect(await run(store.deletedBetween(0, Number.POSITIVE_INFINITY, alice))).toEqual([
      { account: alice, itemId: 'm1', deletedAt: 200, tx: 4 },
      { account: alice, itemId: 'm2', deletedAt: 300, tx: 6 },
    ]);
  });

  it('streams every history, grouped by item, for one account or all', async () => {
    // ids that share prefixes must not mix: 'm1' and 'm1.x' and 'm10'
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm1.x', 2, 100, 'b'), up(alice, 'm10', 3, 100, 'c'), up(bob, 'm1', 4, 100, 'd')] }));
    await run(store.commit({ changes: [up(alice, 'm1', 5, 200, 'a2'), up(alice, 'm10', 6, 200, 'c2')] }));
    const all: Array<[string, string, number[]]> = [];
    const n = await run(store.forEachHistory(undefined, (a, i, h) => void all.push([a, i, h.map((e) => e.tx)])));
    expect(n).toBe(4);
    expect(all).toEqual([
      [alice, 'm1', [1, 5]],
      [alice, 'm1.x', [2]],
      [alice, 'm10', [3, 6]],
      [bob, 'm1', [4]],
    ]);
    const bobs: string[] = [];
    await run(store.forEachHistory(bob, (_a, i) => void bobs.push(i)));
    expect(bobs).toEqual(['m1']);
  });

  it('replaces and removes whole histories, keeping indexes and counters', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm1', 2, 200, 'b')] }));
    const replacement = [entry(7, 50, 60, 'create', msg('x')), entry(8, 60, null, 'delete', msg('x'))];
    await run(store.putHistory(alice, iid('m1'), replacement));
    expect(await history(store, alice, 'm1')).toEqual(replacement);
    expect(await run(store.deletedBetween(0, 100))).toEqual([{ account: alice, itemId: 'm1', deletedAt: 60, tx: 8 }]);
    expect(O.toNullable(await run(store.getAccountStat(alice)))).toMatchObject({ items: 0, deletedItems: 1 });
    expect(await run(store.forEachItemAt(alice, 'now', () => undefined))).toBe(0);

    expectLeft(await store.putHistory(alice, iid('m1'), [entry(1, 100, 200, 'create', msg('x'))])(), 'DecodeError');
    // the next change follows the replaced history, not the one committed before
    await run(store.commit({ changes: [up(alice, 'm1', 9, 70, 'z')] }));
    expect((await history(store, alice, 'm1')).map((e) => [e.tx, e.op, e.end])).toEqual([
      [7, 'create', 60],
      [8, 'delete', 70],
      [9, 'create', null],
    ]);

    await run(store.removeItem(alice, iid('m1')));
    expect(await run(store.getHistory(alice, iid('m1')))).toEqual(O.none);
    expect(await run(store.deletedBetween(0, 1000))).toEqual([]);
    expect(O.toNullable(await run(store.getAccountStat(alice)))).toMatchObject({ items: 0, deletedItems: 0 });
    await run(store.commit({ changes: [up(alice, 'm1', 10, 80, 'new')] }));
    expect(await history(store, alice, 'm1')).toEqual([entry(10, 80, null, 'create', msg('new'))]);
  });

  it('decodes what it reads: a corrupted row is a DecodeError naming its key', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a')] }));
    const key = `t!${alice}!m1!${'1'.padStart(16, '0')}`;
    await db.put(key, '{"tx":1,"start":100,"op":"create","kind":"message"}');
    const e = expectLeft(await store.getHistory(alice, iid('m1'))(), 'DecodeError');
    expect(e.key).toBe(key);
    expect(e.message).toMatch(/folderId/);
    // a stored row never carries `end` (it is derived): one that does is not believed
    await db.put(key, JSON.stringify({ tx: 1, start: 100, end: 5, op: 'create', ...msg('a') }));
    expect(expectLeft(await store.getHistory(alice, iid('m1'))(), 'DecodeError').message).toMatch(/end/);
    // nor a row holding another transaction than its key names
    await db.put(key, JSON.stringify({ tx: 2, start: 100, op: 'create', ...msg('a') }));
    expectLeft(await store.getHistory(alice, iid('m1'))(), 'DecodeError');
    await db.put(`c!${alice}!m9`, 'not json');
    expect(expectLeft(await store.commit({ changes: [up(alice, 'm9', 2, 200, 'b')] })(), 'DecodeError').key).toBe(`c!${alice}!m9`);
  });

  it('refuses a head that names a missing row or disagrees with it', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a')] }));
    const fresh = () => makeMetadataStore(db, { headCacheSize: 0 });
    await db.put(`c!${alice}!m1`, JSON.stringify({ tx: 1, start: 99, op: 'create' }));
    expectLeft(await fresh().commit({ changes: [up(alice, 'm1', 2, 200, 'b')] })(), 'DecodeError');
    expectLeft(await fresh().forEachItemAt(alice, 'now', () => undefined)(), 'DecodeError');
    await db.put(`c!${alice}!m1`, JSON.stringify({ tx: 7, start: 100, op: 'create' }));
    expect(expectLeft(await fresh().commit({ changes: [up(alice, 'm1', 8, 200, 'b')] })(), 'DecodeError').key).toBe(`t!${alice}!m1!${'7'.padStart(16, '0')}`);
  });

  it('rejects account stats of an unknown format', async () => {
    await db.put(`a!${alice}`, JSON.stringify({ format: 99, account: alice, items: 0, deletedItems: 0 }));
    expectLeft(await store.getAccountStat(alice)(), 'UnsupportedFormat');
  });

  it('rejects a database holding another layout version', async () => {
    const other = new MemoryLevel<string, string>();
    // 1: the layout whose rows carried `end` (no migration); 3: a newer zxbackup's
    for (const format of [1, 3]) {
      await other.put('v', JSON.stringify({ format, layout: 'zxbackup-metadata' }));
      const s = makeMetadataStore(other);
      expectLeft(await s.listAccounts()(), 'UnsupportedFormat');
    }
    await other.close();
  });

  it('reports a failing visitor as an IOError with its cause', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a')] }));
    const boom = new Error('boom');
    const e = expectLeft(await store.forEachItemAt(alice, 'now', () => Promise.reject(boom))(), 'IOError');
    expect(e._tag === 'IOError' && e.cause).toBe(boom);
  });

  it('serializes concurrent commits of the same item', async () => {
    const results = await Promise.all([1, 2, 3, 4].map((i) => store.commit({ changes: [up(alice, 'm1', i, i * 100, `s${i}`)] })()));
    expect(results.every(E.isRight)).toBe(true);
    expect((await history(store, alice, 'm1')).map((e) => e.tx)).toEqual([1, 2, 3, 4]);
  });
  it('an append writes its row and the head only: earlier rows are never rewritten', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a')] }));
    const first = await db.get(`t!${alice}!m1!${'1'.padStart(16, '0')}`);
    const writes: string[] = [];
    // every write, whether the store uses an array batch or a chained one
    type Chained = { put: (k: string, v: string) => Chained; del: (k: string) => Chained };
    const real = db.batch.bind(db) as unknown as (ops?: Array<{ type: string; key: string }>) => Chained | Promise<void>;
    const part = (k: string) => k.split('!')[0] ?? '';
    (db as unknown as { batch: typeof real }).batch = (ops) => {
      if (ops !== undefined) {
        writes.push(...ops.map((o) => `${o.type} ${part(o.key)}`));
        return real(ops);
      }
      const b = real() as Chained;
      const put = b.put.bind(b);
      const delOp = b.del.bind(b);
      b.put = (k, v) => (writes.push(`put ${part(k)}`), put(k, v));
      b.del = (k) => (writes.push(`del ${part(k)}`), delOp(k));
      return b;
    };
    await run(store.commit({ changes: [up(alice, 'm1', 2, 200, 'b')] }));
    expect(writes.sort()).toEqual(['put a', 'put c', 'put t']);
    expect(await db.get(`t!${alice}!m1!${'1'.padStart(16, '0')}`)).toBe(first);
    expect(first).not.toMatch(/"end"/);
    // readers derive the end from the next row's start
    expect((await history(store, alice, 'm1')).map((e) => e.end)).toEqual([200, null]);
  });

  it('answers forEachItemAt(T) like stateAt over each whole history, at every instant', async () => {
    // ids sharing prefixes, zero-length intervals (two changes at one instant), deletes, re-creations
    const ids = ['m1', 'm1.x', 'm10', 'm2', 'z'];
    const changes: ItemChange[] = [];
    let tx = 0;
    for (let round = 0; round < 12; round++) {
      ids.forEach((id, i) => {
        const at = 100 + round * 10 + (round % 3 === 0 ? 0 : i);
        if ((round + i) % 5 === 4) changes.push(del(alice, id, ++tx, at));
        else if ((round * i) % 4 !== 1) changes.push(up(alice, id, ++tx, at, `${id} r${round}`));
      });
    }
    changes.push(up(bob, 'm1', ++tx, 50, 'bob'));
    await run(store.commit({ changes }));
    const histories = new Map<string, History>();
    await run(store.forEachHistory(alice, (_a, id, h) => void histories.set(id, h)));
    expect([...histories.keys()]).toEqual(ids);
    for (let at = 90; at <= 230; at++) {
      const seen = new Map<string, Transaction>();
      await run(store.forEachItemAt(alice, at, (id, s) => void seen.set(id, s)));
      const expected = new Map<string, Transaction>();
      for (const [id, h] of histories) {
        const s = stateAt(h, at);
        if (O.isSome(s)) expected.set(id, s.value);
      }
      expect(seen).toEqual(expected);
    }
  });

  it('forEachHistoryEither hands over an unreadable history as a Left and goes on', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm2', 2, 100, 'b'), up(alice, 'm2', 3, 200, 'b2'), up(bob, 'm3', 4, 100, 'c')] }));
    await db.put(`t!${alice}!m2!${'2'.padStart(16, '0')}`, '{"tx":2,"start":"yesterday"');
    const seen: Array<[string, string, string]> = [];
    const n = await run(
      store.forEachHistoryEither(undefined, (a, i, h) => void seen.push([a, i, E.isRight(h) ? `${h.right.length} entries` : `${h.left._tag} ${h.left.key ?? ''}`])),
    );
    expect(n).toBe(3);
    expect(seen).toEqual([
      [alice, 'm1', '1 entries'],
      [alice, 'm2', `DecodeError t!${alice}!m2!0000000000000002`],
      [bob, 'm3', '1 entries'],
    ]);
    // the strict traversal stops there
    expectLeft(await store.forEachHistory(undefined, () => undefined)(), 'DecodeError');
    // broken invariants (a start going back in time) are a Left too
    await db.put(`t!${alice}!m2!${'2'.padStart(16, '0')}`, JSON.stringify({ tx: 2, start: 300, op: 'create', ...msg('b') }));
    const lefts: string[] = [];
    await run(store.forEachHistoryEither(alice, (_a, i, h) => void (E.isLeft(h) && lefts.push(i))));
    expect(lefts).toEqual(['m2']);
  });

  it('removes an item without decoding its history', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm1', 2, 200, 'b'), del(alice, 'm1', 3, 300), up(alice, 'm2', 4, 100, 'c')] }));
    await db.put(`t!${alice}!m1!${'1'.padStart(16, '0')}`, 'garbage');
    await run(store.removeItem(alice, iid('m1')));
    expect(await run(store.getHistory(alice, iid('m1')))).toEqual(O.none);
    expect(await run(store.deletedBetween(0, 1000))).toEqual([]);
    expect(O.toNullable(await run(store.getAccountStat(alice)))).toMatchObject({ items: 1, deletedItems: 0 });
    const keys: string[] = [];
    for await (const k of db.keys()) keys.push(k);
    expect(keys.filter((k) => k.includes('!m1'))).toEqual([]);
    await run(store.removeItem(alice, iid('m1'))); // absent: nothing to do
    await run(store.removeItem(acc('nobody@example.test'), iid('m1')));
    expect(await run(store.listAccounts())).toEqual([alice]);
  });

  it('removes a whole account, chunk by chunk, and it leaves listAccounts', async () => {
    const many = Array.from({ length: 2_300 }, (_, i) => up(alice, `m${i}`, i + 1, 100, `s${i}`));
    await run(store.commit({ changes: many }));
    await run(store.commit({ changes: [del(alice, 'm5', 5_000, 200), up(alice, 'm6', 5_001, 200, 'again'), up(bob, 'm1', 5_002, 100, 'bob')] }));
    await db.put(`c!${alice}!headless`, JSON.stringify({ tx: 9_000, start: 300, op: 'delete' }));
    await db.put(`d!${'300'.padStart(16, '0')}!${alice}!headless`, JSON.stringify({ format: 1, tx: 9_000 }));
    const bobBefore = await history(store, bob, 'm1');
    expect(await run(store.removeAccount(alice))).toBe(2_301);
    expect(await run(store.listAccounts())).toEqual([bob]);
    const keys: string[] = [];
    for await (const k of db.keys()) keys.push(k);
    expect(keys.filter((k) => k.includes(alice))).toEqual([]);
    expect(await run(store.deletedBetween(0, 1000))).toEqual([]);
    expect(await history(store, bob, 'm1')).toEqual(bobBefore);
    expect(await run(store.removeAccount(alice))).toBe(0);
    // the account can come back as new
    await run(store.commit({ changes: [up(alice, 'm1', 6_000, 400, 'new')] }));
    expect(await history(store, alice, 'm1')).toEqual([entry(6_000, 400, null, 'create', msg('new'))]);
    expect(O.toNullable(await run(store.getAccountStat(alice)))).toMatchObject({ items: 1, deletedItems: 0 });
  });

  it('rebuilds the deletion index from the heads', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'a'), up(alice, 'm2', 2, 100, 'b'), up(bob, 'm1', 3, 100, 'c'), up(bob, 'm2', 4, 100, 'd')] }));
    await run(store.commit({ changes: [del(alice, 'm1', 5, 200), del(bob, 'm1', 6, 200), del(bob, 'm2', 7, 210)] }));
    const d = (at: number, a: string, i: string) => `d!${String(at).padStart(16, '0')}!${a}!${i}`;
    await db.put(d(150, alice, 'ghost'), JSON.stringify({ format: 1, tx: 99 })); // no such item
    await db.put(d(150, alice, 'm2'), JSON.stringify({ format: 1, tx: 2 })); // live
    await db.put(d(150, bob, 'm2'), JSON.stringify({ format: 1, tx: 2 })); // wrong instant
    await db.put(d(200, alice, 'm1'), JSON.stringify({ format: 1, tx: 4 })); // wrong tx
    await db.del(d(200, bob, 'm1')); // missing
    await db.put(d(1, bob, 'bad'), 'not json');

    expect(await run(store.rebuildDeletionIndex(alice))).toEqual({ removed: 3, added: 1 });
    expect(await run(store.deletedBetween(0, 1000, alice))).toEqual([{ account: alice, itemId: 'm1', deletedAt: 200, tx: 5 }]);
    expectLeft(await store.deletedBetween(0, 1000, bob)(), 'DecodeError'); // bob's part is not touched yet

    expect(await run(store.rebuildDeletionIndex())).toEqual({ removed: 2, added: 1 });
    expect(await run(store.deletedBetween(0, 1000))).toEqual([
      { account: alice, itemId: 'm1', deletedAt: 200, tx: 5 },
      { account: bob, itemId: 'm1', deletedAt: 200, tx: 6 },
      { account: bob, itemId: 'm2', deletedAt: 210, tx: 7 },
    ]);
    expect(await run(store.rebuildDeletionIndex())).toEqual({ removed: 0, added: 0 });
  });
  it('tells an identical state by value, whatever the key order, and a change of the same length', async () => {
    await run(store.commit({ changes: [up(alice, 'm1', 1, 100, 'ab')] }));
    const reordered = { subject: 'ab', receivedAt: 1_700_000_000_000, flags: [], folderId: iid('inbox'), kind: 'message' as const };
    const fresh = makeMetadataStore(db, { headCacheSize: 0 }); // from the rows, not from the cache
    for (const s of [store, fresh]) {
      expect(await run(s.commit({ changes: [up(alice, 'm1', 2, 200, 'x', { meta: reordered })] }))).toEqual({ recorded: 0, unchanged: 1 });
    }
    // same length, other text: a change
    expect(await run(store.commit({ changes: [up(alice, 'm1', 3, 300, 'ba')] }))).toEqual({ recorded: 1, unchanged: 0 });
    expect((await history(store, alice, 'm1')).map((e) => [e.tx, e.kind === 'message' ? e.subject : '']).slice(-1)).toEqual([[3, 'ba']]);
  });
});
