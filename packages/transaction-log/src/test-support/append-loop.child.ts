// Crash-test child: appends to a change log forever, `inFlight` appends at a time, and
// acknowledges each durable append on stdout as "<last position> <i>,<i>,...".
import { openChangeLog } from '../index';
import { TestRecord, makeTestRecord } from './test-util';

const [dir, firstIArg, segmentBytesArg, inFlightArg] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: append-loop <dir> <first i> <segment bytes> <in flight>');
let nextI = Number(firstIArg ?? '0');
const inFlight = Number(inFlightArg ?? '4');

const main = async (): Promise<void> => {
  const opened = await openChangeLog(dir, TestRecord, { segmentBytes: Number(segmentBytesArg ?? '262144') })();
  if (opened._tag === 'Left') throw new Error(opened.left.message);
  const log = opened.right;
  const worker = async (): Promise<void> => {
    for (;;) {
      const is = Array.from({ length: 1 + (nextI % 3) }, () => nextI++);
      const r = await log.append(is.map(makeTestRecord))();
      if (r._tag === 'Left') throw new Error(r.left.message);
      process.stdout.write(`${r.right} ${is.join(',')}\n`);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
};

main().catch((e: unknown) => {
  process.stderr.write(`append-loop: ${String(e)}\n`);
  process.exit(1);
});
