import { mkdtempSync, promises as fs, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as O from 'fp-ts/Option';
import { MemoryLevel } from 'memory-level';
import * as tar from 'tar-stream';
import type { ItemChange, MetadataStore } from './api';
import type { AccountMeta, History } from './codecs';
import { readAccountArchive, writeAccountArchive } from './archive';
import { makeMetadataStore } from './metadata-store';
import { acc, expectLeft, iid, msg, run, txid } from './util.spec-helper';

const alice = acc('alice@example.test');
const bob = acc('bob@example.test');
const accountMeta = (status: AccountMeta['status']): AccountMeta => ({
  kind: 'account',
  address: alice,
  status,
  settings: { zimbraPrefLocale: 'de', zimbraMailAlias: ['a@example.test', 'al@example.test'] },
  passwordHash: '{SSHA512}abc',
});

const fill = async (store: MetadataStore): Promise<void> => {
  let tx = 0;
  const up = (itemId: string, at: number, meta: ItemChange extends infer C ? (C extends { meta: infer M } ? M : never) : never, digest?: string): ItemChange => ({
    kind: 'upsert',
    account: alice,
    itemId: iid(itemId),
    tx: txid(++tx),
    at,
    meta,
    ...(digest === undefined ? {} : { digest, size: 42 }),
  });
  const del = (itemId: string, at: number): ItemChange => ({ kind: 'delete', account: alice, itemId: iid(itemId), tx: txid(++tx), at });
  await run(
    store.commit({
      changes: [
        up('acct', 100, accountMeta('active')),
        up('inbox', 100, { kind: 'folder', path: 'INBOX', view: 'message' }),
        ...Array.from({ length: 40 }, (_, i) => up(`m${i}`, 100 + i, msg(`hello ${i}`), i.toString(16).padStart(64, '0'))),
      ],
      accountStats: [{ format: 1, account: alice, items: 0, deletedItems: 0, cursor: { uidNext: 41 }, lastScanAt: 500 }],
    }),
  );
  await run(
    store.commit({
      changes: [
        up('acct', 200, accountMeta('locked')),
        up('m1', 200, msg('hello 1', ['\\Seen'])),
        del('m2', 210),
        del('m3', 220),
        up('m3', 230, msg('back again')),
        up('m10', 240, msg('hello 10', ['\\Flagged'])),
        del('m10', 250),
      ],
    }),
  );
  // another account that must not leak into alice's archive
  await run(store.commit({ changes: [{ kind: 'upsert', account: bob, itemId: iid('m1'), tx: txid(++tx), at: 300, meta: msg('bob') }] }));
};

const histories = async (store: MetadataStore, account = alice): Promise<Record<string, History>> => {
  const out: Record<string, History> = {};
  await run(store.forEachHistory(account, (_a, id, h) => void (out[id] = h)));
  return out;
};

/** A .tar.gz made of the given entries. */
const tarGz = async (entries: ReadonlyArray<[string, string]>): Promise<Buffer> => {
  const pack = tar.pack();
  for (const [name, body] of entries) pack.entry({ name }, body);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
};

describe('account archive', () => {
  let dir: string;
  let source: MetadataStore;
  let target: MetadataStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'zxb-archive-'));
    source = makeMetadataStore(new MemoryLevel<string, string>());
    target = makeMetadataStore(new MemoryLevel<string, string>());
    await fill(source);
  });
  afterEach(async () => {
    await run(source.close());
    await run(target.close());
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips every history, the stat and the account info through a file', async () => {
    const file = join(dir, 'alice.tar.gz');
    expect(await run(writeAccountArchive(source, alice, file))).toEqual({ account: alice, items: 42 });
    expect((await fs.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    expect(await run(readAccountArchive(file, target))).toEqual({ account: alice, items: 42 });
    const expected = await histories(source);
    expect(Object.keys(expected)).toHaveLength(42);
    expect(await histories(target)).toEqual(expected);
    expect(await histories(target, bob)).toEqual({});
    expect(await run(target.getAccountStat(alice))).toEqual(await run(source.getAccountStat(alice)));
    expect(await run(target.deletedBetween(0, 1000))).toEqual(await run(source.deletedBetween(0, 1000, alice)));
    expect(O.isSome(await run(target.stateAt(alice, iid('m2'), 205)))).toBe(true);
  });

  it('lays the archive out as the seed describes', async () => {
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await run(writeAccountArchive(source, alice, out));
    const names: string[] = [];
    const bodies = new Map<string, string>();
    const extract = tar.extract();
    Readable.from([gunzipSync(Buffer.concat(chunks))]).pipe(extract);
    for await (const entry of extract) {
      const parts: Buffer[] = [];
      for await (const c of entry) parts.push(c as Buffer);
      names.push(entry.header.name);
      bodies.set(entry.header.name, Buffer.concat(parts).toString('utf8'));
    }
    expect(names.slice(0, 2)).toEqual(['account_info', 'account_stat']);
    expect(names).toContain('items/10/m10');
    expect(names).toContain('items/ct/acct');
    expect(names).toContain('items/m1/m1');
    expect(JSON.parse(bodies.get('account_info') ?? '')).toEqual({ format: 1, account: alice, itemId: 'acct', meta: accountMeta('locked') });
    expect(JSON.parse(bodies.get('items/m2/m2') ?? '').map((e: { op: string }) => e.op)).toEqual(['create', 'delete']);
  });

  const garbage: ReadonlyArray<[string, () => Promise<Buffer>, RegExp]> = [
    ['not gzip at all', async () => Buffer.from('this is not an archive'), /not a readable .tar.gz/],
    ['a truncated archive', async () => {
      const file = join(dir, 'a.tar.gz');
      await run(writeAccountArchive(source, alice, file));
      const whole = readFileSync(file);
      return whole.subarray(0, Math.floor(whole.length / 2));
    }, /not a readable .tar.gz/],
    ['a history that is not JSON', () => tarGz([['account_info', JSON.stringify({ format: 1, account: alice, itemId: null, meta: null })], ['items/m1/m1', '[{"tx":']]), /items\/m1\/m1/],
    ['a history with a bad field', () => tarGz([
      ['account_info', JSON.stringify({ format: 1, account: alice, itemId: null, meta: null })],
      ['items/m1/m1', JSON.stringify([{ tx: 1, start: 1, end: null, op: 'create', kind: 'message', folderId: 'f', flags: [], receivedAt: 'yesterday' }])],
    ]), /items\/m1\/m1.*receivedAt/],
    ['an item in the wrong bucket', () => tarGz([['account_info', JSON.stringify({ format: 1, account: alice, itemId: null, meta: null })], ['items/zz/m1', '[]']]), /items\/zz\/m1/],
    ['an unexpected entry', () => tarGz([['account_info', JSON.stringify({ format: 1, account: alice, itemId: null, meta: null })], ['../../etc/passwd', 'x']]), /unexpected entry/],
    ['no account_info', () => tarGz([['account_stat', JSON.stringify({ format: 1, account: alice, items: 0, deletedItems: 0 })]]), /no account_info/],
  ];
  it.each(garbage)('rejects %s with a DecodeError naming the problem', async (_name, make, message) => {
    const file = join(dir, 'bad.tar.gz');
    writeFileSync(file, await make());
    const e = expectLeft(await readAccountArchive(file, target)(), 'DecodeError');
    expect(e.message).toMatch(message);
  });

  it('rejects an archive of an unknown format', async () => {
    const bytes = await tarGz([['account_info', JSON.stringify({ format: 2, account: alice, itemId: null, meta: null })]]);
    expectLeft(await readAccountArchive(Readable.from([bytes]), target)(), 'UnsupportedFormat');
  });

  it('reports a missing file as an IOError', async () => {
    expectLeft(await readAccountArchive(join(dir, 'nope.tar.gz'), target)(), 'IOError');
  });
});
