import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DEFAULT_REF_DATE, KEYWORD_NAMES } from './lib/corpus';
import { generateTree } from './lib/generate-tree';
import { flagsOfLetters, formatKeywords, lettersOfFlags, listMaildirTree, parseMessageName, readKeywords, sha256File, type KeywordTable } from './lib/maildir';
import { diffSnapshots, snapshotFromListing, snapshotMaildirTree } from './lib/maildir-snapshot';
import { decodeMUtf7, encodeMUtf7, folderDirName, folderOfDirName } from './lib/mutf7';
import { applyMutationSummary, mutateTree, type MutationSummary } from './lib/mutation';
import { sha512Crypt } from './lib/sha512-crypt';

/*
 * Self-test of the corpus tools: generates a small corpus twice (CLI and library) and compares
 * the trees byte for byte (names, contents, mtimes), checks Maildir++ invariants, mutates it
 * and checks that the snapshot moves exactly as the mutation summary says, and that the
 * snapshot ignores what it should (base names, keyword letters) and nothing else.
 * Exit 0 when every check passes. `--keep` leaves the temp dir for inspection.
 */

let failures = 0;
const check = (ok: boolean, what: string, detail?: unknown): void => {
  if (ok) process.stdout.write(`ok - ${what}\n`);
  else {
    failures++;
    process.stdout.write(`not ok - ${what}${detail !== undefined ? `\n  ${typeof detail === 'string' ? detail : JSON.stringify(detail)}` : ''}\n`);
  }
};
const throws = (f: () => unknown): boolean => {
  try {
    f();
    return false;
  } catch {
    return true;
  }
};

const tsNode = join(__dirname, '..', '..', 'node_modules', 'ts-node', 'dist', 'bin.js');
const run = (script: string, args: ReadonlyArray<string>): string => {
  const r = spawnSync(process.execPath, [tsNode, '--transpile-only', join(__dirname, script), ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} exited ${String(r.status)}: ${r.stderr}`);
  return r.stdout;
};

/** Every file and directory under root: relative path -> "type size mtime sha256". */
const fingerprint = (root: string): Map<string, string> => {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      const st = statSync(p);
      if (e.isDirectory()) {
        out.set(relative(root, p) + '/', `d ${st.mtimeMs}`);
        walk(p);
      } else out.set(relative(root, p), `f ${st.size} ${st.mtimeMs} ${sha256File(p)}`);
    }
  };
  walk(root);
  return out;
};
const sameFingerprint = (a: Map<string, string>, b: Map<string, string>): string | undefined => {
  if (a.size !== b.size) return `${a.size} vs ${b.size} entries`;
  for (const [k, v] of a) if (b.get(k) !== v) return `${k}: ${v} vs ${String(b.get(k))}`;
  return undefined;
};

const unitChecks = (): void => {
  const vectors: Array<[string, string]> = [
    ['Entwürfe', 'Entw&APw-rfe'],
    ['R&D', 'R&-D'],
    ['~peter/mail/台北/日本語', '~peter/mail/&U,BTFw-/&ZeVnLIqe-'],
    ['お知らせ', '&MEp35TCJMFs-'],
    ['a🎉b', 'a&2DzfiQ-b'],
    ['&&', '&-&-'],
  ];
  for (const [name, enc] of vectors) check(encodeMUtf7(name) === enc && decodeMUtf7(enc) === name, `mUTF-7 ${name} <-> ${enc}`, encodeMUtf7(name));
  for (const bad of ['&Jjo!', '&U,BTFw', '&AGE-', 'Entwürfe', '&U/BTFw-', '&A-']) check(throws(() => decodeMUtf7(bad)), `mUTF-7 rejects ${JSON.stringify(bad)}`);
  check(folderDirName('Projects/2026') === '.Projects.2026' && folderOfDirName('.Projects.2026') === 'Projects/2026', 'Maildir++ folder Projects/2026');
  check(folderOfDirName('.Kunden.Z&APw-rich') === 'Kunden/Zürich' && folderDirName('INBOX') === '', 'Maildir++ non-ASCII folder and INBOX');
  check(throws(() => folderDirName('a.b')), 'a dot in a folder name is refused');
  check(
    sha512Crypt('Hello world!', 'saltstring') === '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
    'SHA512-CRYPT matches the reference vector',
  );
  const table: KeywordTable = ['todo', 'work'];
  const letters = lettersOfFlags(['\\Seen', 'work', '$Forwarded', 'new-kw', '\\Answered'], table);
  check(letters === 'PRSbc' && table[2] === 'new-kw', 'flags -> letters (sorted, keyword table grows)', letters);
  check(flagsOfLetters('PRSbcz', table).join(' ') === '$Forwarded \\Answered \\Seen new-kw work', 'letters -> flags (unknown letter dropped)', flagsOfLetters('PRSbcz', table));
  const p = parseMessageName('1732608000.M1P2.host,S=10,W=11:2,FS');
  check(p.base === '1732608000.M1P2.host,S=10,W=11' && p.letters === 'FS', 'parse cur/ name');
  check(parseMessageName('1732608000.M1P2.host,S=10,W=11').letters === '', 'parse new/ name');
};

const invariantChecks = (root: string, summary: { messages: number; bytes: number; accounts: Array<{ account: string }> }, maxSize: number): void => {
  const listing = listMaildirTree(root, { hash: true });
  const msgs = Object.values(listing).flatMap((a) => Object.values(a.folders).flatMap((f) => f.messages.map((m) => ({ m, maildir: a.maildir }))));
  check(msgs.length === summary.messages, `summary counts every file (${msgs.length})`);
  check(msgs.reduce((n, x) => n + x.m.size, 0) === summary.bytes, 'summary bytes = sum of file sizes');
  const bad: string[] = [];
  let inNew = 0;
  let encoded = 0;
  let keywords = 0;
  let forwarded = 0;
  for (const { m, maildir } of msgs) {
    const path = join(maildir, m.file);
    const buf = readFileSync(path);
    const name = m.file.split('/').pop() as string;
    const sm = /^(\d+)\.M\d+P\d+\.[a-z.]+,S=(\d+),W=(\d+)$/.exec(m.base);
    let lf = 0;
    for (const b of buf) if (b === 10) lf++;
    if (sm === null) bad.push(`bad base ${m.base}`);
    else {
      if (Number(sm[2]) !== buf.length) bad.push(`S= wrong in ${m.file}`);
      if (Number(sm[3]) !== buf.length + lf) bad.push(`W= wrong in ${m.file}`);
      if (Number(sm[1]) * 1000 !== m.mtimeMs) bad.push(`mtime differs from name in ${m.file}`);
    }
    if (m.dir === 'new' && name.includes(':')) bad.push(`info in new/ ${m.file}`);
    if (m.dir === 'cur') {
      const { letters } = parseMessageName(name);
      if (!name.includes(':2,') || [...letters].sort().join('') !== letters) bad.push(`letters not sorted ${m.file}`);
      const table = readKeywords(join(maildir, m.file, '..', '..'));
      for (const c of letters) if (c >= 'a' && c <= 'z' && table[c.charCodeAt(0) - 97] === undefined) bad.push(`unknown keyword letter ${c} in ${m.file}`);
      if (/[a-z]/.test(letters)) keywords++;
      if (letters.includes('P')) forwarded++;
    }
    if (buf.length > maxSize) bad.push(`${m.file} larger than --max-size`);
    if (buf.includes('\r\n')) bad.push(`CRLF in ${m.file}`);
    const head = buf.subarray(0, buf.indexOf('\n\n')).toString('latin1');
    for (const h of ['From: ', 'Date: ', 'Message-ID: ', 'MIME-Version: 1.0', 'Subject:']) if (!head.includes('\n' + h) && !head.startsWith(h)) bad.push(`no ${h} in ${m.file}`);
    if (/\nSubject: =\?UTF-8\?[BQ]\?/.test(head)) encoded++;
    if (m.dir === 'new') inNew++;
  }
  check(bad.length === 0, 'every message: name, S=, W=, mtime, flags, size cap, headers', bad.slice(0, 10));
  check(inNew > 0 && encoded > 0 && keywords > 0 && forwarded > 0, `some new/ (${inNew}), encoded subjects (${encoded}), keywords (${keywords}), P (${forwarded})`);
  const shaAccounts = new Map<string, Set<string>>();
  for (const { m } of msgs) shaAccounts.set(m.sha256 as string, (shaAccounts.get(m.sha256 as string) ?? new Set()).add(m.account));
  const shared = [...shaAccounts.values()].filter((s) => s.size > 1).length;
  check(shared > 0, `identical messages in several accounts (${shared})`);
  for (const a of summary.accounts) {
    const folders = Object.keys(listing[a.account]?.folders ?? {});
    const need = ['INBOX', 'Sent', 'Drafts', 'Trash', 'Archive', 'Projects/2026', 'Entwürfe'];
    check(
      need.every((f) => folders.includes(f)),
      `${a.account} has ${need.join(', ')}`,
      folders,
    );
  }
};

const passwdChecks = (file: string, tree: string, root: string): void => {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const accounts = Object.keys(listMaildirTree(tree));
  check(lines.length === accounts.length, `passwd-file has one line per account (${lines.length})`);
  for (const line of lines) {
    const m = /^([^:@]+)@([^:]+):\{SHA512-CRYPT\}(\$6\$([^$]+)\$[./0-9A-Za-z]{86}):5000:5000::([^:]+)::userdb_quota_rule=\*:storage=\d+[MG]$/.exec(line);
    const ok = m !== null && sha512Crypt(`${m[1]}-pw`, m[4] as string) === m[3] && m[5] === join(root, m[2] as string, m[1] as string);
    check(ok, `passwd line for ${line.slice(0, line.indexOf(':'))}`, line);
  }
};

const mutationChecks = (a: string, b: string): void => {
  const before = listMaildirTree(a, { hash: true });
  const args = ['--fraction', '0.1', '--seed', 'm1', '--rename-folder', '--empty-folder', '--json'];
  const summary = JSON.parse(run('mutate.ts', ['--root', a, ...args])) as MutationSummary;
  const t = summary.totals;
  check(t.changed > 0 && t.moved > 0 && t.deleted > 0 && t.new > 0, `mutate did every kind of change (${JSON.stringify(t)})`);
  check(summary.renamedFolders.length > 0 && summary.emptiedFolders.length === 1, 'mutate renamed a folder and emptied one', [summary.renamedFolders, summary.emptiedFolders]);
  const gone: string[] = [];
  for (const [account, c] of Object.entries(summary.accounts)) {
    const maildir = before[account]?.maildir as string;
    for (const x of [...c.changed, ...c.moved]) if (!existsSync(join(maildir, x.toFile)) || existsSync(join(maildir, x.fromFile))) gone.push(x.toFile);
    for (const x of c.new) if (!existsSync(join(maildir, x.file))) gone.push(x.file);
    for (const x of c.deleted) if (existsSync(join(maildir, x.file))) gone.push(x.file);
  }
  check(gone.length === 0, 'summary file names match the disk', gone.slice(0, 5));
  const expected = snapshotFromListing(applyMutationSummary(before, summary));
  const actual = snapshotMaildirTree(a);
  const diff = diffSnapshots(expected, actual);
  check(diff.length === 0, 'snapshot after mutate = snapshot before + summary', diff.slice(0, 10).join('\n  '));
  check(diffSnapshots(snapshotFromListing(before), actual).length > 0, 'snapshot after mutate differs from before');

  const summaryB = mutateTree({ root: b, fraction: 0.1, seed: 'm1', renameFolder: true, emptyFolder: true });
  check(JSON.stringify({ ...summaryB, root: '' }) === JSON.stringify({ ...summary, root: '' }), 'mutate is deterministic (same summary)');
  const fa = fingerprint(a);
  const fb = fingerprint(b);
  // Directory mtimes move with every rename; compare files only.
  const files = (f: Map<string, string>): Map<string, string> => new Map([...f].filter(([k]) => !k.endsWith('/')));
  check(sameFingerprint(files(fa), files(fb)) === undefined, 'mutate is deterministic (same files, bytes, mtimes)', sameFingerprint(files(fa), files(fb)));

  const cli = JSON.parse(run('snapshot.ts', ['--root', a])) as unknown;
  check(JSON.stringify(cli) === JSON.stringify(actual), 'snapshot CLI prints the library snapshot');
};

/** The snapshot must ignore base names and keyword letters, and see flags, dates and bytes. */
const strictnessChecks = (root: string): void => {
  const base = snapshotMaildirTree(root);
  const listing = listMaildirTree(root);
  const account = Object.keys(listing).sort()[0] as string;
  const acc = listing[account];
  const inbox = acc?.folders['INBOX'];
  const m = inbox?.messages.find((x) => x.dir === 'cur' && x.flags.includes('\\Seen'));
  if (acc === undefined || inbox === undefined || m === undefined) {
    check(false, 'strictness checks found a seen INBOX message');
    return;
  }
  const p = join(acc.maildir, m.file);
  const name = m.file.split('/').pop() as string;
  const { letters } = parseMessageName(name);

  const renamed = join(acc.maildir, 'cur', `${m.base.replace(/\.M\d+P/, '.M1P')}-x:2,${letters}`);
  renameSync(p, renamed);
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 0, 'snapshot ignores base names');
  renameSync(renamed, p);

  const dir = join(acc.maildir, inbox.dirName);
  const table = readKeywords(dir);
  const kwStat = statSync(join(dir, 'dovecot-keywords'));
  const reversed = [...table].reverse();
  const letterMap = new Map(table.map((k, i) => [String.fromCharCode(97 + i), String.fromCharCode(97 + reversed.indexOf(k))]));
  const relabel = (from: Map<string, string>): void => {
    for (const n of readdirSync(join(dir, 'cur'))) {
      const { base: b, letters: l } = parseMessageName(n);
      const nl = [...l].map((c) => from.get(c) ?? c).sort().join('');
      renameSync(join(dir, 'cur', n), join(dir, 'cur', `${b}:2,${nl}`));
    }
  };
  relabel(letterMap);
  writeFileSync(join(dir, 'dovecot-keywords'), formatKeywords(reversed));
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 0, 'snapshot ignores keyword letter assignment');
  relabel(new Map([...letterMap].map(([k, v]) => [v, k])));
  writeFileSync(join(dir, 'dovecot-keywords'), formatKeywords(table));
  utimesSync(join(dir, 'dovecot-keywords'), kwStat.atime, kwStat.mtime);
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 0, 'keyword relabelling undone');

  const unseen = join(acc.maildir, 'cur', `${m.base}:2,${letters.replace('S', '')}`);
  renameSync(p, unseen);
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 1, 'snapshot sees a flag change');
  renameSync(unseen, p);

  const kwLetter = String.fromCharCode(97 + table.indexOf(KEYWORD_NAMES[0]));
  const withKw = join(acc.maildir, 'cur', `${m.base}:2,${[...new Set(letters + kwLetter)].sort().join('')}`);
  renameSync(p, withKw);
  check(letters.includes(kwLetter) || diffSnapshots(base, snapshotMaildirTree(root)).length === 1, 'snapshot sees a keyword change');
  renameSync(withKw, p);

  const st = statSync(p);
  utimesSync(p, st.atime, new Date(st.mtimeMs + 1000));
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 1, 'snapshot sees a received-date change');
  utimesSync(p, st.atime, st.mtime);

  const content = readFileSync(p);
  writeFileSync(p, Buffer.concat([content, Buffer.from('x')]));
  utimesSync(p, st.atime, st.mtime);
  check(diffSnapshots(base, snapshotMaildirTree(root)).length > 0, 'snapshot sees a content change');
  writeFileSync(p, content);
  utimesSync(p, st.atime, st.mtime);

  const folderDir = join(acc.maildir, '.Sent');
  renameSync(folderDir, join(acc.maildir, '.Sent2'));
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 2, 'snapshot sees a folder rename');
  renameSync(join(acc.maildir, '.Sent2'), folderDir);
  check(diffSnapshots(base, snapshotMaildirTree(root)).length === 0, 'tree restored after strictness checks');
  check(createHash('sha256').update(JSON.stringify(base)).digest('hex') === createHash('sha256').update(JSON.stringify(snapshotMaildirTree(root))).digest('hex'), 'snapshot JSON is stable');
};

const main = (): number => {
  const keep = process.argv.includes('--keep');
  const tmp = mkdtempSync(join(tmpdir(), 'zxb-corpus-selftest-'));
  try {
    unitChecks();
    const a = join(tmp, 'a');
    const b = join(tmp, 'b');
    const c = join(tmp, 'c');
    // `a` through the CLI, `b` and `c` in-process (the same code; saves a ts-node start each).
    const sa = JSON.parse(
      run('generate.ts', ['--out', a, '--messages', '300', '--domains', '2', '--users', '5', '--seed', 'selftest', '--max-size', '400000', '--passwd', join(tmp, 'a.passwd'), '--home-base', '/var/vmail', '--json']),
    ) as { messages: number; bytes: number; accounts: Array<{ account: string }> };
    const lib = (out: string, seed: string): void =>
      void generateTree({ out, messages: 300, domains: 2, users: 5, seed, maxSize: 400_000, passwd: `${out}.passwd`, homeBase: '/var/vmail', refDate: DEFAULT_REF_DATE, spanDays: 730, sharedFraction: 0.07 });
    lib(b, 'selftest');
    lib(c, 'other');
    const fa = fingerprint(a);
    check(sameFingerprint(fa, fingerprint(b)) === undefined, `same seed: identical trees (${fa.size} entries: names, bytes, file and directory mtimes)`, sameFingerprint(fa, fingerprint(b)));
    check(readFileSync(join(tmp, 'a.passwd')).equals(readFileSync(`${b}.passwd`)), 'same seed: identical passwd-files');
    check(sameFingerprint(fa, fingerprint(c)) !== undefined, 'other seed: different tree');
    check(sa.messages === 300, 'generate wrote --messages files');
    invariantChecks(a, sa, 400_000);
    passwdChecks(join(tmp, 'a.passwd'), a, '/var/vmail');
    strictnessChecks(b);
    check(sameFingerprint(new Map([...fa].filter(([k]) => !k.endsWith('/'))), new Map([...fingerprint(b)].filter(([k]) => !k.endsWith('/')))) === undefined, 'strictness checks left the tree as it was');
    mutationChecks(a, b);
  } finally {
    if (keep) process.stdout.write(`kept ${tmp}\n`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(failures === 0 ? 'selftest: all checks passed\n' : `selftest: ${failures} check(s) failed\n`);
  return failures === 0 ? 0 : 1;
};

process.exitCode = main();
