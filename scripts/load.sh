#!/usr/bin/env bash
# Load test of a release build with wrk (Debian: apt-get install wrk).
#
#   scripts/load.sh                    # fresh SQLite database in a temporary directory
#   DATABASE_URL=postgres://… scripts/load.sh   # the same against PostgreSQL (an empty database)
#   JUNK_FLOOD=0 scripts/load.sh       # without the junk flood section (see junk_flood below)
#
# Every case runs with the same settings (DURATION, THREADS, CONNECTIONS); the figures
# that matter are the ratios printed at the end, all taken in this one run.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
USERS="${USERS:-64}"
PORT="${PORT:-18911}"
BASE="http://127.0.0.1:$PORT"
CORES="$(nproc)"

command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v curl > /dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }

echo "== building the release binary"
cargo build --release --quiet --bin tollgate --example argon2_cost
BIN="${CARGO_TARGET_DIR:-target}/release/tollgate"
read -r ARGON2_MS ARGON2_PARALLEL <<< "$("${CARGO_TARGET_DIR:-target}/release/examples/argon2_cost")"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null && wait "$SERVER_PID" 2> /dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="${DATABASE_URL:-sqlite://$WORK/tollgate.db}"
export JWT_KEYS_DIR="$WORK/keys" BIND_ADDR="127.0.0.1:$PORT" AUTH_RATE_LIMIT_PER_MIN=0 RUST_LOG=warn

start_server() {
  "$BIN" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  until curl -fs "$BASE/readyz" > /dev/null 2>&1; do
    kill -0 "$SERVER_PID" 2> /dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.005
  done
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" 2> /dev/null || true; SERVER_PID=""; }
rss_kib() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$SERVER_PID/status"; }
now_ms() { date +%s%3N; }

# First start creates the schema and keys; the timed start is the second, on the
# existing database, as an operator restarting the service sees it.
start_server
stop_server
START_MS="$(now_ms)"
start_server
STARTUP_MS=$(( $(now_ms) - START_MS ))
sleep 1
IDLE_KIB="$(rss_kib VmRSS)"

echo "== creating $USERS users"
RUN="$(date +%s)"
: > "$WORK/users" ; : > "$WORK/refresh"
for i in $(seq 1 "$USERS"); do
  name="load${RUN}u$i"
  body="$(curl -fs "$BASE/auth/signup" -H 'content-type: application/json' \
    -d "{\"username\":\"$name\",\"password\":\"load test password $i\"}")"
  echo "$name load test password $i" >> "$WORK/users"
  echo "$body" | sed -E 's/.*"refresh_token":"([^"]+)".*/\1/' >> "$WORK/refresh"
  [ "$i" = 1 ] && ACCESS="$(echo "$body" | sed -E 's/.*"access_token":"([^"]+)".*/\1/')"
done

# wrk prints latency like 512.00us, 1.25ms or 1.02s; this turns one into milliseconds.
to_ms() { awk '{ v = $1; if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else if (v ~ /s$/) print v * 1000; else print v }'; }

# run NAME CONNECTIONS wrk-arguments… : records rps, p50, p99 for the case.
declare -A RPS P50 P99 ERRORS
run() {
  local name="$1" connections="$2"; shift 2
  local out
  out="$(wrk --latency -t "$THREADS" -c "$connections" -d "$DURATION" "$@" 2>&1)"
  RPS[$name]="$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')"
  P50[$name]="$(echo "$out" | awk '$1 == "50%" { print $2 }' | to_ms)"
  P99[$name]="$(echo "$out" | awk '$1 == "99%" { print $2 }' | to_ms)"
  ERRORS[$name]="$(echo "$out" | awk '/Non-2xx/ { print $5 }')"
  printf '%-26s %10s req/s   p50 %8s ms   p99 %8s ms   non-2xx %s\n' \
    "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ERRORS[$name]:-0}"
}

echo "== measuring ($THREADS threads, $CONNECTIONS connections, $DURATION per case)"
run healthz "$CONNECTIONS" "$BASE/healthz"
run me "$CONNECTIONS" -s scripts/wrk/bearer.lua "$BASE/auth/me" -- "$ACCESS"
run refresh "$CONNECTIONS" -s scripts/wrk/refresh.lua "$BASE/auth/refresh" -- "$WORK/refresh" "$THREADS"
run login "$CONNECTIONS" -s scripts/wrk/login.lua "$BASE/auth/login" -- "$WORK/users"
# Token checks alone, then the same while a login flood runs beside them.
run "me, 8 connections" 8 -s scripts/wrk/bearer.lua "$BASE/auth/me" -- "$ACCESS"
wrk -t 1 -c "$CONNECTIONS" -d "$DURATION" -s scripts/wrk/login.lua "$BASE/auth/login" -- "$WORK/users" \
  > "$WORK/flood" 2>&1 &
FLOOD_PID=$!
sleep 1
run "me during login flood" 8 -s scripts/wrk/bearer.lua "$BASE/auth/me" -- "$ACCESS"
wait "$FLOOD_PID"
PEAK_KIB="$(rss_kib VmHWM)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
ARGON2_BOUND="$(awk -v c="$CORES" -v ms="$ARGON2_MS" 'BEGIN { printf "%.1f", c * 1000 / ms }')"
check() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "reached" : "MISSED" }'; }

ME_RATIO="$(ratio "${RPS[me]}" "${RPS[healthz]}")"
LOGIN_RATIO="$(ratio "${RPS[login]}" "$ARGON2_BOUND")"
LOGIN_PARALLEL_RATIO="$(ratio "${RPS[login]}" "$ARGON2_PARALLEL")"
FLOOD_RATIO="$(ratio "${P99[me during login flood]}" "${P99[me, 8 connections]}")"
REFRESH_RATIO="$(ratio "${RPS[refresh]}" "${RPS[me]}")"
IDLE_MIB="$(awk -v k="$IDLE_KIB" 'BEGIN { printf "%.1f", k / 1024 }')"
PEAK_MIB="$(awk -v k="$PEAK_KIB" 'BEGIN { printf "%.1f", k / 1024 }')"

echo
echo "== figures (database: ${DATABASE_URL%%://*}, $CORES cores, argon2id verify ${ARGON2_MS} ms)"
printf '%-66s %8s   target %-8s %s\n' \
  "/auth/me ÷ /healthz throughput" "$ME_RATIO" ">= 0.80" "$(check "$ME_RATIO" ">=" 0.8)" \
  "login ÷ argon2 bound, cores ÷ one verify ($ARGON2_BOUND/s)" "$LOGIN_RATIO" ">= 0.85" "$(check "$LOGIN_RATIO" ">=" 0.85)" \
  "login ÷ argon2 verifies/s measured on all cores ($ARGON2_PARALLEL/s)" "$LOGIN_PARALLEL_RATIO" ">= 0.85" "$(check "$LOGIN_PARALLEL_RATIO" ">=" 0.85)" \
  "/auth/me p99 during login flood ÷ without" "$FLOOD_RATIO" "<= 3" "$(check "$FLOOD_RATIO" "<=" 3)" \
  "refresh ÷ /auth/me throughput" "$REFRESH_RATIO" ">= 0.50" "$(check "$REFRESH_RATIO" ">=" 0.5)" \
  "resident memory idle (MiB)" "$IDLE_MIB" "<= 20" "$(check "$IDLE_MIB" "<=" 20)" \
  "resident memory peak (MiB)" "$PEAK_MIB" "<= 100" "$(check "$PEAK_MIB" "<=" 100)" \
  "start-up to /readyz 200 (ms)" "$STARTUP_MS" "<= 200" "$(check "$STARTUP_MS" "<=" 200)"

# ---------------------------------------------------------------------------------------
# Junk flood (issue 18): /auth/me over JUNK_USERS users, every request carrying another
# user's token, alone and then beside each kind of request anyone can send without a
# valid token. Each junk kind runs on JUNK_CONNECTIONS connections of its own; /auth/me
# must keep >= 0.7 x its throughput alone beside each. Rate limits stay off (as above),
# as if the junk came from many addresses: the worst case.
JUNK_USERS="${JUNK_USERS:-1000}"
JUNK_DURATION="${JUNK_DURATION:-6s}"
JUNK_CONNECTIONS="${JUNK_CONNECTIONS:-2}"
ME_CONNECTIONS="${ME_CONNECTIONS:-16}"
FEED_TOKEN="load-test-revocation-feed-token"

# junk_users N FILE: signs up N users in parallel, writes their access tokens to FILE.
junk_users() {
  seq 1 "$1" | xargs -P 4 -I{} curl -fs "$BASE/auth/signup" -H 'content-type: application/json' \
    -d "{\"username\":\"junk${RUN}u{}\",\"password\":\"junk flood password {}\"}" -o "$WORK/junk-signup-{}"
  # One token a line: the bodies end without a newline, so each gets one of its own.
  for body in "$WORK"/junk-signup-*; do
    sed -E 's/.*"access_token":"([^"]+)".*/\1/' "$body"
    echo
  done > "$2"
  rm -f "$WORK"/junk-signup-*
}

# wrk_figures OUTPUT: "req/s p50-ms p99-ms errors" (errors: non-2xx + socket errors).
wrk_figures() {
  local rps p50 p99 non2xx socket
  rps="$(echo "$1" | awk '/^Requests\/sec/ { print $2 }')"
  p50="$(echo "$1" | awk '$1 == "50%" { print $2 }' | to_ms)"
  p99="$(echo "$1" | awk '$1 == "99%" { print $2 }' | to_ms)"
  non2xx="$(echo "$1" | awk '/Non-2xx/ { print $5 }')"
  socket="$(echo "$1" | awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }')"
  echo "$rps $p50 $p99 $(( ${non2xx:-0} + ${socket:-0} ))"
}

# junk_case NAME [wrk arguments of the junk…]: /auth/me over all users, beside the junk.
declare -A JUNK_ME
junk_case() {
  local name="$1"; shift
  local junk_pid="" me junk
  if [ $# -gt 0 ]; then
    wrk -t 1 -c "$JUNK_CONNECTIONS" -d "$JUNK_DURATION" --latency "$@" > "$WORK/junk.out" 2>&1 &
    junk_pid=$!
  fi
  me="$(wrk -t 1 -c "$ME_CONNECTIONS" -d "$JUNK_DURATION" --latency \
    -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$WORK/junk-tokens" 2>&1)"
  read -r rps p50 p99 errors <<< "$(wrk_figures "$me")"
  JUNK_ME[$name]="$rps"
  junk="-"
  if [ -n "$junk_pid" ]; then
    wait "$junk_pid"
    junk="$(wrk_figures "$(cat "$WORK/junk.out")" | awk '{ printf "%s req/s, p99 %s ms", $1, $3 }')"
  fi
  printf '%-34s %10s req/s   p50 %7s ms   p99 %7s ms   errors %-5s x%-5s junk: %s\n' \
    "$name" "$rps" "$p50" "$p99" "$errors" "$(ratio "$rps" "${JUNK_ME[alone]:-$rps}")" "$junk"
}

junk_flood() {
  echo
  echo "== junk flood: /auth/me over $JUNK_USERS users ($ME_CONNECTIONS connections) beside junk" \
    "($JUNK_CONNECTIONS connections), $JUNK_DURATION per case, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -n "$SERVER_PID" ] && stop_server
  # The users are made at a cheap argon2 cost, then the server runs at the default cost,
  # so that junk logins and signups cost what they would in production.
  ARGON2_MEMORY_KIB=1024 ARGON2_ITERATIONS=1 start_server
  junk_users "$JUNK_USERS" "$WORK/junk-tokens"
  stop_server
  REVOCATION_FEED_TOKEN="$FEED_TOKEN" start_server
  local taken never_issued_count
  taken="junk${RUN}u1"
  never_issued_count="$(wc -l < "$WORK/junk-tokens")"
  [ "$never_issued_count" = "$JUNK_USERS" ] || { echo "made $never_issued_count of $JUNK_USERS users" >&2; exit 1; }
  # Warm-up: every user's row and token once.
  wrk -t 1 -c "$ME_CONNECTIONS" -d 2s -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$WORK/junk-tokens" > /dev/null
  junk_case alone
  junk_case "beside /healthz (control)" "$BASE/healthz"
  junk_case "beside never-issued refresh" -s scripts/wrk/junk.lua "$BASE" -- refresh
  junk_case "beside junk logout" -s scripts/wrk/junk.lua "$BASE" -- logout
  junk_case "beside bad logins" -s scripts/wrk/junk.lua "$BASE" -- login
  junk_case "beside bad signups (taken name)" -s scripts/wrk/junk.lua "$BASE" -- signup "$taken"
  junk_case "beside JWKS" "$BASE/.well-known/jwks.json"
  junk_case "beside revocations, wrong token" -s scripts/wrk/junk.lua "$BASE" -- revocations
  junk_case "alone, again" 
  echo "target: every 'beside' case >= 0.70 x alone"
}

[ "${JUNK_FLOOD:-1}" = 0 ] || junk_flood
