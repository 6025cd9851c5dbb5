#!/usr/bin/env bash
# The README's main command (`npm ci && npm run quickstart`): no mail server needed. Builds the
# CLI, generates a sample Maildir tree, backs it up, changes it, backs it up again, restores one
# account as it was before the changes into a drill tree and compares it with the tree as it
# was. Exit 0 when the restored account is identical. Everything lives in ./tmp/quickstart/
# (wiped first, so it can be run again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
QS="$ROOT/tmp/quickstart"
ACCOUNT=alice@alpha.test
RESTORED=alice.before@alpha.test
TSN="$ROOT/node_modules/.bin/ts-node --transpile-only --project $ROOT/tools/corpus/tsconfig.json"
ZX="node $ROOT/apps/cli/bin/zxbackup.cjs"
export ZXBACKUP_PATH="$QS/backup"
unset ZXBACKUP_NOW

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# An instant with a quiet second on each side: what was recorded before it is strictly before.
instant() {
  sleep 1.1
  node -e 'process.stdout.write(new Date().toISOString())'
  sleep 1.1
}

started=$(date +%s)
rm -rf "$QS"
mkdir -p "$QS"

# ZXB_QUICKSTART_SKIP_BUILD=1 reuses the CLI as last built (faster reruns).
if [ "${ZXB_QUICKSTART_SKIP_BUILD:-}" = "1" ] && [ -f apps/cli/dist/main.js ]; then
  step "Using the CLI as last built (ZXB_QUICKSTART_SKIP_BUILD=1)"
else
  step "Building the CLI: npx nx run cli:build"
  npx nx run cli:build --outputStyle=static >"$QS/build.log" 2>&1 || {
    cat "$QS/build.log"
    echo "quickstart: the build failed (log above)" >&2
    exit 1
  }
  echo "built apps/cli (log: tmp/quickstart/build.log)"
fi

step "Generating a sample Maildir tree in tmp/quickstart/mail (2 domains, 4 accounts)"
$TSN tools/corpus/generate.ts --out "$QS/mail" --messages 300 --domains 2 --users 4 --seed quickstart --max-size 3000000

step "First SmartScan: initializes the backup path tmp/quickstart/backup and copies everything"
echo "\$ zxbackup config set ZxBackup_Source maildir:$QS/mail"
$ZX config set ZxBackup_Source "maildir:$QS/mail"
echo "\$ zxbackup doSmartScan start"
$ZX doSmartScan start
echo "\$ zxbackup getAvailableAccounts"
$ZX getAvailableAccounts

$TSN tools/corpus/snapshot.ts --root "$QS/mail" >"$QS/before.json"
BEFORE=$(instant)
echo "the tree as it is now: tmp/quickstart/before.json; instant to restore later: $BEFORE"

step "Changing the tree: flags, moves, deletes, new mail; $ACCOUNT's Archive renamed and Trash emptied"
$TSN tools/corpus/mutate.ts --root "$QS/mail" --fraction 0.05 --seed quickstart --rename-folder --empty-folder --account "$ACCOUNT"

step "Second SmartScan: records only what changed"
echo "\$ zxbackup doSmartScan start"
$ZX doSmartScan start

step "Restoring $ACCOUNT as it was at $BEFORE into a drill tree (the live tree is not touched)"
echo "\$ zxbackup doRestoreOnNewAccount $ACCOUNT $RESTORED $BEFORE --target maildir:$QS/drill"
$ZX doRestoreOnNewAccount "$ACCOUNT" "$RESTORED" "$BEFORE" --target "maildir:$QS/drill"

step "Comparing the restored account with the tree before the changes (bytes, flags, keywords, folders, dates)"
cat >"$QS/compare.ts" <<EOF
import { readFileSync } from 'node:fs';
import { diffSnapshots, snapshotMaildirTree, type MaildirSnapshot } from '$ROOT/tools/corpus/lib/maildir-snapshot';
const before = JSON.parse(readFileSync('$QS/before.json', 'utf8')) as MaildirSnapshot;
const expected = { '$ACCOUNT': before['$ACCOUNT'] ?? {} };
const live = { '$ACCOUNT': snapshotMaildirTree('$QS/mail')['$ACCOUNT'] ?? {} };
const restored = { '$ACCOUNT': snapshotMaildirTree('$QS/drill')['$RESTORED'] ?? {} };
const count = (s: MaildirSnapshot): string => {
  const folders = Object.values(s['$ACCOUNT'] ?? {});
  return \`\${folders.length} folders, \${folders.reduce((n, m) => n + m.length, 0)} messages\`;
};
console.log(\`before the changes: $ACCOUNT had \${count(expected)}\`);
console.log(\`now (live tree):    $ACCOUNT has  \${count(live)}, \${diffSnapshots(expected, live, 100000).length} differences from before\`);
console.log(\`restored:           $RESTORED has \${count(restored)}\`);
const diff = diffSnapshots(expected, restored);
if (diff.length === 0) {
  console.log('identical: the restored account equals $ACCOUNT as it was before the changes');
} else {
  console.log('DIFFERENT: the restored account does not equal the tree before the changes:');
  for (const line of diff) console.log('  ' + line);
  process.exitCode = 1;
}
EOF
if ! $TSN "$QS/compare.ts"; then
  echo "quickstart: the restore differs from the backed-up tree (see above)" >&2
  exit 1
fi

step "Done in $(($(date +%s) - started)) s. Try next (from $ROOT):"
cat <<EOF
  alias zxbackup="node $ROOT/apps/cli/bin/zxbackup.cjs"
  export ZXBACKUP_PATH=$QS/backup
  zxbackup --help                                            # every command, with examples and exit codes
  zxbackup getAllOperations                                  # the scans and the restore just run
  zxbackup doItemSearch $ACCOUNT --search-filter deleted     # what the changes deleted
  zxbackup doUndelete $ACCOUNT first last --target maildir:$QS/drill   # bring it back (drill tree)
  zxbackup realTimeScanner run                               # record every change as it happens (Ctrl-C stops)
  ls $QS/drill/alpha.test/$(echo "$RESTORED" | cut -d@ -f1)/Maildir     # the restored account, a Maildir++ tree
EOF
