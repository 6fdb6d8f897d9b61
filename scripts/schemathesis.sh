#!/usr/bin/env bash
# schemathesis (property-based API tests from PyPI) against the OpenAPI document served by
# a running tollgate: every check, positive and negative data, a bounded number of
# examples per operation. Exits non-zero on any failure; the last line is
# "schemathesis: N passed, N failed".
#
#   TOLLGATE_BIN=target/release/tollgate scripts/schemathesis.sh
#
# Two passes: one with the fixed seed 1 (the same examples on every commit, so that a
# change in them is the code's), and one whose seed comes from the commit (the first 8
# hex digits of `git rev-parse HEAD`, as a number): reproducible, and different on every
# commit, so that over many commits far more of the input space is tried. The second
# pass prints its seed and the command that repeats it.
#
# Without TOLLGATE_BIN it builds the release binary (`cargo build --release --locked`).
# SCHEMATHESIS_MAX_EXAMPLES (default 40) bounds the fixed pass, SCHEMATHESIS_COMMIT_EXAMPLES
# (default 15) the commit's, which so adds about a third to the run. SCHEMATHESIS_SEED
# gives the second pass that seed instead (to repeat one); SCHEMATHESIS_SEED=none skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VERSION="4.32.5"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-40}"
COMMIT_EXAMPLES="${SCHEMATHESIS_COMMIT_EXAMPLES:-15}"
FIXED_SEED=1
if [ -n "${SCHEMATHESIS_SEED:-}" ]; then
  COMMIT_SEED="$SCHEMATHESIS_SEED"
  seed_from="SCHEMATHESIS_SEED"
elif head="$(git rev-parse HEAD 2>/dev/null)"; then
  COMMIT_SEED="$((16#${head:0:8}))"
  seed_from="commit ${head:0:12}"
else
  COMMIT_SEED="none"
  seed_from="no git checkout"
fi
VENV="${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/schemathesis-$VERSION}"

if [ -z "${TOLLGATE_BIN:-}" ]; then
  echo "== cargo build --release --locked"
  cargo build --release --locked --bin tollgate
  TOLLGATE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/tollgate"
fi

if [ ! -x "$VENV/bin/st" ]; then
  echo "== pip install schemathesis==$VERSION (into $VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
export TOLLGATE_FEED_TOKEN="schemathesis-feed-token-0123456789"
# Every endpoint on: the demo, the revocation feed and introspection; every account an
# admin, so that the admin API is exercised past its role check. No per-IP limit, so
# that generated signups and logins reach the handlers (429 stays documented). Cheap
# hashes with a long queue timeout: on a busy machine a hash waiting over the default
# second is a 503 `overloaded`, correct but not what this run is about.
(cd "$work" && exec env -i PATH="$PATH" RUST_LOG=warn BIND_ADDR="127.0.0.1:$port" \
  DEMO_UI=true REVOCATION_FEED_TOKEN="$TOLLGATE_FEED_TOKEN" AUTH_RATE_LIMIT_PER_MIN=0 DEFAULT_ROLES=admin \
  ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 ARGON2_QUEUE_TIMEOUT_MS=8000 "$TOLLGATE_BIN" serve) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$url/readyz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; echo "schemathesis: 0 passed, 1 failed"; exit 1; }
  sleep 0.1
done

# A new user for each run, whose access token the `bearer` security scheme uses: a run
# may end the session it was given (a password change, a logout), and the next must not
# inherit a revoked token.
users=0
new_user() {
  users=$((users + 1))
  local signup
  signup="$(curl -fsS "$url/auth/signup" -H 'content-type: application/json' \
    -d "{\"username\":\"schemathesis$users\",\"password\":\"a password schemathesis cannot guess\"}")"
  TOLLGATE_ACCESS_TOKEN="$(printf '%s' "$signup" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
  export TOLLGATE_ACCESS_TOKEN
}

# run SEED MAX_EXAMPLES [ARGS…]
run() {
  local seed="$1" examples="$2"
  shift 2
  "$VENV/bin/st" --config-file scripts/schemathesis.toml run "$url/openapi.json" \
    --checks all --max-examples "$examples" --seed "$seed" --workers 2 "$@"
}
passes=("$FIXED_SEED $MAX_EXAMPLES")
if [ "$COMMIT_SEED" != "none" ]; then
  passes+=("$COMMIT_SEED $COMMIT_EXAMPLES")
fi
status=0
echo "== schemathesis $VERSION against $url/openapi.json"
# Logging out with the bearer token revokes it, so /auth/logout runs last, on its own,
# after every pass of everything else.
for scope in "--exclude-path /auth/logout" "--include-path /auth/logout"; do
  for pass in "${passes[@]}"; do
    read -r seed examples <<<"$pass"
    [ "$status" -eq 0 ] || break 2
    if [ "$seed" = "$FIXED_SEED" ]; then
      echo "== schemathesis $scope: fixed seed $seed, max $examples examples per operation"
    else
      echo "== schemathesis $scope: seed $seed (from $seed_from), max $examples examples per operation"
      echo "   to repeat: SCHEMATHESIS_SEED=$seed SCHEMATHESIS_COMMIT_EXAMPLES=$examples TOLLGATE_BIN=… scripts/schemathesis.sh"
    fi
    new_user
    # shellcheck disable=SC2086 # the scope is two words
    run "$seed" "$examples" $scope || status=$?
  done
done

# 0: every check passed; 1: failures found; anything else: schemathesis itself failed.
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "tollgate died during the run; its log:"
  cat "$work/server.log"
  status=1
fi
case "$status" in
  0) echo "schemathesis: 1 passed, 0 failed" ;;
  1) echo "schemathesis: 0 passed, 1 failed" ;;
  *) echo "schemathesis exited with $status (an error of the tool or the schema)"; echo "schemathesis: 0 passed, 1 failed"; status=1 ;;
esac
exit "$status"
