#!/usr/bin/env bash
# Load test of a release build with wrk (Debian: apt-get install wrk).
#
#   scripts/load.sh                    # fresh SQLite databases in a temporary directory
#   POSTGRES_URL=postgres://…/empty scripts/load.sh   # real traffic on PostgreSQL too
#   DATABASE_URL=postgres://… scripts/load.sh   # the first section against PostgreSQL
#   JUNK_FLOOD=0 REAL_TRAFFIC=0 SESSIONS_MODES=0 MFA_LOGIN=0 scripts/load.sh  # without those sections
#   TOLLGATE_BIN=/path/to/tollgate scripts/load.sh   # that binary, no cargo build
#
# Sections: the single-token cases (healthz, /auth/me, refresh, login, a login flood) on
# DATABASE_URL; real traffic (/auth/me over 1,000 and 30,000 users' tokens, refresh along
# 128 chains) on a fresh SQLite database and, when POSTGRES_URL names an empty database,
# on PostgreSQL; the junk flood, with a forgot-password flood among its cases (mail on, to
# an SMTP sink of aiosmtpd in a venv the script makes; FORGOT_FLOOD=0 skips it); the
# password + TOTP login against the password login, taking turns (MFA_LOGIN=0 skips it). Every
# case runs with the same settings (DURATION, THREADS, CONNECTIONS; the logins of the last
# section MFA_CONNECTIONS); the figures that
# matter are the ratios printed at the end, all taken in this one run. A case with errors (non-2xx or socket errors) is marked, and a
# ratio made from it counts as missed.
set -euo pipefail
# A binary to test instead of building one (a path relative to where the script is run).
[ -z "${TOLLGATE_BIN:-}" ] || TOLLGATE_BIN="$(realpath "$TOLLGATE_BIN")"
[ -z "${ARGON2_COST_BIN:-}" ] || ARGON2_COST_BIN="$(realpath "$ARGON2_COST_BIN")"
cd "$(dirname "$0")/.."
source scripts/lib/ready.sh

DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-32}"
USERS="${USERS:-64}"
PORT="${PORT:-18911}"
BASE="http://127.0.0.1:$PORT"
CORES="$(nproc)"

command -v wrk > /dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v curl > /dev/null || { echo "curl is missing: apt-get install curl" >&2; exit 1; }
command -v python3 > /dev/null || { echo "python3 is missing: apt-get install python3" >&2; exit 1; }

# Linux's autogroup gives each session a scheduling group; PostgreSQL, started in a
# session of its own, then waits in a group of its own, and on the 6.18 kernel of the
# development machine that mostly idle group waited up to seconds for a core while
# tollgate and wrk kept both busy (BENCHMARKS.md, "The PostgreSQL tail"). The PostgreSQL
# figures are only the server's own with it off (sysctl kernel.sched_autogroup_enabled=0).
AUTOGROUP="$(cat /proc/sys/kernel/sched_autogroup_enabled 2> /dev/null || echo absent)"
if [ -n "${POSTGRES_URL:-}" ] && [ "$AUTOGROUP" = 1 ]; then
  echo "warning: kernel.sched_autogroup_enabled=1: PostgreSQL's latencies will include the" \
    "scheduler starving its group (BENCHMARKS.md, \"The PostgreSQL tail\")" >&2
fi

# With TOLLGATE_BIN, nothing is built; the argon2 bound then comes from ARGON2_COST_BIN
# (the argon2_cost example of the same build), and without it the login figures are n/a.
if [ -n "${TOLLGATE_BIN:-}" ]; then
  BIN="$TOLLGATE_BIN"
  ARGON2_COST="${ARGON2_COST_BIN:-}"
else
  echo "== building the release binary"
  cargo build --release --quiet --bin tollgate --example argon2_cost
  BIN="${CARGO_TARGET_DIR:-target}/release/tollgate"
  ARGON2_COST="${CARGO_TARGET_DIR:-target}/release/examples/argon2_cost"
fi
ARGON2_MS="n/a" ARGON2_PARALLEL="n/a"
[ -z "$ARGON2_COST" ] || read -r ARGON2_MS ARGON2_PARALLEL <<< "$("$ARGON2_COST")"

WORK="$(mktemp -d)"
SERVER_PID="" SMTP_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2> /dev/null && wait "$SERVER_PID" 2> /dev/null
  [ -n "$SMTP_PID" ] && { kill "$SMTP_PID" 2> /dev/null; wait "$SMTP_PID" 2> /dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT

export DATABASE_URL="${DATABASE_URL:-sqlite://$WORK/tollgate.db}"
export JWT_KEYS_DIR="$WORK/keys" BIND_ADDR="127.0.0.1:$PORT" AUTH_RATE_LIMIT_PER_MIN=0 RUST_LOG=warn

load_average() { cut -d' ' -f1-3 /proc/loadavg; }
rss_kib() { awk -v key="$1:" '$1 == key { print $2 }' "/proc/$SERVER_PID/status"; }
now_ms() { date +%s%3N; }

# The highest resident memory of any server this run started, taken as each one stops.
PEAK_KIB=0
start_server() {
  "$BIN" > "$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_ready "$SERVER_PID" "$WORK/server.log" "$BASE/readyz"
}
# Users made in bulk are hashed at a cheap cost; the server then restarts at the default.
start_cheap_server() { ARGON2_MEMORY_KIB=8 ARGON2_ITERATIONS=1 start_server; }
stop_server() {
  local peak
  peak="$(rss_kib VmHWM)"
  [ "${peak:-0}" -gt "$PEAK_KIB" ] && PEAK_KIB="$peak"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2> /dev/null || true
  SERVER_PID=""
}

# wrk prints latency like 512.00us, 1.25ms or 1.02s; this turns one into milliseconds.
to_ms() { awk '{ v = $1; if (v ~ /us$/) print v / 1000; else if (v ~ /ms$/) print v + 0; else if (v ~ /s$/) print v * 1000; else print v }'; }

# wrk_figures OUTPUT: "req/s p50-ms p99-ms errors" (errors: non-2xx + socket errors).
wrk_figures() {
  local rps p50 p99 non2xx socket
  rps="$(echo "$1" | awk '/^Requests\/sec/ { print $2 }')"
  p50="$(echo "$1" | awk '$1 == "50%" { print $2 }' | to_ms)"
  p99="$(echo "$1" | awk '$1 == "99%" { print $2 }' | to_ms)"
  non2xx="$(echo "$1" | awk '/Non-2xx/ { print $5 }')"
  socket="$(echo "$1" | awk '/Socket errors/ { gsub(",", ""); print $4 + $6 + $8 + $10 }')"
  echo "${rps:-0} ${p50:-0} ${p99:-0} $(( ${non2xx:-0} + ${socket:-0} ))"
}

# run NAME CONNECTIONS wrk-arguments… : records req/s, p50, p99 and errors of the case.
declare -A RPS P50 P99 ERRORS
run() {
  local name="$1" connections="$2"; shift 2
  local out
  out="$(wrk --latency -t "$THREADS" -c "$connections" -d "$DURATION" "$@" 2>&1)"
  read -r "RPS[$name]" "P50[$name]" "P99[$name]" "ERRORS[$name]" <<< "$(wrk_figures "$out")"
  RUN_OUT="$out"
  local mark=""
  [ "${ERRORS[$name]}" -gt 0 ] && mark="   ** errors: this figure does not count **"
  printf '%-30s %10s req/s   p50 %8s ms   p99 %8s ms   errors %s%s\n' \
    "$name" "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ERRORS[$name]}" "$mark"
}

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

echo "== one token ($THREADS threads, $CONNECTIONS connections, $DURATION per case," \
  "database ${DATABASE_URL%%://*}, load average $(load_average))"
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
stop_server

# ---------------------------------------------------------------------------------------
# Real traffic (issue 16): REAL_USERS users, made at a cheap argon2 cost; the server then
# restarts at the default cost with empty caches. /auth/me where every request carries
# another user's token, over the first REAL_USERS_FEW of them and over all, each after a
# warm-up that presents every token once (as clients that have been online a while); then
# refresh along REAL_CHAINS independent chains, more than connections, so that no
# connection waits for a token.
REAL_USERS="${REAL_USERS:-30000}"
REAL_USERS_FEW="${REAL_USERS_FEW:-1000}"
REAL_CHAINS="${REAL_CHAINS:-128}"
WARM_UP="${WARM_UP:-3s}"

# real_traffic LABEL DATABASE-URL: the cases named "LABEL me few", "LABEL me all", "LABEL refresh".
real_traffic() {
  local label="$1" url="$2" dir="$WORK/real-$1"
  mkdir -p "$dir"
  echo
  echo "== real traffic on $label: signing up $REAL_USERS users (cheap argon2 cost)"
  local made_ms
  made_ms="$(now_ms)"
  DATABASE_URL="$url" start_cheap_server
  scripts/signup_users.py "$BASE" "$REAL_USERS" "real${RUN}${label}" "$dir/access" "$dir/refresh"
  stop_server
  echo "   made in $(( ($(now_ms) - made_ms) / 1000 )) s"
  head -n "$REAL_USERS_FEW" "$dir/access" > "$dir/access-few"
  head -n "$REAL_CHAINS" "$dir/refresh" > "$dir/chains"
  DATABASE_URL="$url" start_server
  echo "== real traffic on $label ($THREADS threads, $CONNECTIONS connections, $DURATION per case," \
    "load average $(load_average))"
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARM_UP" -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$dir/access-few" > /dev/null
  run "$label me $REAL_USERS_FEW users" "$CONNECTIONS" -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$dir/access-few"
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "$WARM_UP" -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$dir/access" > /dev/null
  run "$label me $REAL_USERS users" "$CONNECTIONS" -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$dir/access"
  run "$label refresh $REAL_CHAINS chains" "$CONNECTIONS" -s scripts/wrk/refresh.lua "$BASE/auth/refresh" -- "$dir/chains" "$THREADS"
  echo "   resident memory peak of this server: $(( $(rss_kib VmHWM) / 1024 )) MiB"
  stop_server
}

REAL_BACKENDS=()
if [ "${REAL_TRAFFIC:-1}" != 0 ]; then
  real_traffic sqlite "sqlite://$WORK/real.db"
  REAL_BACKENDS+=(sqlite)
  if [ -n "${POSTGRES_URL:-}" ]; then
    real_traffic postgres "$POSTGRES_URL"
    REAL_BACKENDS+=(postgres)
  else
    echo "(POSTGRES_URL is not set: no real traffic on PostgreSQL, so no PostgreSQL ratios)"
  fi
fi

# ---------------------------------------------------------------------------------------
# Sessions (issue 25): SESSIONS_PER_USER=1 (the users row) and =5 (the sessions table)
# take turns (scripts/ab.sh), SESSION_ROUNDS times: /auth/me over 1,000 users and refresh
# along 128 chains, on SQLite and, with POSTGRES_URL, on PostgreSQL (a fresh database
# beside it for each turn).
declare -A SESSIONS_RATIO
sessions_modes() {
  local label="$1" out
  echo
  echo "== sessions on $label: SESSIONS_PER_USER=1 and =5 taking turns, load average $(load_average)"
  out="$(ROUNDS="${SESSION_ROUNDS:-2}" USERS=1000 CHAINS=128 DURATION="$DURATION" \
    scripts/ab.sh "SESSIONS_PER_USER=1@$BIN" "SESSIONS_PER_USER=5@$BIN")"
  echo "$out"
  local five
  five="$(grep '^mean SESSIONS_PER_USER=5' <<< "$out")"
  SESSIONS_RATIO[$label me]="$(sed -E 's/.* me [0-9]+ req\/s \(x([0-9.]+)\).*/\1/' <<< "$five")"
  SESSIONS_RATIO[$label refresh]="$(sed -E 's/.* refresh [0-9]+ req\/s \(x([0-9.]+)\).*/\1/' <<< "$five")"
}
SESSION_BACKENDS=()
if [ "${SESSIONS_MODES:-1}" != 0 ]; then
  sessions_modes sqlite
  SESSION_BACKENDS+=(sqlite)
  if [ -n "${POSTGRES_URL:-}" ]; then
    POSTGRES="${POSTGRES_URL%/*}" sessions_modes postgres
    SESSION_BACKENDS+=(postgres)
  fi
fi

# ---------------------------------------------------------------------------------------
# Junk flood (issue 18): /auth/me over JUNK_USERS users, every request carrying another
# user's token, alone and then beside each kind of request anyone can send without a
# valid token. Each junk kind runs on JUNK_CONNECTIONS connections of its own; /auth/me
# must keep >= 0.7 x its throughput alone beside each. Rate limits stay off (as above),
# as if the junk came from many addresses: the worst case.
#
# The forgot flood (issue 26) is one more such kind: POST /auth/password/forgot, where
# FORGOT_KNOWN of the requests (default half) name a real user's address (here the users
# have emails, <username>@example.com) and the others an address no account has, a new
# one each request (scripts/wrk/forgot.lua). Every request writes (the address's
# cooldown); one naming a user also queues a mail, at most one per account per
# MAIL_COOLDOWN_SECS (60 s, so each user's first request of the case), which the server's
# sender delivers while the flood goes on. The mail goes to an SMTP sink on this machine
# (scripts/smtp_sink.py, aiosmtpd from PyPI in a venv made here, SMTP_VENV), so the whole
# section's server runs with mail on. FORGOT_FLOOD=0 skips the case, the sink and the venv.
JUNK_USERS="${JUNK_USERS:-1000}"
JUNK_DURATION="${JUNK_DURATION:-6s}"
JUNK_CONNECTIONS="${JUNK_CONNECTIONS:-2}"
ME_CONNECTIONS="${ME_CONNECTIONS:-16}"
FEED_TOKEN="load-test-revocation-feed-token"
FORGOT_FLOOD="${FORGOT_FLOOD:-1}"
FORGOT_KNOWN="${FORGOT_KNOWN:-0.5}"
FORGOT_CASE="beside forgot ($FORGOT_KNOWN known)"
AIOSMTPD_VERSION="1.4.6"
SMTP_VENV="${SMTP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/aiosmtpd-$AIOSMTPD_VERSION}"

# start_smtp_sink: sets SMTP_PORT once the sink accepts (it prints its port when it
# listens; its output ending first means it died).
start_smtp_sink() {
  if ! "$SMTP_VENV/bin/python" -c 'import aiosmtpd' 2> /dev/null; then
    echo "== pip install aiosmtpd==$AIOSMTPD_VERSION (into $SMTP_VENV)"
    python3 -m venv "$SMTP_VENV"
    "$SMTP_VENV/bin/pip" install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
  fi
  exec {SMTP_OUT}< <(exec "$SMTP_VENV/bin/python" scripts/smtp_sink.py 2> "$WORK/smtp.log")
  SMTP_PID=$!
  if ! read -r SMTP_PORT <&"$SMTP_OUT"; then
    echo "the SMTP sink did not start:" >&2
    cat "$WORK/smtp.log" >&2
    exit 1
  fi
}
# stop_smtp_sink: SMTP_SAID is what the sink says as it stops ("received N messages").
stop_smtp_sink() {
  kill "$SMTP_PID"
  wait "$SMTP_PID" || true
  SMTP_PID=""
  SMTP_SAID="$(cat <&"$SMTP_OUT")"
  exec {SMTP_OUT}<&-
}
# The process's CPU time so far, in seconds (user + system).
cpu_secs() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}
# Mails the server has tried to send, by result (tollgate_mails_total).
mails() {
  curl -fs "$BASE/metrics" | awk -v result="result=\"$1\"" \
    'index($0, "tollgate_mails_total{") == 1 && index($0, result) { n += $NF } END { print n + 0 }'
}
# The mails queued and not sent yet (the outbox's rows), read beside the server on SQLite;
# n/a on PostgreSQL.
outbox_rows() {
  local path
  case "$DATABASE_URL" in
    sqlite://*) path="${DATABASE_URL#sqlite://}" path="${path%%\?*}" ;;
    *) echo "n/a"; return ;;
  esac
  python3 - "$path" << 'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
EOF
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

# junk_case NAME [wrk arguments of the junk…]: /auth/me over all users, beside the junk.
declare -A JUNK_ME JUNK_ERRORS
junk_case() {
  local name="$1"; shift
  local junk_pid="" me junk junk_rps junk_p99
  if [ $# -gt 0 ]; then
    wrk -t 1 -c "$JUNK_CONNECTIONS" -d "$JUNK_DURATION" --latency "$@" > "$WORK/junk.out" 2>&1 &
    junk_pid=$!
  fi
  me="$(wrk -t 1 -c "$ME_CONNECTIONS" -d "$JUNK_DURATION" --latency \
    -s scripts/wrk/bearers.lua "$BASE/auth/me" -- "$WORK/junk-tokens" 2>&1)"
  read -r rps p50 p99 errors <<< "$(wrk_figures "$me")"
  JUNK_ME[$name]="$rps"
  # For the table of figures, as "junk: NAME".
  RPS["junk: $name"]="$rps" P99["junk: $name"]="$p99" ERRORS["junk: $name"]="$errors"
  junk="-"
  if [ -n "$junk_pid" ]; then
    wait "$junk_pid"
    # The junk's errors: most kinds are refused by design (401, 409); see each caller.
    read -r junk_rps _ junk_p99 "JUNK_ERRORS[$name]" <<< "$(wrk_figures "$(cat "$WORK/junk.out")")"
    junk="$junk_rps req/s, p99 $junk_p99 ms"
  fi
  printf '%-34s %10s req/s   p50 %7s ms   p99 %7s ms   errors %-5s x%-5s junk: %s\n' \
    "$name" "$rps" "$p50" "$p99" "$errors" "$(ratio "$rps" "${JUNK_ME[alone]:-$rps}")" "$junk"
}

junk_flood() {
  echo
  echo "== junk flood: /auth/me over $JUNK_USERS users ($ME_CONNECTIONS connections) beside junk" \
    "($JUNK_CONNECTIONS connections), $JUNK_DURATION per case, load average $(load_average)"
  # The users are made at a cheap argon2 cost, then the server runs at the default cost,
  # so that junk logins and signups cost what they would in production.
  start_cheap_server
  scripts/signup_users.py "$BASE" "$JUNK_USERS" "junk${RUN}" "$WORK/junk-tokens" "$WORK/junk-refresh" \
    example.com
  stop_server
  seq 1 "$JUNK_USERS" | sed "s/.*/junk${RUN}u&@example.com/" > "$WORK/junk-emails"
  if [ "$FORGOT_FLOOD" != 0 ]; then
    start_smtp_sink
    echo "   SMTP sink on 127.0.0.1:$SMTP_PORT (pid $SMTP_PID); the server runs with mail on"
    export SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" MAIL_FROM="tollgate <no-reply@example.com>"
  fi
  REVOCATION_FEED_TOKEN="$FEED_TOKEN" start_server
  local taken="junk${RUN}u1"
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
  if [ "$FORGOT_FLOOD" != 0 ]; then
    local server_cpu sink_cpu sent_before
    server_cpu="$(cpu_secs "$SERVER_PID")" sink_cpu="$(cpu_secs "$SMTP_PID")" sent_before="$(mails sent)"
    junk_case "$FORGOT_CASE" -s scripts/wrk/forgot.lua "$BASE" -- "$WORK/junk-emails" "$FORGOT_KNOWN"
    # Every forgot is answered 202: any other answer makes the case's ratio count as missed.
    ERRORS["junk: $FORGOT_CASE"]=$(( ${ERRORS["junk: $FORGOT_CASE"]} + ${JUNK_ERRORS[$FORGOT_CASE]} ))
    echo "   forgot: ${JUNK_ERRORS[$FORGOT_CASE]} non-2xx or socket errors; mails sent during the case" \
      "$(( $(mails sent) - sent_before )), left in the outbox $(outbox_rows); CPU seconds during the case:" \
      "server $(awk -v a="$(cpu_secs "$SERVER_PID")" -v b="$server_cpu" 'BEGIN { printf "%.1f", a - b }')," \
      "SMTP sink $(awk -v a="$(cpu_secs "$SMTP_PID")" -v b="$sink_cpu" 'BEGIN { printf "%.1f", a - b }')"
  fi
  junk_case "alone, again"
  echo "target: every 'beside' case >= 0.70 x alone"
  if [ "$FORGOT_FLOOD" != 0 ]; then
    local by_end
    by_end="sent $(mails sent), retried $(mails retried), dropped $(mails dropped), left in the outbox $(outbox_rows)"
    stop_smtp_sink
    echo "   mails by the end: $by_end; the SMTP sink $SMTP_SAID"
    unset SMTP_URL MAIL_FROM
  fi
  stop_server
}

[ "${JUNK_FLOOD:-1}" = 0 ] || junk_flood

# ---------------------------------------------------------------------------------------
# Password + TOTP login (issue 27): the two-step login of an account with a TOTP factor
# against the password login of one without, taking turns on one server at the default
# argon2 cost, MFA_ROUNDS times. What is compared is logins per second: a login is one
# request without a factor, two with one (POST /auth/login answers the mfa_token, POST
# /auth/login/mfa with it and a code answers the tokens), so the two-step case counts the
# second steps answered 200 (scripts/wrk/mfa.lua prints them), not wrk's requests.
#
# A TOTP code is accepted once per user and time step (30 s), so the case needs more users
# than it logs in during any 30 s: MFA_USERS (default 4,000, enough for ~130 logins/s
# through two 10 s cases in a row) are signed up and enrolled at a cheap argon2 cost
# (scripts/mfa_users.py: setup, then confirm with the current step's code), then the server
# restarts at the default cost and every one changes its password, so that the hash their
# logins verify is made at the default cost (a hash is verified at the cost it was made
# with). Python computes each user's codes of the time steps the rounds cover, and the Lua
# takes user i's code for the step of the moment it sends the second step, and each user
# at most once a step (it waits for the next step if a thread ran out of users: counted,
# and the case then does not count). The password case cycles over MFA_PASSWORD_USERS
# users signed up at the default cost. Both cases run with one wrk thread per connection
# (MFA_CONNECTIONS of each), since the Lua must see a connection's answers in order.
# MFA_LOGIN=0 skips the section.
MFA_LOGIN="${MFA_LOGIN:-1}"
MFA_USERS="${MFA_USERS:-4000}"
MFA_PASSWORD_USERS="${MFA_PASSWORD_USERS:-256}"
MFA_ROUNDS="${MFA_ROUNDS:-3}"
MFA_CONNECTIONS="${MFA_CONNECTIONS:-8}"
MFA_PASSWORD_CASE="password login"
MFA_CASE="password + TOTP login"
declare -A LOGINS

# A wrk duration (10s, 2m, 1h or seconds) in seconds.
duration_secs() {
  case "$1" in
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *h) echo $(( ${1%h} * 3600 )) ;;
    *) echo "$1" ;;
  esac
}

# The server's CPU seconds so far by its threads' kinds: "argon2 http database other"
# (argon2-N hash; actix-rt… serve HTTP; sqlite-writer, sqlite-checkpoint, r2d2-… and
# tokio-rt-worker, the pool that runs the reads, are the database).
thread_cpu() {
  local task
  for task in "/proc/$SERVER_PID/task/"*; do
    echo "$(cat "$task/comm" 2> /dev/null) $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$task/stat" 2> /dev/null)"
  done | awk -v hz="$(getconf CLK_TCK)" '
    $1 ~ /^argon2/ { a += $NF; next }
    $1 ~ /^actix-rt/ { h += $NF; next }
    $1 ~ /^(sqlite|r2d2|tokio-rt)/ { d += $NF; next }
    { o += $NF }
    END { printf "%.2f %.2f %.2f %.2f\n", a / hz, h / hz, d / hz, o / hz }'
}

# mfa_case NAME ROUND: one case of a round, with the server's CPU per login, in all and
# by its threads' kinds.
mfa_case() {
  local name="$1 (round $2)" cpu_before cpu logins threads_before
  cpu_before="$(cpu_secs "$SERVER_PID")" threads_before="$(thread_cpu)"
  if [ "$1" = "$MFA_CASE" ]; then
    THREADS="$MFA_CONNECTIONS" run "$name" "$MFA_CONNECTIONS" -s scripts/wrk/mfa.lua "$BASE/auth/login" \
      -- "$WORK/mfa/codes" "$MFA_CONNECTIONS" "$WORK/mfa/used"
    local said
    said="$(grep '^mfa logins/s:' <<< "$RUN_OUT")"
    LOGINS[$name]="$(awk '{ print $3 }' <<< "$said")"
    logins="$(sed -E 's/.*\(logins ([0-9]+) .*/\1/' <<< "$said")"
    # Refused codes, first steps without a token, lost requests and waits for a fresh
    # step all make the figure not count.
    local bad
    bad="$(sed -E 's/.*refused ([0-9]+), first steps without a token ([0-9]+), requests lost ([0-9]+), waits for a fresh step ([0-9]+).*/\1 + \2 + \3 + \4/' <<< "$said")"
    ERRORS[$name]=$(( ${ERRORS[$name]} + ${bad:-0} ))
    echo "   $said"
    [ "$(( bad ))" = 0 ] || echo "   ** the two steps went wrong $(( bad )) times: this figure does not count **"
  else
    THREADS="$MFA_CONNECTIONS" run "$name" "$MFA_CONNECTIONS" -s scripts/wrk/login.lua "$BASE/auth/login" \
      -- "$WORK/mfa/password-users"
    LOGINS[$name]="${RPS[$name]}"
    logins="$(awk '/ requests in / { print $1 }' <<< "$RUN_OUT")"
  fi
  cpu="$(awk -v a="$(cpu_secs "$SERVER_PID")" -v b="$cpu_before" 'BEGIN { printf "%.2f", a - b }')"
  echo "   logins/s ${LOGINS[$name]}; server CPU $cpu s, per login (ms):" \
    "$(awk -v c="$cpu" -v n="${logins:-0}" -v after="$(thread_cpu)" -v before="$threads_before" 'BEGIN {
      if (n == 0) { print "n/a"; exit }
      split(after, a, " "); split(before, b, " ")
      printf "%.2f (argon2 %.2f, http %.2f, database %.2f, other %.2f)", c * 1000 / n,
        (a[1] - b[1]) * 1000 / n, (a[2] - b[2]) * 1000 / n, (a[3] - b[3]) * 1000 / n, (a[4] - b[4]) * 1000 / n }')"
}

MFA_RATIO="" MFA_CASES=()
mfa_login() {
  local dir="$WORK/mfa" url made_ms
  mkdir -p "$dir"
  url="sqlite://$dir/mfa.db"
  echo
  echo "== password + TOTP login: enrolling $MFA_USERS users (cheap argon2 cost)"
  made_ms="$(now_ms)"
  DATABASE_URL="$url" start_cheap_server
  scripts/mfa_users.py enrol "$BASE" "$MFA_USERS" "mfa${RUN}" "$dir/enrolled"
  stop_server
  echo "   enrolled in $(( ($(now_ms) - made_ms) / 1000 )) s"
  made_ms="$(now_ms)"
  DATABASE_URL="$url" start_server
  scripts/mfa_users.py rehash "$BASE" "$dir/enrolled"
  scripts/signup_users.py "$BASE" "$MFA_PASSWORD_USERS" "pw${RUN}" "$dir/pw-access" "$dir/pw-refresh"
  seq 1 "$MFA_PASSWORD_USERS" | awk -v p="pw${RUN}u" '{ printf "%s%d load test password %d\n", p, $1, $1 }' \
    > "$dir/password-users"
  stop_server
  echo "   their passwords changed at the default cost, and $MFA_PASSWORD_USERS users without a factor" \
    "signed up at it, in $(( ($(now_ms) - made_ms) / 1000 )) s"
  DATABASE_URL="$url" start_server
  # The codes of every step from now to past the last round (each case and its start).
  local steps
  steps=$(( 2 * MFA_ROUNDS * ($(duration_secs "$DURATION") + 5) / 30 + 4 ))
  scripts/mfa_users.py codes "$dir/enrolled" "$steps" > "$dir/codes"
  echo "== password + TOTP login against password login ($MFA_CONNECTIONS connections, a wrk thread each," \
    "$DURATION per case, $MFA_ROUNDS rounds taking turns, load average $(load_average))"
  wrk -t "$MFA_CONNECTIONS" -c "$MFA_CONNECTIONS" -d "$WARM_UP" \
    -s scripts/wrk/login.lua "$BASE/auth/login" -- "$dir/password-users" > /dev/null
  local round first second mfa_sum=0 password_sum=0 ratios=()
  for round in $(seq 1 "$MFA_ROUNDS"); do
    # Odd rounds start with the password case, even ones with the two steps.
    first="$MFA_PASSWORD_CASE" second="$MFA_CASE"
    [ $(( round % 2 )) = 0 ] && first="$MFA_CASE" second="$MFA_PASSWORD_CASE"
    mfa_case "$first" "$round"
    mfa_case "$second" "$round"
    MFA_CASES+=("$MFA_CASE (round $round)" "$MFA_PASSWORD_CASE (round $round)")
    ratios+=("$(ratio "${LOGINS[$MFA_CASE (round $round)]}" "${LOGINS[$MFA_PASSWORD_CASE (round $round)]}")")
    mfa_sum="$(awk -v a="$mfa_sum" -v b="${LOGINS[$MFA_CASE (round $round)]}" 'BEGIN { print a + b }')"
    password_sum="$(awk -v a="$password_sum" -v b="${LOGINS[$MFA_PASSWORD_CASE (round $round)]}" 'BEGIN { print a + b }')"
  done
  MFA_RATIO="$(ratio "$mfa_sum" "$password_sum")"
  echo "   logins/s, password + TOTP ÷ password, by round: ${ratios[*]}; over the rounds: $MFA_RATIO" \
    "(target >= 0.95)"
  stop_server
}

[ "$MFA_LOGIN" = 0 ] || mfa_login

# ---------------------------------------------------------------------------------------
# The figures. A ratio of cases of which one had errors, or did not run, does not count.
ARGON2_BOUND="$(awk -v c="$CORES" -v ms="$ARGON2_MS" 'BEGIN { if (ms + 0 > 0) printf "%.1f", c * 1000 / ms; else print "n/a" }')"
IDLE_MIB="$(awk -v k="$IDLE_KIB" 'BEGIN { printf "%.1f", k / 1024 }')"
PEAK_MIB="$(awk -v k="$PEAK_KIB" 'BEGIN { printf "%.1f", k / 1024 }')"
FEW="$REAL_USERS_FEW users" ALL="$REAL_USERS users" CHAINS="$REAL_CHAINS chains"

# figure DESCRIPTION VALUE OP TARGET [CASE…]: one line of the table; the cases are those
# the value was computed from.
figure() {
  local description="$1" value="$2" op="$3" target="$4"; shift 4
  local verdict case
  verdict="$(awk -v v="$value" -v op="$op" -v t="$target" \
    'BEGIN { if (v == "n/a" || v == "") print "n/a"; else print ((op == ">=") ? v >= t : v <= t) ? "reached" : "MISSED" }')"
  for case in "$@"; do
    if [ -z "${RPS[$case]:-}" ]; then
      verdict="n/a (not run: $case)"
    elif [ "${ERRORS[$case]}" -gt 0 ]; then
      verdict="MISSED (errors in: $case)"
    fi
  done
  printf '%-66s %8s   target %s %-6s %s\n' "$description" "${value:-n/a}" "$op" "$target" "$verdict"
}
# rps_ratio A B, p99_ratio A B: of two cases, "n/a" when one did not run.
rps_ratio() { ratio "${RPS[$1]:-0}" "${RPS[$2]:-0}"; }
p99_ratio() { ratio "${P99[$1]:-0}" "${P99[$2]:-0}"; }

echo
echo "== figures ($CORES cores, argon2id verify ${ARGON2_MS} ms, load average $(load_average)," \
  "kernel.sched_autogroup_enabled=$AUTOGROUP)"
figure "/auth/me ÷ /healthz throughput (one token, ${DATABASE_URL%%://*})" \
  "$(rps_ratio me healthz)" ">=" 0.80 me healthz
figure "login ÷ argon2 bound, cores ÷ one verify ($ARGON2_BOUND/s)" \
  "$(ratio "${RPS[login]}" "$ARGON2_BOUND")" ">=" 0.85 login
figure "login ÷ argon2 verifies/s measured on all cores ($ARGON2_PARALLEL/s)" \
  "$(ratio "${RPS[login]}" "$ARGON2_PARALLEL")" ">=" 0.85 login
figure "/auth/me p99 during login flood ÷ without" \
  "$(p99_ratio "me during login flood" "me, 8 connections")" "<=" 3 "me during login flood" "me, 8 connections"
for backend in "${REAL_BACKENDS[@]}"; do
  figure "$backend: /auth/me $ALL ÷ $FEW throughput" \
    "$(rps_ratio "$backend me $ALL" "$backend me $FEW")" ">=" 0.50 "$backend me $ALL" "$backend me $FEW"
done
figure "sqlite: refresh ($CHAINS) ÷ /auth/me ($FEW) throughput" \
  "$(rps_ratio "sqlite refresh $CHAINS" "sqlite me $FEW")" ">=" 0.25 "sqlite refresh $CHAINS" "sqlite me $FEW"
figure "refresh ($CHAINS) PostgreSQL ÷ SQLite throughput" \
  "$(rps_ratio "postgres refresh $CHAINS" "sqlite refresh $CHAINS")" ">=" 0.60 \
  "postgres refresh $CHAINS" "sqlite refresh $CHAINS"
for users in "$FEW" "$ALL"; do
  figure "/auth/me ($users) p99 PostgreSQL ÷ SQLite" \
    "$(p99_ratio "postgres me $users" "sqlite me $users")" "<=" 3 "postgres me $users" "sqlite me $users"
done
for backend in "${SESSION_BACKENDS[@]}"; do
  for case in me refresh; do
    figure "$backend: $case, SESSIONS_PER_USER=5 ÷ =1 throughput (taking turns)" \
      "${SESSIONS_RATIO[$backend $case]}" ">=" 0.90
  done
done
if [ "${JUNK_FLOOD:-1}" != 0 ] && [ "$FORGOT_FLOOD" != 0 ]; then
  figure "/auth/me ($JUNK_USERS users) beside a forgot flood ÷ alone" \
    "$(rps_ratio "junk: $FORGOT_CASE" "junk: alone")" ">=" 0.70 "junk: $FORGOT_CASE" "junk: alone"
fi
if [ "$MFA_LOGIN" != 0 ]; then
  figure "password + TOTP login ÷ password login, logins/s ($MFA_ROUNDS rounds taking turns)" \
    "$MFA_RATIO" ">=" 0.95 "${MFA_CASES[@]}"
fi
figure "resident memory idle (MiB)" "$IDLE_MIB" "<=" 20
figure "resident memory peak, every server of this run (MiB)" "$PEAK_MIB" "<=" 100
figure "start-up to /readyz 200 (ms)" "$STARTUP_MS" "<=" 200
