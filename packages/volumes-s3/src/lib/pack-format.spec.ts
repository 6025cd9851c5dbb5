import * as E from 'fp-ts/Either';
import type { Digest } from '@zxbackup/volume-contract';
import { sha256Hex } from '@zxbackup/volume-contract/testing';
import { decodeIndexObject, encodeIndexObject, indexKey, newPackId, packIdOfIndexKey, packIdOfKey, packKey } from './pack-format';

const d1 = sha256Hex(Buffer.from('one')) as Digest;
const d2 = sha256Hex(Buffer.from('two')) as Digest;

describe('pack layout', () => {
  it('pack and index keys round-trip to the pack id, and nothing else passes for one', () => {
    const id = newPackId();
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(packKey('server1/', id)).toBe(`server1/packs/${id.slice(-2)}/${id}`);
    expect(packIdOfKey('server1/', packKey('server1/', id))).toBe(id);
    expect(packIdOfIndexKey('server1/', indexKey('server1/', id))).toBe(id);
    expect(packIdOfKey('server2/', packKey('server1/', id))).toBeUndefined();
    expect(packIdOfKey('server1/', `server1/packs/zz/${id}`)).toBeUndefined(); // wrong shard
    expect(packIdOfKey('server1/', `server1/packs/${id.slice(-2)}/${id}.tmp`)).toBeUndefined();
    expect(packIdOfIndexKey('server1/', 'server1/index/not-an-id')).toBeUndefined();
  });

  it('an index object round-trips', () => {
    const id = newPackId();
    const entries = [
      { digest: d1, offset: 0, length: 100, size: 100 },
      { digest: d2, offset: 100, length: 156, size: 100 },
    ];
    const bytes = encodeIndexObject(id, 256, 1_700_000_000_000, entries);
    expect(decodeIndexObject(id, bytes)).toEqual(E.right({ size: 256, at: 1_700_000_000_000, entries }));
  });

  it.each([
    ['not JSON', Buffer.from('{"v":1,'), 'not JSON'],
    ['another shape', Buffer.from('{"v":2,"entries":[]}'), 'not a pack index'],
    ['a bad digest', Buffer.from(JSON.stringify({ v: 1, pack: 'P', size: 10, at: 1, entries: [['xyz', 0, 1, 1]] })), 'not a pack index'],
    ['a negative offset', Buffer.from(JSON.stringify({ v: 1, pack: 'P', size: 10, at: 1, entries: [[d1, -1, 1, 1]] })), 'not a pack index'],
  ])('a damaged index object (%s) is a Left naming the problem', (_label, bytes, message) => {
    const r = decodeIndexObject('P', bytes);
    expect(E.isLeft(r) && r.left).toContain(message);
  });

  it('an index object of another pack, or with a blob beyond the pack, is refused', () => {
    const id = newPackId();
    const other = encodeIndexObject(newPackId(), 10, 1, [{ digest: d1, offset: 0, length: 10, size: 10 }]);
    const leftOf = (r: E.Either<string, unknown>): string => (E.isLeft(r) ? r.left : 'Right');
    expect(leftOf(decodeIndexObject(id, other))).toContain('describes pack');
    const beyond = encodeIndexObject(id, 10, 1, [{ digest: d1, offset: 5, length: 10, size: 10 }]);
    expect(leftOf(decodeIndexObject(id, beyond))).toContain('outside the 10 bytes');
  });
});
