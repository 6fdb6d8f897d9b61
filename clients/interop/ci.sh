#!/usr/bin/env bash
# Off-the-shelf clients from other ecosystems against the real tollgate binary: Node's
# openid-client (discovery) and jose (createRemoteJWKSet + jwtVerify), Python's PyJWT
# (PyJWKClient) and an RFC 7662 introspection call, once per algorithm, each against its
# own tollgate started with JWT_ISSUER = PUBLIC_URL (what issuer-URL discovery needs).
# Set TOLLGATE_BIN to the binary to test (.ci/run passes the release build).
# Exits non-zero on any failure; the last line is "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"
ALGORITHMS=(EdDSA ES256 RS256)
FEED_TOKEN="interop-feed-token-0123456789abcdef"
AUDIENCE="interop-api"

source "$ROOT/scripts/lib/tollgate-bin.sh"

echo "== npm ci"
npm ci --no-audit --no-fund --silent
echo "== pip install -r requirements.txt (in .venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt

rm -rf results && mkdir -p results
work="$(mktemp -d)"
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts tollgate for one algorithm in an empty directory, waits until it is ready and
# sets $url to it.
start_server() {
  local alg="$1" port
  port="$(free_port)"
  url="http://127.0.0.1:$port"
  mkdir -p "$work/$alg"
  (cd "$work/$alg" && exec env -i PATH="$PATH" RUST_LOG=warn \
    BIND_ADDR="127.0.0.1:$port" PUBLIC_URL="$url" JWT_ISSUER="$url" JWT_AUDIENCE="$AUDIENCE" \
    JWT_ALGORITHM="$alg" REVOCATION_FEED_TOKEN="$FEED_TOKEN" \
    ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 \
    "$TOLLGATE_BIN" serve) >"results/$alg.server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "tollgate ($alg) did not become ready; its log:" >&2
  cat "results/$alg.server.log" >&2
  return 1
}

for alg in "${ALGORITHMS[@]}"; do
  echo "== $alg"
  start_server "$alg"
  signup="$(curl -fsS "$url/auth/signup" -H 'content-type: application/json' \
    -d '{"username":"interop","password":"correct horse battery staple"}')"
  token="$(printf '%s' "$signup" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
  export TOLLGATE_URL="$url" AUDIENCE ALG="$alg" ACCESS_TOKEN="$token" FEED_TOKEN
  node node/verify.mjs 2>&1 | tee "results/$alg.node.log" || true
  .venv/bin/python python/verify.py 2>&1 | tee "results/$alg.python.log" || true
  stop_server
done

# One row per check, one column per algorithm.
echo
printf '%-40s' "check"; printf ' %-6s' "${ALGORITHMS[@]}"; echo
checks="$(cat results/*.node.log results/*.python.log | sed -nE 's/^(PASS|FAIL) ([^:]*).*/\2/p' | awk '!seen[$0]++')"
while IFS= read -r name; do
  printf '%-40s' "$name"
  for alg in "${ALGORITHMS[@]}"; do
    if grep -hqxF "PASS $name" "results/$alg.node.log" "results/$alg.python.log"; then
      printf ' %-6s' "ok"
    else
      printf ' %-6s' "FAIL"
    fi
  done
  echo
done <<<"$checks"

passed=$(cat results/*.log | grep -c '^PASS ' || true)
failed=$(cat results/*.log | grep -c '^FAIL ' || true)
expected=$(( ${#ALGORITHMS[@]} * 7 ))
if [ "$((passed + failed))" -ne "$expected" ]; then
  echo "expected $expected checks, saw $((passed + failed)) (a client crashed?)"
  failed=$(( expected - passed ))
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
