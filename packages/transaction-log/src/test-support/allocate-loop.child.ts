// Crash-test child: allocates transaction ids forever and prints each range as "<first> <count>".
import { openTxIdAllocator } from '../index';

const [dir, blockArg] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: allocate-loop <dir> <reserve block>');

const main = async (): Promise<void> => {
  const opened = await openTxIdAllocator(dir, { reserveBlock: Number(blockArg ?? '50') })();
  if (opened._tag === 'Left') throw new Error(opened.left.message);
  for (let n = 0; ; n++) {
    const count = 1 + (n % 4);
    const r = await opened.right.allocate(count)();
    if (r._tag === 'Left') throw new Error(r.left.message);
    process.stdout.write(`${r.right} ${count}\n`);
    // Yield now and then so the parent's kill lands between and during reservations.
    if (n % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
};

main().catch((e: unknown) => {
  process.stderr.write(`allocate-loop: ${String(e)}\n`);
  process.exit(1);
});
