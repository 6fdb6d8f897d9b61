#!/usr/bin/env bash
# Starts tollgate on PostgreSQL and stops it with SIGTERM, many times, and fails unless
# every run exits 0. A graceful stop must not crash in OpenSSL's exit-time clean-up
# while pooled libpq connections still live on other threads (issue 17, point 3). The
# separate metrics listener (METRICS_BIND_ADDR) runs too and must stop with it.
#
#   scripts/check-sigterm.sh [RUNS]
#
# Needs TEST_DATABASE_URL (a server where it may create a database), curl, psql, and
# the debug binary ($CARGO_TARGET_DIR/debug/tollgate, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-50}"
admin_url="${TEST_DATABASE_URL:?TEST_DATABASE_URL must name a PostgreSQL server}"
bin="${TOLLGATE_BIN:-${CARGO_TARGET_DIR:-target}/debug/tollgate}"
[[ -x "$bin" ]] || cargo build --quiet --bin tollgate

database="tollgate_sigterm_$$"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; fi
  psql -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -q -d "$admin_url" -c "CREATE DATABASE $database" >/dev/null

export DATABASE_URL="${admin_url%/*}/$database"
export BIND_ADDR=127.0.0.1:0
export METRICS_BIND_ADDR=127.0.0.1:0
export JWT_KEYS_DIR="$work/keys"
export RUST_LOG=info

for run in $(seq 1 "$runs"); do
  log="$work/run-$run.log"
  : >"$log"
  "$bin" serve >"$log" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 1 100); do
    port="$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$log")"
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$port" ]]; then
    echo "run $run: tollgate did not start:" >&2
    cat "$log" >&2
    exit 1
  fi
  metrics_port="$(sed -n 's/.*serving metrics on [0-9.]*:\([0-9]*\).*/\1/p' "$log")"
  curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/metrics"
  # Several requests at once, so that the pool holds several open connections.
  requests=()
  for _ in 1 2 3 4; do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" &
    requests+=($!)
  done
  wait "${requests[@]}"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  if [[ "$status" -ne 0 ]]; then
    echo "run $run: tollgate exited with status $status after SIGTERM:" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
done
echo "check-sigterm: all $runs runs exited 0 on SIGTERM"
