import { isRight, isLeft } from 'fp-ts/Either';
import { Digest, digestShard } from './digest';

describe('Digest', () => {
  it('accepts a lower-case hex sha256 and shards on its last two characters', () => {
    const raw = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    const decoded = Digest.decode(raw);
    expect(isRight(decoded)).toBe(true);
    if (isRight(decoded)) expect(digestShard(decoded.right)).toBe('55');
  });
  it('rejects upper case, short strings and non-strings', () => {
    expect(isLeft(Digest.decode('E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855'))).toBe(true);
    expect(isLeft(Digest.decode('abc'))).toBe(true);
    expect(isLeft(Digest.decode(42))).toBe(true);
  });
});
