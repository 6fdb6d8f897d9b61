#!/usr/bin/env bash
# Login throughput on PostgreSQL with the shared abuse limits on and off, in one run
# (BENCHMARKS.md, "Shared abuse limits"). Needs wrk and curl, and an empty database:
#
#   DATABASE_URL=postgres://…/empty scripts/shared-limits-bench.sh
#
# The two settings take turns, ROUNDS times each, on one server binary and one database,
# so that drift on a shared machine falls on both alike. The per-IP limit is set far above
# what the run can reach: it never refuses, but every login still pays for counting its IP
# (all of wrk's logins come from one address, so they all update one row) and for reading
# its username's lock.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${DATABASE_URL:?set DATABASE_URL to an empty PostgreSQL database}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-32}"
ROUNDS="${ROUNDS:-3}"
USERS="${USERS:-64}"
PORT="${PORT:-18912}"
BASE="http://127.0.0.1:$PORT"

cargo build --release --quiet --bin tollgate --example argon2_cost
TARGET="${CARGO_TARGET_DIR:-target}/release"
read -r ARGON2_MS _ <<< "$("$TARGET/examples/argon2_cost")"
BOUND="$(awk -v c="$(nproc)" -v ms="$ARGON2_MS" 'BEGIN { printf "%.1f", c * 1000 / ms }')"

WORK="$(mktemp -d)"
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2> /dev/null; rm -rf "$WORK"' EXIT
export JWT_KEYS_DIR="$WORK/keys" BIND_ADDR="127.0.0.1:$PORT" RUST_LOG=warn
export AUTH_RATE_LIMIT_PER_MIN=1000000000

serve() { # serve SHARED_ABUSE_LIMITS
  SHARED_ABUSE_LIMITS="$1" "$TARGET/tollgate" > "$WORK/server.log" 2>&1 &
  PID=$!
  until curl -fs "$BASE/readyz" > /dev/null; do
    kill -0 "$PID" 2> /dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.01
  done
}
halt() { kill "$PID"; wait "$PID" || true; PID=""; }

serve true
RUN="$(date +%s)"
for i in $(seq 1 "$USERS"); do
  curl -fs -o /dev/null "$BASE/auth/signup" -H 'content-type: application/json' \
    -d "{\"username\":\"bench${RUN}u$i\",\"password\":\"bench password $i\"}"
  echo "bench${RUN}u$i bench password $i" >> "$WORK/users"
done
halt

declare -A TOTAL=([true]=0 [false]=0)
for round in $(seq 1 "$ROUNDS"); do
  for shared in true false; do
    serve "$shared"
    out="$(wrk -t 2 -c "$CONNECTIONS" -d "$DURATION" -s scripts/wrk/login.lua "$BASE/auth/login" -- "$WORK/users")"
    halt
    rps="$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')"
    errors="$(echo "$out" | awk '/Non-2xx/ { print $5 }')"
    printf 'round %s  SHARED_ABUSE_LIMITS=%-5s  %8s logins/s  non-2xx %s\n' "$round" "$shared" "$rps" "${errors:-0}"
    TOTAL[$shared]="$(awk -v a="${TOTAL[$shared]}" -v b="$rps" 'BEGIN { print a + b }')"
  done
done

awk -v on="${TOTAL[true]}" -v off="${TOTAL[false]}" -v n="$ROUNDS" -v bound="$BOUND" 'BEGIN {
  printf "mean logins/s: shared %.1f, per process %.1f (argon2 bound %s/s)\n", on / n, off / n, bound
  printf "login ÷ argon2 bound: shared %.2f, per process %.2f\n", on / n / bound, off / n / bound
  printf "shared ÷ per process: %.3f\n", on / off
}'
