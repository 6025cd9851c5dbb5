import { isoDate, num, parse, runMain, str } from './lib/cli';
import { mutateTree } from './lib/mutation';

const USAGE = `Usage: ts-node --transpile-only tools/corpus/mutate.ts --root DIR --fraction F --seed S [options]

Applies realistic, deterministic changes to a Maildir++ tree made by generate.ts:
flag changes (rename of the :2, suffix; new/ -> cur/), moves to another folder (same base
name, into cur/), deletes (unlink) and new mail (new/ or cur/), about F x messages operations.
  --root DIR            the tree (<DIR>/<domain>/<user>/Maildir)
  --fraction F          operations as a fraction of the messages (0 < F <= 1; at least one)
  --seed S              any string; same tree + same arguments = same changes
  --now ISO             received date of the first new message (default: newest + 1 hour)
  --rename-folder       rename a folder with its subfolders (default Archive -> Archive2025)
  --rename-from NAME    folder to rename (decoded path, e.g. "Projects/2026")
  --rename-to NAME      its new name
  --empty-folder        delete every message of a folder (default Trash)
  --empty-name NAME     folder to empty
  --account EMAIL       account for --rename-folder / --empty-folder (default: picked by the seed)
  --json                print the full JSON summary of what changed (else one line)
`;

runMain(USAGE, () => {
  const v = parse(process.argv.slice(2), {
    root: { type: 'string' },
    fraction: { type: 'string' },
    seed: { type: 'string' },
    now: { type: 'string' },
    'rename-folder': { type: 'boolean' },
    'rename-from': { type: 'string' },
    'rename-to': { type: 'string' },
    'empty-folder': { type: 'boolean' },
    'empty-name': { type: 'string' },
    account: { type: 'string' },
    json: { type: 'boolean' },
  });
  const opt = (name: string): string | undefined => (typeof v[name] === 'string' ? (v[name] as string) : undefined);
  const now = opt('now') !== undefined ? isoDate(v, 'now', '') : undefined;
  const renameFrom = opt('rename-from');
  const renameTo = opt('rename-to');
  const emptyName = opt('empty-name');
  const account = opt('account');
  const summary = mutateTree({
    root: str(v, 'root'),
    fraction: num(v, 'fraction', undefined, (n) => n > 0 && n <= 1, 'a fraction in (0, 1]'),
    seed: str(v, 'seed'),
    ...(now !== undefined ? { now } : {}),
    renameFolder: v['rename-folder'] === true || renameFrom !== undefined,
    ...(renameFrom !== undefined ? { renameFrom } : {}),
    ...(renameTo !== undefined ? { renameTo } : {}),
    emptyFolder: v['empty-folder'] === true || emptyName !== undefined,
    ...(emptyName !== undefined ? { emptyName } : {}),
    ...(account !== undefined ? { account } : {}),
  });
  if (v['json'] === true) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  else {
    const t = summary.totals;
    const folders = [
      ...summary.renamedFolders.map((r) => `renamed ${r.account} ${r.from} -> ${r.to}`),
      ...summary.emptiedFolders.map((e) => `emptied ${e.account} ${e.folder} (${e.count})`),
    ];
    process.stdout.write(`mutated ${summary.root}: ${t.changed} flag changes, ${t.moved} moves, ${t.deleted} deletes, ${t.new} new${folders.length > 0 ? '; ' + folders.join('; ') : ''}\n`);
  }
  return 0;
});
