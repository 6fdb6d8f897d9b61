#!/usr/bin/env bash
# CI for the JavaScript client: install from the lockfile, build, run the client's tests
# against a real tollgate (the mail flows against a MailDev, an npm dev dependency, that
# the tests start themselves), then the browser end-to-end test in Debian's Chromium.
# Exits non-zero on any failure; the last line is "N passed, N failed[, N skipped]".
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
export CI="${CI:-true}"

apt_install() {
  echo "== apt-get install $*"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v npm >/dev/null || apt_install nodejs npm
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || apt_install chromium

source "$ROOT/scripts/lib/tollgate-bin.sh"

echo "== npm ci"
npm ci --no-audit --no-fund
echo "== npm run build (and check that the committed dist/index.js, which tollgate embeds, is current)"
committed="$(mktemp)"
cp dist/index.js "$committed"
npm run build
if ! cmp -s "$committed" dist/index.js; then
  diff -u "$committed" dist/index.js | head -n 40 || true
  echo "clients/js/dist/index.js is not the build of src/index.ts: run 'npm run build' in clients/js and commit dist/index.js"
  echo "0 passed, 1 failed"
  exit 1
fi
rm -f "$committed"
echo "== the demo page's QR encoder is lean-qr as installed (scripts/vendor-qr.mjs --check)"
if ! node scripts/vendor-qr.mjs --check; then
  echo "0 passed, 1 failed"
  exit 1
fi

mkdir -p test-results
status=0
echo "== npm test"
npm test 2>&1 | tee test-results/unit.log || status=1
echo "== npm run test:browser"
npm run test:browser 2>&1 | tee test-results/browser.log || status=1

# node:test prints its totals as "# pass N" (TAP, when not on a terminal) or "ℹ pass N" (spec).
total() {
  grep -hE "^(# |ℹ )$1 [0-9]+$" test-results/unit.log test-results/browser.log | awk '{ n += $3 } END { print n + 0 }'
}
passed=$(total pass)
failed=$(total fail)
skipped=$(total skipped)
cancelled=$(total cancelled)
failed=$((failed + cancelled))
if [ "$passed" -eq 0 ] || [ "$failed" -gt 0 ]; then status=1; fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
exit "$status"
