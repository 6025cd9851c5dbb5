#!/usr/bin/env bash
# Other tools import @zxbackup/item-store. This packs it as it would be published, installs the
# tarball in a scratch project outside the workspace, and reads an item's history through its
# public API from a backup path written by the packed code itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="$(mktemp -d /tmp/zxb-packed.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT

npx nx run item-store:build --outputStyle=static >/dev/null
(cd "$root/packages/item-store" && npm pack --silent --pack-destination "$scratch" >/dev/null)
tarball="$(ls "$scratch"/zxbackup-item-store-*.tgz)"

cd "$scratch"
npm init -y >/dev/null
npm install --no-audit --no-fund --silent "$tarball"
cp "$root/tools/ci/packed-item-store-check.cjs" ./check.cjs
node check.cjs "$scratch/backup"
