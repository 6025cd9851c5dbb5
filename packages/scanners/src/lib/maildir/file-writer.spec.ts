import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FILE_WRITER_MAX_BYTES, FileWriteError, fileWriter, stopFileWriter } from './file-writer';
import { makeTempDirs } from './spec-support';

const tmp = makeTempDirs();
afterEach(tmp.cleanup);
afterAll(stopFileWriter);

describe('file writer thread', () => {
  it('creates each file with its chunks, mode and mtime, also when many are in flight and the shared buffer wraps', async () => {
    const dir = tmp.make();
    // ~40 MiB in flight at once through an 8 MiB ring: writers wait for room, none overwrites another's bytes.
    const files = Array.from({ length: 40 }, (_, i) => {
      const size = i % 5 === 0 ? FILE_WRITER_MAX_BYTES : 1 + ((i * 7919) % (1024 * 1024));
      const bytes = randomBytes(size);
      return { path: join(dir, `f${i}`), bytes, mtimeMs: 1_600_000_000_000 + i * 1000 };
    });
    await Promise.all(
      files.map((f) =>
        fileWriter.write({ path: f.path, chunks: [f.bytes.subarray(0, 100), f.bytes.subarray(100)], mode: 0o640, mtimeMs: f.mtimeMs }),
      ),
    );
    for (const f of files) {
      expect(readFileSync(f.path).equals(f.bytes)).toBe(true);
      const st = statSync(f.path);
      expect(st.mode & 0o777).toBe(0o640 & ~process.umask());
      expect(st.mtimeMs).toBe(f.mtimeMs);
    }
  });

  it('never touches an existing file, and says which one it could not create', async () => {
    const dir = tmp.make();
    const existing = join(dir, 'taken');
    writeFileSync(existing, 'keep me');
    const failure = await fileWriter.write({ path: existing, chunks: [Buffer.from('other')], mode: 0o600, mtimeMs: Date.now() }).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(FileWriteError);
    expect(failure).toMatchObject({ code: 'EEXIST', path: existing });
    expect(readFileSync(existing, 'utf8')).toBe('keep me');
    const missingDir = join(dir, 'no', 'such');
    await expect(fileWriter.write({ path: missingDir, chunks: [], mode: 0o600, mtimeMs: Date.now() })).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses more than it takes at once', async () => {
    const dir = tmp.make();
    await expect(fileWriter.write({ path: join(dir, 'big'), chunks: [Buffer.alloc(FILE_WRITER_MAX_BYTES + 1)], mode: 0o600, mtimeMs: Date.now() })).rejects.toThrow(RangeError);
  });

  it('a stopped thread fails the files in flight (EIO); the next write starts a new one', async () => {
    const dir = tmp.make();
    const inFlight = fileWriter.write({ path: join(dir, 'a'), chunks: [randomBytes(1000)], mode: 0o600, mtimeMs: Date.now() });
    await stopFileWriter();
    await expect(inFlight).rejects.toMatchObject({ code: 'EIO' });
    const bytes = randomBytes(5000);
    await fileWriter.write({ path: join(dir, 'b'), chunks: [bytes], mode: 0o600, mtimeMs: Date.now() });
    expect(readFileSync(join(dir, 'b')).equals(bytes)).toBe(true);
  });
});
