import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/Either';
import * as O from 'fp-ts/Option';
import { validateHistory } from './history';
import { openMetadataStore } from './metadata-store';
import { BATCH } from './crash-child.spec-helper';
import { acc, run } from './util.spec-helper';

const root = join(__dirname, '..', '..');

/** Run the child until it reported `batches` commits, then SIGKILL it at once. */
const runAndKill = (dir: string, batches: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', join(__dirname, 'crash-child.spec-helper.ts'), dir], {
      cwd: root,
      // Nx exports its own TS_NODE_COMPILER_OPTIONS (module resolution node10, which TypeScript 6
      // refuses) to the processes it runs: the child must use this package's settings only.
      env: { ...process.env, TS_NODE_PROJECT: join(root, 'tsconfig.lib.json'), TS_NODE_COMPILER_OPTIONS: '{}' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let reported = -1;
    let stderr = '';
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) reported = Number(l);
      if (reported + 1 >= batches && !child.killed) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(reported + 1);
      else reject(new Error(`child exited with ${code}: ${stderr}`));
    });
  });

describe('metadata store crash safety (classic-level)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'zxb-crash-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a SIGKILLed writer leaves whole batches only, stats included', async () => {
    const account = acc('crash@example.test');
    // Killed while it writes as fast as it can, most likely in the middle of a batch.
    const confirmed = await runAndKill(dir, 60);
    const store = await run(openMetadataStore(dir));
    let transactions = 0;
    let lastTx = 0;
    const items = await run(
      store.forEachHistory(account, (_a, _i, h) => {
        expect(E.isRight(validateHistory(h))).toBe(true);
        transactions += h.length;
        lastTx = Math.max(lastTx, ...h.map((e) => e.tx));
      }),
    );
    const stat = O.toNullable(await run(store.getAccountStat(account)));
    // every head names the last row of its item (it is read with that row and checked against it)
    const current = new Map<string, number>();
    await run(store.forEachItemAt(account, 'now', (id, s) => void current.set(id, s.tx)));
    const lastOf = new Map<string, number>();
    await run(store.forEachHistory(account, (_a, id, h) => void lastOf.set(id, h[h.length - 1]?.tx ?? 0)));
    await run(store.close());
    expect(current).toEqual(lastOf);

    expect(items).toBe(25);
    expect(transactions % BATCH).toBe(0); // no half batch
    const batches = transactions / BATCH;
    expect(batches).toBeGreaterThanOrEqual(confirmed);
    expect(stat?.cursor).toEqual({ batch: batches - 1 }); // the stat came with its batch
    expect(stat?.lastTx).toBe(lastTx);
    expect(lastTx).toBe(transactions);
  }, 120_000);
});
