import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as O from 'fp-ts/Option';
import type { AccountId, MetadataStore } from '@zxbackup/item-store';
import { openMetadataStore } from '@zxbackup/item-store';
import { openChangeLog, openTxIdAllocator } from '@zxbackup/transaction-log';
import { makeMaildirSource } from '../maildir/maildir-source';
import { makeFileVolume } from '../testing/file-volume';
import { makeTempDir, unwrap } from '../testing/harness';
import { maildirOf, setFlagLetters, treeSnapshot } from '../testing/maildir-tree';
import { currentItems, storeSnapshot } from '../testing/store-snapshot';
import { messageIdFor } from './ids';
import { LiveChangeRecord, startRealTimeScanner } from './real-time-scanner';
import { makeScanEngine } from './smart-scan';

jest.setTimeout(60_000);

const ALICE = 'alice@example.test' as AccountId;

/** Writes `n` messages spread over INBOX and two folders, straight into the tree. */
const generateTree = (root: string, n: number): string[] => {
  const maildir = maildirOf(root, ALICE);
  const keys = ['', '.Lists', '.Lists.Dev'];
  for (const k of keys) for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, k, sub), { recursive: true });
  const bases: string[] = [];
  for (let i = 0; i < n; i++) {
    const base = `17000${String(i).padStart(5, '0')}.M${i}P1.host`;
    const file = join(maildir, keys[i % 3] as string, 'cur', `${base}:2,${i % 2 === 0 ? 'S' : ''}`);
    writeFileSync(file, `Subject: message ${i}\r\nMessage-ID: <${i}@gen>\r\n\r\n${'body line\r\n'.repeat(20 + (i % 50))}`);
    utimesSync(file, 1_700_000_000 + i, 1_700_000_000 + i);
    bases.push(base);
  }
  return bases;
};

const startChild = (args: string[]): { child: ChildProcess; lines: string[]; waitFor: (pred: (lines: string[]) => boolean) => Promise<void> } => {
  const packageDir = join(__dirname, '../../..');
  const child = spawn(process.execPath, ['--conditions=@zxbackup/source', '-r', 'ts-node/register/transpile-only', join(__dirname, 'kill-scan.fixture.ts'), ...args], {
    env: {
      ...process.env,
      TS_NODE_PROJECT: join(packageDir, 'tsconfig.spec.json'),
      TS_NODE_COMPILER_OPTIONS: JSON.stringify({ rootDir: join(packageDir, '../..') }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let stderr = '';
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const waitFor = (pred: (l: string[]) => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (pred(lines)) {
          clearInterval(timer);
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(timer);
          reject(new Error(`child exited ${child.exitCode}: ${stderr} ${lines.join('|')}`));
        }
      }, 5);
    });
  return { child, lines, waitFor };
};

const kill = async (child: ChildProcess): Promise<void> => {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
};

describe('kill tests', () => {
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const dirs = () => {
    const t = makeTempDir('zxb-kill-');
    cleanups.push(t.cleanup);
    const d = { root: join(t.dir, 'tree'), store: join(t.dir, 'metadata'), volume: join(t.dir, 'items'), tx: join(t.dir, 'tx'), log: join(t.dir, 'changes') };
    mkdirSync(d.root, { recursive: true });
    return d;
  };

  it('a SmartScan killed mid-way and rerun records nothing twice and loses nothing', async () => {
    const d = dirs();
    const bases = generateTree(d.root, 300);
    const { child, waitFor } = startChild(['scan', d.root, d.store, d.volume, d.tx]);
    await waitFor((l) => l.includes('commit 3'));
    await kill(child);

    const store = await unwrap(openMetadataStore(d.store));
    cleanups.push(async () => void (await store.close()()));
    const partial = await currentItems(store, ALICE);
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(300);
    expect(O.toUndefined(await unwrap(store.getAccountStat(ALICE)))?.cursor).toBeUndefined();

    const txIds = await unwrap(openTxIdAllocator(d.tx));
    cleanups.push(async () => void (await txIds.close()()));
    const volume = makeFileVolume(d.volume);
    const summary = await unwrap(makeScanEngine({ store, volume, txIds, source: makeMaildirSource({ root: d.root }) }).smartScan());
    expect(summary.failures).toEqual([]);
    expect(summary.created).toBe(300 + 3 + 1 - partial.size);
    expect(await storeSnapshot(store, volume, ALICE, 'now')).toEqual(await treeSnapshot(d.root, ALICE));
    const items = await currentItems(store, ALICE);
    expect(items.size).toBe(1 + 3 + 300);
    for (const base of bases) expect(items.has(messageIdFor(ALICE, base))).toBe(true);
    for (const id of items.keys()) {
      const h = await unwrap(store.getHistory(ALICE, id));
      expect(O.isSome(h) && h.value.length).toBe(1);
    }
  });

  it('the Real Time Scanner killed after the log append, before the commit, applies the change on restart', async () => {
    const d = dirs();
    const [base] = generateTree(d.root, 6) as [string];
    const setup = async (): Promise<void> => {
      const store = await unwrap(openMetadataStore(d.store));
      const txIds = await unwrap(openTxIdAllocator(d.tx));
      await unwrap(makeScanEngine({ store, volume: makeFileVolume(d.volume), txIds, source: makeMaildirSource({ root: d.root }) }).smartScan());
      await unwrap(txIds.close());
      await unwrap(store.close());
    };
    await setup();
    const id = messageIdFor(ALICE, base);

    const { child, waitFor } = startChild(['live', d.root, d.store, d.volume, d.tx, d.log]);
    await waitFor((l) => l.includes('ready'));
    const before = Date.now();
    await setFlagLetters(maildirOf(d.root, ALICE), '', base, 'FS');
    await waitFor((l) => l.some((x) => x.startsWith('appended')) && l.includes('committing'));
    const after = Date.now();
    await kill(child);

    const store: MetadataStore = await unwrap(openMetadataStore(d.store));
    cleanups.push(async () => void (await store.close()()));
    const stale = await unwrap(store.getHistory(ALICE, id));
    expect(O.isSome(stale) && stale.value.length).toBe(1);
    const txIds = await unwrap(openTxIdAllocator(d.tx));
    cleanups.push(async () => void (await txIds.close()()));
    const changeLog = await unwrap(openChangeLog(d.log, LiveChangeRecord));
    cleanups.push(async () => void (await changeLog.close()()));
    expect(await unwrap(changeLog.checkpointed())).toBe(0);

    const rts = await unwrap(startRealTimeScanner({ store, volume: makeFileVolume(d.volume), txIds, source: makeMaildirSource({ root: d.root }), changeLog }));
    await rts.stop();
    const h = await unwrap(store.getHistory(ALICE, id));
    const lastEntry = O.isSome(h) ? h.value[h.value.length - 1] : undefined;
    expect(lastEntry).toMatchObject({ op: 'update', flags: ['\\Flagged', '\\Seen'] });
    expect(lastEntry?.start).toBeGreaterThanOrEqual(before);
    expect(lastEntry?.start).toBeLessThanOrEqual(after);
    expect(await unwrap(changeLog.checkpointed())).toBe(changeLog.end());
  });
});
