/*
 * Benchmark of the item-store metadata store on classic-level (a temp dir, removed after).
 *   npx ts-node --transpile-only tools/bench/item-store.bench.ts
 * 1. appends/s: 1,000,000 transactions over 10,000 items (10 accounts), commits of 1,000 changes.
 * 2. forEachItemAt(account, T) over one account of 100,000 items, T in the past (3 entries each).
 * Targets: >= 50,000 appends/s, < 2 s. Wall figures depend on what else the machine runs (the
 * load average is printed before and after); CPU seconds (all threads of the process, LevelDB's
 * included) compare better between runs on a busy machine.
 */
import * as E from 'fp-ts/Either';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AccountId, ItemChange, ItemId, MetadataStore, TxId } from '../../packages/item-store/src/index';
import { openMetadataStore } from '../../packages/item-store/src/index';

const TOTAL = Number(process.env.BENCH_TOTAL ?? 1_000_000);
const ITEMS = 10_000;
const ACCOUNTS = 10;
const BATCH = 1_000;
const BIG_ITEMS = Number(process.env.BENCH_BIG_ITEMS ?? 100_000);
const BASE = Date.UTC(2026, 0, 1);

const must = async <A>(te: () => Promise<E.Either<unknown, A>>): Promise<A> => {
  const r = await te();
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
  return r.right;
};

const message = (i: number, n: number) => ({
  kind: 'message' as const,
  folderId: `f${i % 7}` as ItemId,
  flags: n % 2 === 0 ? ['\\Seen'] : ['\\Flagged', '\\Seen'],
  receivedAt: BASE - i * 1000,
  sourceKey: `1767225600.M${i}P1234.host,S=4213`,
  subject: `Quarterly report ${i} (revision ${n})`,
  from: `sender${i % 97}@example.test`,
  to: [`user${i % 13}@example.test`],
  messageId: `<${i}.bench@example.test>`,
});

const digest = (i: number) => (i.toString(16).padStart(8, '0') + 'ab').repeat(7).slice(0, 64);

/** Wall and CPU seconds (CPU: all threads of the process, LevelDB's compactions included). */
const clock = () => {
  const w0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  return () => {
    const c = process.cpuUsage(c0);
    return { wall: Number(process.hrtime.bigint() - w0) / 1e9, cpu: (c.user + c.system) / 1e6 };
  };
};
const fmt = (t: { wall: number; cpu: number }) => `${t.wall.toFixed(2)} s wall, ${t.cpu.toFixed(2)} s CPU`;

const appends = async (store: MetadataStore): Promise<{ wall: number; cpu: number }> => {
  let tx = 0;
  const stop = clock();
  for (let b = 0; b < TOTAL / BATCH; b++) {
    const changes: ItemChange[] = [];
    for (let j = 0; j < BATCH; j++) {
      const n = b * BATCH + j;
      const i = n % ITEMS;
      changes.push({
        kind: 'upsert',
        account: `user${i % ACCOUNTS}@bench.test` as AccountId,
        itemId: `m${i}` as ItemId,
        tx: ++tx as TxId,
        at: BASE + n * 10,
        meta: message(i, Math.floor(n / ITEMS)),
        digest: digest(i),
        size: 4213,
      });
    }
    const r = await must(store.commit({ changes }));
    if (r.recorded !== BATCH) throw new Error(`recorded ${r.recorded}`);
  }
  return stop();
};

const fillBig = async (store: MetadataStore, account: AccountId): Promise<{ past: number }> => {
  let tx = 10_000_000;
  const at = (round: number) => BASE + 1e9 + round * 1e6;
  for (let round = 0; round < 3; round++) {
    for (let from = 0; from < BIG_ITEMS; from += BATCH) {
      const changes: ItemChange[] = [];
      for (let i = from; i < Math.min(from + BATCH, BIG_ITEMS); i++) {
        changes.push({ kind: 'upsert', account, itemId: `big${i}` as ItemId, tx: ++tx as TxId, at: at(round) + i, meta: message(i, round), digest: digest(i), size: 4213 });
      }
      await must(store.commit({ changes }));
    }
  }
  return { past: at(1) + BIG_ITEMS + 10 }; // every item is in its second state
};

const load = () => `load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`;

const main = async () => {
  console.log(`start: ${load()}`);
  const dir = mkdtempSync(join(tmpdir(), 'zxb-bench-'));
  try {
    const store = await must(openMetadataStore(join(dir, 'metadata')));
    const s = await appends(store);
    console.log(
      `appends: ${TOTAL} transactions over ${ITEMS} items in ${fmt(s)} = ${Math.round(TOTAL / s.wall)} appends/s (target >= 50000; ${Math.round(TOTAL / s.cpu)} per CPU-second)`,
    );

    const big = 'big@bench.test' as AccountId;
    const f = clock();
    const { past } = await fillBig(store, big);
    const fs = f();
    console.log(`fill: ${BIG_ITEMS} items x 3 transactions in ${fmt(fs)} = ${Math.round((3 * BIG_ITEMS) / fs.wall)} appends/s`);

    for (const at of [past, 'now'] as const) {
      const q = clock();
      let seen = 0;
      const n = await must(store.forEachItemAt(big, at, (_id, state) => {
        if (at !== 'now' && state.tx <= 10_000_000 + BIG_ITEMS) throw new Error('wrong state');
        seen++;
      }));
      const qs = q();
      if (n !== BIG_ITEMS || seen !== BIG_ITEMS) throw new Error(`visited ${n}/${seen}`);
      console.log(`forEachItemAt(${BIG_ITEMS} items, ${at === 'now' ? "'now'" : 'T in the past'}): ${fmt(qs)}${at === 'now' ? '' : ' (target < 2 s)'}`);
    }
    await must(store.close());
    console.log(`end: ${load()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
