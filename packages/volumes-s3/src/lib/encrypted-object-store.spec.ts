import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as E from 'fp-ts/Either';
import type * as TE from 'fp-ts/TaskEither';
import { mailLikeText, pseudoRandomBytes, readAll, streamOf } from '@zxbackup/volume-contract/testing';
import { makeEncryptedObjectStore, withEncryption } from './encrypted-object-store';
import { CHUNK_SIZE, HEADER_SIZE, encryptedSize, encryptionErrorOf, keyFromBytes, type EncryptionKey } from './encryption';
import { makeMemoryObjectStore, unavailable, type MemoryObjectStore } from './memory-object-store';
import type { ListedObject, ObjectStore } from './object-store';

const keyOf = (fill: number): EncryptionKey => {
  const k = keyFromBytes(Buffer.alloc(32, fill));
  if (E.isLeft(k)) throw new Error('bad test key');
  return k.right;
};
const KEY = keyOf(9);

const right = async <L, A>(te: TE.TaskEither<L, A>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};
const left = async <L, A>(te: TE.TaskEither<L, A>): Promise<L> => {
  const r = await te();
  if (E.isRight(r)) throw new Error('expected Left, got Right');
  return r.left;
};

describe('makeEncryptedObjectStore', () => {
  let inner: MemoryObjectStore;
  let store: ObjectStore;
  beforeEach(() => {
    inner = makeMemoryObjectStore();
    store = makeEncryptedObjectStore(inner, KEY);
  });

  it('put seals, get opens; stat and list report the plaintext size; metadata pass unchanged', async () => {
    const marker = 'Subject: quarterly figures ZXB-MARKER';
    const plain = Buffer.concat([Buffer.from(`${marker}\r\n\r\n`), mailLikeText(3 * CHUNK_SIZE, 1)]);
    await right(store.put('p/items/aa/x', streamOf(plain), plain.length, { sha256: 'digest-of-plain' }));
    const held = inner.objects.get('p/items/aa/x');
    expect(held?.bytes.length).toBe(encryptedSize(plain.length));
    expect(held?.bytes.includes('ZXB-MARKER')).toBe(false);
    expect(held?.metadata).toEqual({ sha256: 'digest-of-plain' });
    expect(await right(store.stat('p/items/aa/x'))).toMatchObject({ size: plain.length, metadata: { sha256: 'digest-of-plain' } });
    expect(await right(store.stat('p/items/aa/missing'))).toBeUndefined();
    const listed: ListedObject[] = [];
    expect(await right(store.list('p/', (o) => void listed.push(o)))).toBe(1);
    expect(listed.map((o) => [o.key, o.size])).toEqual([['p/items/aa/x', plain.length]]);
    expect((await readAll(await right(store.get('p/items/aa/x')))).equals(plain)).toBe(true);
  });

  it('an empty object round-trips', async () => {
    await right(store.put('e', streamOf(Buffer.alloc(0)), 0, {}));
    expect(inner.objects.get('e')?.bytes.length).toBe(encryptedSize(0));
    expect((await readAll(await right(store.get('e')))).length).toBe(0);
  });

  it('get with another key is a Left (WrongKey) before any byte is read', async () => {
    await right(store.put('k', streamOf(pseudoRandomBytes(100_000, 2)), 100_000, {}));
    const e = await left(makeEncryptedObjectStore(inner, keyOf(10)).get('k'));
    expect(e._tag).toBe('VolumeIOError');
    expect(encryptionErrorOf(e)).toMatchObject({ _tag: 'WrongKey', found: KEY.id, expected: keyOf(10).id });
    expect(String((e.cause as Error).message)).toContain('wrong key');
  });

  it('get of an object written without encryption is a Left (NotEncrypted); a stat of an impossible size fails', async () => {
    const plain = mailLikeText(1000, 3);
    await right(inner.put('raw', Readable.from([plain]), plain.length, {}));
    expect(encryptionErrorOf(await left(store.get('raw')))?._tag).toBe('NotEncrypted');
    // Most sizes are possible ciphertext sizes; one shorter than header + tag is not.
    await right(inner.put('tiny', Readable.from([Buffer.from('0123456789')]), 10, {}));
    expect(encryptionErrorOf(await left(store.stat('tiny')))?._tag).toBe('CiphertextCorrupt');
    // A listing is of keys: it still lists both (and their reads fail).
    const listed: ListedObject[] = [];
    await right(store.list('', (o) => void listed.push(o)));
    expect(listed.map((o) => o.key)).toEqual(['raw', 'tiny']);
  });

  it('a damaged chunk fails the get stream with CiphertextCorrupt', async () => {
    const plain = pseudoRandomBytes(2 * CHUNK_SIZE + 5, 4);
    await right(store.put('d', streamOf(plain), plain.length, {}));
    const o = inner.objects.get('d');
    if (o === undefined) throw new Error('not stored');
    o.bytes = Buffer.from(o.bytes);
    const at = HEADER_SIZE + CHUNK_SIZE + 20;
    o.bytes[at] = (o.bytes[at] ?? 0) ^ 4;
    const body = await right(store.get('d'));
    const err = await readAll(body).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(encryptionErrorOf(err)?._tag).toBe('CiphertextCorrupt');
  });

  it('a failing body fails the put and stores nothing', async () => {
    const body = new Readable({ read: () => undefined });
    body.push(Buffer.alloc(1000));
    setTimeout(() => body.destroy(new Error('source gone')), 5);
    await left(store.put('f', body, 5000, {}));
    expect(inner.objects.has('f')).toBe(false);
  });

  it('store errors keep their tags through the wrapper', async () => {
    inner.fault = (op, key) => unavailable(op, key);
    expect((await left(store.get('x')))._tag).toBe('VolumeUnavailable');
    expect((await left(store.stat('x')))._tag).toBe('VolumeUnavailable');
    inner.fault = () => undefined;
    expect((await left(store.get('nothing-here')))._tag).toBe('ObjectNotFound');
  });

  it('withEncryption loads the key file and checks its id', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'zxb-enc-store-'));
    try {
      const file = path.join(dir, 'k');
      writeFileSync(file, `${Buffer.alloc(32, 9).toString('base64')}\n`, { mode: 0o600 });
      expect(await right(withEncryption(inner, undefined))).toBe(inner);
      const wrapped = await right(withEncryption(inner, { keyFile: file, keyId: KEY.id }));
      await right(wrapped.put('w', streamOf(Buffer.from('hello')), 5, {}));
      expect((await readAll(await right(store.get('w')))).toString()).toBe('hello');
      const e = await left(withEncryption(inner, { keyFile: file, keyId: '0123456789abcdef' }));
      expect(e).toMatchObject({ _tag: 'KeyFileError', key: file });
      expect(String((e as { reason: string }).reason)).toContain('0123456789abcdef');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
