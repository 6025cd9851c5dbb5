import { parse, runMain, str } from './lib/cli';
import { snapshotMaildirTree } from './lib/maildir-snapshot';

const USAGE = `Usage: ts-node --transpile-only tools/corpus/snapshot.ts --root DIR

Prints the canonical snapshot of a Maildir++ tree as JSON: account -> folder -> sorted
[{ sha256, flags, mtimeMs }] (independent of file names and keyword letters).
`;

runMain(USAGE, () => {
  const v = parse(process.argv.slice(2), { root: { type: 'string' } });
  process.stdout.write(JSON.stringify(snapshotMaildirTree(str(v, 'root')), null, 1) + '\n');
  return 0;
});
