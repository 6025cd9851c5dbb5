import { DEFAULT_REF_DATE } from './lib/corpus';
import { isoDate, num, parse, runMain, str } from './lib/cli';
import { generateTree } from './lib/generate-tree';

const USAGE = `Usage: ts-node --transpile-only tools/corpus/generate.ts --out DIR --messages N --domains D --users U --seed S [options]

Writes a deterministic Dovecot Maildir++ tree <DIR>/<domain>/<user>/Maildir.
  --out DIR          output directory (created; must be empty)
  --messages N       number of message files in total (shared copies included)
  --domains D        number of domains (alpha.test, beta.test, ...)
  --users U          number of users in total, spread over the domains (5 over 2 = 3 + 2)
  --seed S           any string; same arguments give byte-identical files and mtimes
  --passwd FILE      also write a Dovecot passwd-file (password of alice@alpha.test: alice-pw)
  --home-base DIR    home prefix in the passwd-file (default: absolute --out)
  --max-size BYTES   largest message (default 6000000, at least 8192)
  --ref-date ISO     received dates lie in the span before it (default ${DEFAULT_REF_DATE})
  --span-days N      length of that span (default 730)
  --shared F         fraction of files that are shared copies (default 0.07)
  --json             print a JSON summary instead of one line
`;

runMain(USAGE, () => {
  const v = parse(process.argv.slice(2), {
    out: { type: 'string' },
    messages: { type: 'string' },
    domains: { type: 'string' },
    users: { type: 'string' },
    seed: { type: 'string' },
    passwd: { type: 'string' },
    'home-base': { type: 'string' },
    'max-size': { type: 'string' },
    'ref-date': { type: 'string' },
    'span-days': { type: 'string' },
    shared: { type: 'string' },
    json: { type: 'boolean' },
  });
  const int = (n: number): boolean => Number.isInteger(n);
  const domains = num(v, 'domains', undefined, (n) => int(n) && n >= 1 && n <= 1000, 'an integer in 1..1000');
  const users = num(v, 'users', undefined, (n) => int(n) && n >= domains, 'an integer >= --domains');
  const passwd = typeof v['passwd'] === 'string' ? v['passwd'] : undefined;
  const homeBase = typeof v['home-base'] === 'string' ? v['home-base'] : undefined;
  const started = Date.now();
  const summary = generateTree({
    out: str(v, 'out'),
    messages: num(v, 'messages', undefined, (n) => int(n) && n >= 0, 'a non-negative integer'),
    domains,
    users,
    seed: str(v, 'seed'),
    ...(passwd !== undefined ? { passwd } : {}),
    ...(homeBase !== undefined ? { homeBase } : {}),
    maxSize: num(v, 'max-size', 6_000_000, (n) => int(n) && n >= 8192, 'an integer >= 8192'),
    refDate: isoDate(v, 'ref-date', DEFAULT_REF_DATE),
    spanDays: num(v, 'span-days', 730, (n) => int(n) && n >= 1, 'a positive integer'),
    sharedFraction: num(v, 'shared', 0.07, (n) => n >= 0 && n < 0.5, 'a fraction in [0, 0.5)'),
  });
  const elapsedMs = Date.now() - started;
  if (v['json'] === true) {
    process.stdout.write(JSON.stringify({ ...summary, elapsedMs }, null, 2) + '\n');
  } else {
    process.stdout.write(
      `generated ${summary.messages} messages (${(summary.bytes / 1e6).toFixed(1)} MB, median ${summary.sizes.median} B, mean ${summary.sizes.mean} B, ` +
        `${summary.sharedCopies} shared copies) for ${summary.accounts.length} accounts into ${summary.out} in ${(elapsedMs / 1000).toFixed(1)} s\n`,
    );
  }
  return 0;
});
