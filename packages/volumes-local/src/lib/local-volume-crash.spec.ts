import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Digest } from '@zxbackup/volume-contract';
import { expectRight, readAll } from '@zxbackup/volume-contract/testing';
import { makeLocalVolume } from '../index';
import { blobContent } from './kill-writer.fixture';
import { blobsInShards, filesInShards, tempFilesOf, writerMarksOf } from './temp-listing.fixture';

interface Reported {
  readonly flushed: Digest[];
  readonly pending: Digest[];
}

// The writer is a real process (ts-node on our sources), so SIGKILL stops it wherever it is: no
// exit handler, no finally block runs. One process covers the three moments, to pay its start once.
const runAndKillWriter = async (roots: readonly string[]): Promise<{ reported: Reported; tempSizeAtKill: number }> => {
  const packageDir = path.join(__dirname, '../..');
  const child = spawn(
    process.execPath,
    ['--conditions=@zxbackup/source', '-r', 'ts-node/register/transpile-only', path.join(__dirname, 'kill-writer.fixture.ts'), ...roots],
    {
      env: {
        ...process.env,
        TS_NODE_PROJECT: path.join(packageDir, 'tsconfig.spec.json'),
        TS_NODE_COMPILER_OPTIONS: JSON.stringify({ rootDir: path.join(packageDir, '../..') }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const parts = out.split('\n');
      out = parts.pop() ?? '';
      lines.push(...parts);
      if (lines.includes('streaming')) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`writer exited early (${code ?? signal}): ${stderr}`)));
  });
  const endlessTemp = path.join(roots[2] ?? '', '.tmp');
  const temps = await fs.readdir(endlessTemp);
  if (temps.length !== 1) throw new Error(`expected one temp file while streaming, found ${temps.length}`);
  child.kill('SIGKILL');
  await exited;
  const tempSizeAtKill = (await fs.stat(path.join(endlessTemp, temps[0] ?? ''))).size;
  return { reported: JSON.parse(lines[0] ?? '') as Reported, tempSizeAtKill };
};


describe('a writer killed with SIGKILL', () => {
  let base: string;
  let flushedRoot: string;
  let pendingRoot: string;
  let endlessRoot: string;
  let reported: Reported;
  let tempSizeAtKill: number;

  beforeAll(async () => {
    base = await fs.mkdtemp(path.join(os.tmpdir(), 'zxb-volumes-local-crash-'));
    [flushedRoot, pendingRoot, endlessRoot] = ['flushed', 'pending', 'endless'].map((name) => path.join(base, name)) as [string, string, string];
    for (const root of [flushedRoot, pendingRoot, endlessRoot]) await fs.mkdir(root);
    ({ reported, tempSizeAtKill } = await runAndKillWriter([flushedRoot, pendingRoot, endlessRoot]));
  }, 60_000);

  afterAll(async () => {
    await fs.rm(base, { recursive: true, force: true });
  });

  it('mid-put of a large stream: nothing under any digest, and its temp file goes on reopen', async () => {
    expect(tempSizeAtKill).toBeGreaterThan(1024 * 1024);
    expect(await filesInShards(endlessRoot)).toEqual([]);
    const volume = await expectRight(makeLocalVolume({ root: endlessRoot }));
    expect(await expectRight(volume.list(() => undefined))).toBe(0);
    expect(await fs.readdir(path.join(endlessRoot, '.tmp'))).toEqual([]);
    await expectRight(volume.close());
  });

  it('after puts but before flush: nothing was promised, nothing is under a digest, and reopening sweeps the shards', async () => {
    expect(reported.pending).toHaveLength(6);
    expect(await blobsInShards(pendingRoot)).toEqual(new Set());
    // The writer's temp files are in the shards (their digests were known), and its mark says so.
    expect(await tempFilesOf(pendingRoot)).toHaveLength(6);
    expect(await writerMarksOf(pendingRoot)).toHaveLength(1);
    const volume = await expectRight(makeLocalVolume({ root: pendingRoot }));
    for (const digest of reported.pending) expect(await expectRight(volume.has(digest))).toBe(false);
    expect(await filesInShards(pendingRoot)).toEqual([]);
    expect(await fs.readdir(path.join(pendingRoot, '.tmp'))).toEqual([]);
    await expectRight(volume.close());
  });

  it('after flush: every blob is there, whole', async () => {
    const volume = await expectRight(makeLocalVolume({ root: flushedRoot }));
    expect(await expectRight(volume.list(() => undefined))).toBe(3);
    for (const [i, digest] of reported.flushed.entries()) {
      expect((await readAll(await expectRight(volume.get(digest)))).equals(blobContent(i))).toBe(true);
    }
    await expectRight(volume.close());
  });
});
