#!/usr/bin/env bash
# Interleaved A/B of release binaries on SQLite: the builds take turns, ROUNDS times, so
# that a noisy machine weighs on all of them alike (BENCHMARKS.md, "Group commit on SQLite").
#
#   scripts/ab.sh OLD/tollgate NEW/tollgate          # 1,000 users
#   USERS=30000 ROUNDS=3 scripts/ab.sh A B C
#   POSTGRES=postgres://postgres@127.0.0.1:5432 scripts/ab.sh A B   # on PostgreSQL
#   scripts/ab.sh B SESSIONS_PER_USER=5@B      # one binary, two configurations
#
# An argument is a binary, or VAR=VALUE[,VAR=VALUE…]@BINARY to run it with those
# variables set. The last lines give each argument's mean req/s per case over the rounds,
# and its ratio to the first argument's.
#
# Each turn: a fresh database, USERS users at a cheap argon2 cost, a 3 s warm-up that
# presents every token, then DURATION of /auth/me over the users' tokens, DURATION of
# refresh along CHAINS chains and DURATION of login cycling over CHAINS users (wrk, 2
# threads, 32 connections; login last, since it replaces the sessions the chains use). With POSTGRES (a server's
# URL, no database), each turn gets a fresh database on that server instead of SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ready.sh

USERS="${USERS:-1000}" CHAINS="${CHAINS:-128}" ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-5s}"
PORT="${PORT:-18931}"
BASE="http://127.0.0.1:$PORT"
[ "$#" -ge 1 ] || { echo "usage: $0 BINARY [BINARY ...]" >&2; exit 2; }

WORK="" SERVER_PID="" PG_DB=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null && wait "$SERVER_PID" 2> /dev/null
  [ -n "$WORK" ] && rm -rf "$WORK"
  [ -n "$PG_DB" ] && dropdb --if-exists --maintenance-db="$POSTGRES/postgres" "$PG_DB"
  return 0
}
trap cleanup EXIT

# figure OUTPUT: req/s and p99 of a wrk run, "errors" if it had any.
figure() {
  awk '/Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 } /Non-2xx|Socket errors/ { bad = " ERRORS" }
       END { printf "%s req/s (p99 %s)%s", rps, p99, bad }' <<< "$1"
}

declare -A SUM
for round in $(seq 1 "$ROUNDS"); do
  for spec in "$@"; do
    bin="${spec##*@}" vars=()
    [ "$spec" = "$bin" ] || IFS=, read -r -a vars <<< "${spec%@*}"
    WORK="$(mktemp -d)"
    url="sqlite://$WORK/ab.db"
    if [ -n "${POSTGRES:-}" ]; then
      PG_DB="tollgate_ab_$(date +%s%N)"
      createdb --maintenance-db="$POSTGRES/postgres" "$PG_DB"
      url="$POSTGRES/$PG_DB"
    fi
    env DATABASE_URL="$url" JWT_KEYS_DIR="$WORK/keys" BIND_ADDR="127.0.0.1:$PORT" \
      AUTH_RATE_LIMIT_PER_MIN=0 RUST_LOG=warn ARGON2_MEMORY_KIB=8 ARGON2_ITERATIONS=1 "${vars[@]}" \
      "$bin" > "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$SERVER_PID" "$WORK/server.log" "$BASE/readyz"
    scripts/signup_users.py "$BASE" "$USERS" "ab$round" "$WORK/access" "$WORK/refresh"
    head -n "$CHAINS" "$WORK/refresh" > "$WORK/chains"
    wrk -t2 -c32 -d3s -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$WORK/access" > /dev/null
    me="$(wrk -t2 -c32 -d"$DURATION" --latency -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$WORK/access")"
    refresh="$(wrk -t2 -c32 -d"$DURATION" --latency -s scripts/wrk/refresh.lua "$BASE/auth/refresh" -- "$WORK/chains" 2 2>&1)"
    seq 1 "$CHAINS" | awk -v p="ab${round}u" '{ printf "%s%d load test password %d\n", p, $1, $1 }' > "$WORK/users"
    login="$(wrk -t2 -c32 -d"$DURATION" --latency -s scripts/wrk/login.lua "$BASE/auth/login" -- "$WORK/users")"
    echo "round $round $spec: /auth/me $(figure "$me"), refresh $(figure "$refresh"), login $(figure "$login")"
    for case in me refresh login; do
      rps="$(awk '/Requests\/sec/ { print $2 }' <<< "${!case}")"
      SUM[$spec $case]="$(awk -v a="${SUM[$spec $case]:-0}" -v b="${rps:-0}" 'BEGIN { print a + b }')"
    done
    cleanup
    WORK="" SERVER_PID="" PG_DB=""
  done
done

for spec in "$@"; do
  line="mean $spec:"
  for case in me refresh login; do
    mean="$(awk -v s="${SUM[$spec $case]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }')"
    ratio="$(awk -v a="${SUM[$spec $case]}" -v b="${SUM[$1 $case]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')"
    line="$line $case $mean req/s (x$ratio)"
  done
  echo "$line"
done
