#!/usr/bin/env bash
# The README's test command: installs dependencies, starts every service the tests need
# (S3 server, Dovecot/OpenLDAP/Radicale), runs lint, build, unit and integration tests of every
# project, the packed-item-store check, and stops the services again. Needs root (apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${ZXB_SKIP_INSTALL:-}" != "1" ]; then
  npm ci --no-audit --no-fund
fi

stop_services() {
  bash tools/services/s3-server.sh stop >/dev/null 2>&1 || true
  bash tools/services/mail-stack.sh stop >/dev/null 2>&1 || true
}
trap stop_services EXIT

echo "== starting services"
eval "$(bash tools/services/s3-server.sh start)"
eval "$(bash tools/services/mail-stack.sh start)"

export ZXB_TEST_TALLY
ZXB_TEST_TALLY="$(mktemp /tmp/zxb-tally.XXXXXX)"

status=0
echo "== lint, build and unit tests"
npx nx run-many -t lint build test --outputStyle=static --parallel=2 --skip-nx-cache || status=$?

# One project at a time: the outage specs (volumes-s3, cli) stop and restart the shared S3
# server, which failed another project's specs running beside them. (The builds they depend on
# come from the cache the step above filled; int-test and e2e themselves are never cached.)
echo "== integration and end-to-end tests, one project at a time"
npx nx run-many -t int-test e2e --outputStyle=static --parallel=1 || status=$?

echo "== corpus generator self-test"
node_modules/.bin/ts-node --transpile-only tools/corpus/selftest.ts || status=$?

echo "== @zxbackup/item-store as another tool uses it (npm pack + install outside the workspace)"
bash tools/ci/packed-item-store.sh || status=$?

node tools/jest/print-tally.cjs "$ZXB_TEST_TALLY" || status=$?
exit $status
