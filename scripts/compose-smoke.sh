#!/usr/bin/env bash
# The docker-compose stack, started and used for real (issue 31). It builds the tollgate
# image from the Dockerfile as a user would (`podman-compose up --build -d`), waits for
# the healthchecks, walks the README's "Try it" block against localhost:8080, takes the
# stack down and up again and checks that users, sessions and signing keys survive, and
# checks the container's uid, the CLI through `podman-compose exec`/`run` and the mail
# service. Each step prints PASS, FAIL or SKIP with its name; the script exits non-zero
# on any FAIL and always takes the stack down again (volumes included).
#
#   scripts/compose-smoke.sh        (as root, on Debian bookworm; .ci/run runs it)
#
# No image registry is reachable from CI's machines, so the images the Dockerfile and
# docker-compose.yml name cannot be pulled. The script makes local STAND-INS under those
# names instead (README, "docker compose"), each labelled org.tollgate.stand-in:
#   debian:<release>-slim        debootstrap --variant=minbase, the root file system the
#                                official slim image is made from;
#   rust:<version>-slim-<release> that base + gcc, libc6-dev, the machine's own rustup
#                                toolchain and the machine's CA certificates;
#   postgres:17-alpine           Debian's postgresql package (15) with an entrypoint that
#                                honours POSTGRES_USER/PASSWORD/DB like the official one;
#   axllent/mailpit              MailDev (npm) on Mailpit's ports, SMTP 1025 and UI 8025.
# The Dockerfile and docker-compose.yml stay written for the official images.
#
# It installs what it needs (podman, runc, debootstrap, podman-compose in a venv, ...).
# Under ~/.cache/tollgate/compose-smoke (COMPOSE_SMOKE_CACHE) it keeps the venv and each
# stand-in as a `podman save` tarball named by a hash of what built it; an image already
# in podman's store with that hash is used as it is. The tollgate image's own build cache
# is podman's layer cache, as for any user. An empty cache only makes the run slower.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/scripts/compose-smoke"
CACHE="${COMPOSE_SMOKE_CACHE:-$HOME/.cache/tollgate/compose-smoke}"
VENV="$CACHE/venv"
PROJECT=tollgate-smoke
URL=http://localhost:8080
MAIL_API=http://localhost:8025
# Ports docker-compose.yml publishes on the host's loopback.
PUBLISHED_PORTS=(8080 8025)
# Seconds a service may take to become healthy, after each `up`.
HEALTH_DEADLINE=180
APT_PACKAGES=(podman runc golang-github-containernetworking-plugin-dnsname debootstrap curl jq)
# The engine settings that work on these machines (issue 31): runc, since crun fails on
# their hybrid cgroup layout; cgroupfs, since no systemd runs; no default ulimits, since
# they cannot be set.
CONTAINERS_CONF_TEXT='[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"'

START=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0
PHASE=""
PHASE_START=0
TIMES=()
STACK_UP=false
WORK=""
OLD_IMAGES=""
SAVE_PID=""
# The password the README's "Try it" block leaves alice with.
ALICE_PASSWORD="a new long password"

# --- reporting ---------------------------------------------------------------------------

phase() {
  end_phase
  PHASE="$1"
  PHASE_START=$SECONDS
  echo "-- $PHASE"
}

end_phase() {
  if [[ -n "$PHASE" ]]; then
    local took=$((SECONDS - PHASE_START))
    TIMES+=("$(printf '  %-34s %5d s' "$PHASE" "$took")")
    echo "   ($PHASE: ${took} s)"
    PHASE=""
  fi
}

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS  $1"
}

skip() {
  SKIPPED=$((SKIPPED + 1))
  echo "SKIP  $1 ($2)"
}

# fail NAME [FILE]: FILE's last lines say why.
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL  $1"
  if [[ -n "${2:-}" && -s "$2" ]]; then
    tail -n 25 "$2" | sed 's/^/      | /'
  fi
}

# step NAME COMMAND...: runs COMMAND with its output in a file, shown only on failure
# (and always where SHOW=1).
step() {
  local name="$1" out
  shift
  out="$(mktemp "$WORK/step.XXXXXX")"
  if "$@" >"$out" 2>&1; then
    pass "$name"
    [[ "${SHOW:-}" != 1 ]] || sed 's/^/      | /' "$out"
  else
    fail "$name" "$out"
    return 1
  fi
}

# required NAME COMMAND...: a step that every later one needs; stops the run when it fails.
required() {
  step "$@" || {
    echo "stopping: the steps after \"$1\" need it"
    exit 1
  }
}

finish() {
  local status=$?
  set +e
  end_phase
  if [[ -n "$SAVE_PID" ]]; then
    phase "cache: save the new stand-ins"
    SHOW=1 step "stand-ins saved to $CACHE/images" wait_for_save
  fi
  if [[ -n "$WORK" ]]; then
    phase "teardown"
    teardown
    end_phase
    rm -rf "$WORK"
  fi
  echo "-- time per phase"
  printf '%s\n' "${TIMES[@]}"
  printf '  %-34s %5d s\n' "total" $((SECONDS - START))
  if [[ $status -ne 0 && $FAILED -eq 0 ]]; then
    FAILED=1
    echo "FAIL  compose-smoke stopped early (exit $status)"
  fi
  echo "compose-smoke: $PASSED passed, $FAILED failed, $SKIPPED skipped"
  [[ $FAILED -eq 0 ]] || exit 1
  exit 0
}

# --- the machine -------------------------------------------------------------------------

install_packages() {
  local missing=()
  for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' \
      || missing+=("$package")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "apt-get install ${missing[*]}"
    apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || return 1
  fi
  echo "podman $(podman --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}')"
}

# /etc/containers/containers.conf is written only where there is none. A different one
# is left alone, and this run uses its own copy instead (CONTAINERS_CONF).
configure_podman() {
  local system=/etc/containers/containers.conf
  if [[ ! -e "$system" ]]; then
    mkdir -p /etc/containers
    printf '%s\n' "$CONTAINERS_CONF_TEXT" >"$system"
    echo "wrote $system"
  elif [[ "$(cat "$system")" != "$CONTAINERS_CONF_TEXT" ]]; then
    printf '%s\n' "$CONTAINERS_CONF_TEXT" >"$CACHE/containers.conf"
    export CONTAINERS_CONF="$CACHE/containers.conf"
    echo "$system differs from the settings this script needs: left as it is," \
      "this run uses $CONTAINERS_CONF"
  fi
}

install_venv() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum <"$HERE/requirements.txt")"
  if [[ ! -x "$VENV/bin/podman-compose" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV" || return 1
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt" || return 1
    echo "$want" >"$stamp"
  fi
  "$VENV/bin/podman-compose" --version | head -n 1
}

# Nothing else may answer on the ports the stack publishes: the checks would talk to it.
ports_free() {
  python3 - "${PUBLISHED_PORTS[@]}" <<'EOF'
import socket
import sys

busy = []
for port in map(int, sys.argv[1:]):
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            try:
                s.connect((address, port))
            except OSError:
                continue
            busy.append(f"[{address}]:{port}")
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            busy.append(f"127.0.0.1:{port} (cannot bind)")
if busy:
    sys.exit("taken: " + ", ".join(busy) + "; stop whatever listens there and run again")
EOF
}

# --- stand-in images ---------------------------------------------------------------------

LABEL_KEY=org.tollgate.stand-in.key

# docker.io/library/NAME:TAG, as Docker reads a short name.
qualify() {
  local name="$1" first
  if [[ "$name" == */* ]]; then
    first="${name%%/*}"
    [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]] || name="docker.io/$name"
  else
    name="docker.io/library/$name"
  fi
  [[ "${name##*/}" == *:* || "$name" == *@* ]] || name="$name:latest"
  echo "$name"
}

key_of() {
  cat "$@" | sha256sum | cut -c1-16
}

image_key() {
  podman image inspect --format "{{ index .Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

# ensure_image NAME KEY BUILDER: NAME with label KEY in podman's store, from the store,
# else from its tarball in the cache, else built by BUILDER NAME KEY (and noted in
# $WORK/to-save for save_stand_ins).
ensure_image() {
  local name="$1" key="$2" builder="$3" slug tarball started=$SECONDS
  slug="$(echo "${name#docker.io/}" | tr '/:' '__')"
  tarball="$CACHE/images/$slug-$key.tar"
  if [[ "$(image_key "$name")" == "$key" ]]; then
    echo "$name: in podman's store"
    return
  fi
  if [[ -s "$tarball" ]]; then
    podman load -q -i "$tarball" >/dev/null
    if [[ "$(image_key "$name")" == "$key" ]]; then
      echo "$name: loaded from $tarball ($((SECONDS - started)) s)"
      return
    fi
  fi
  echo "$name: building"
  "$builder" "$name" "$key" || return 1
  [[ "$(image_key "$name")" == "$key" ]] || {
    echo "$name: the built image lacks label $LABEL_KEY=$key"
    return 1
  }
  echo "$name $slug $tarball" >>"$WORK/to-save"
  echo "$name: built ($((SECONDS - started)) s)"
}

# Saves the stand-ins built in this run into the cache, each replacing its older
# tarballs. It runs beside the tollgate build, which needs the cores, not the disk.
save_stand_ins() {
  local name slug tarball
  mkdir -p "$CACHE/images"
  while read -r name slug tarball; do
    rm -f "$CACHE/images/$slug"-*.tar
    podman save -q -o "$tarball.part" "$name" && mv "$tarball.part" "$tarball" || return 1
    echo "saved $tarball ($(du -h "$tarball" | cut -f1))"
  done <"$WORK/to-save"
}

# wait_for_save: waits for the save_stand_ins started in the background, if any.
wait_for_save() {
  [[ -n "$SAVE_PID" ]] || return 0
  local pid="$SAVE_PID"
  SAVE_PID=""
  local status=0
  wait "$pid" || status=1
  cat "$WORK/save.log"
  return $status
}

build_debian() {
  local name="$1" key="$2" rootfs="$WORK/rootfs"
  debootstrap --variant=minbase "$DEBIAN_RELEASE" "$rootfs" http://deb.debian.org/debian \
    >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 20 "$WORK/debootstrap.log"
    return 1
  }
  # As in the official image: the sources of the release, its updates and its security
  # archive, and no package lists or downloaded packages.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs/etc/apt/sources.list"
  sed "s/@RELEASE@/$DEBIAN_RELEASE/g" "$HERE/debian.sources" >"$rootfs/etc/apt/sources.list.d/debian.sources"
  : >"$rootfs/etc/resolv.conf"
  tar -C "$rootfs" --numeric-owner -c . | podman import -q \
    --change 'CMD ["bash"]' \
    --change "LABEL org.tollgate.stand-in=debian:$DEBIAN_RELEASE-slim: debootstrap --variant=minbase, not the official image" \
    --change "LABEL $LABEL_KEY=$key" \
    - "$name" >/dev/null
  rm -rf "$rootfs"
}

# podman_build NAME KEY CONTAINERFILE CONTEXT [podman build options]
podman_build() {
  local name="$1" key="$2" containerfile="$3" context="$4"
  shift 4
  podman build --pull=never -q -f "$containerfile" --build-arg BASE="$DEBIAN_IMAGE" \
    --build-arg STAND_IN_KEY="$key" -t "$name" "$@" "$context" >/dev/null
}

build_rust() {
  local context="$WORK/rust-context"
  mkdir -p "$context/ca-certificates"
  find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$context/ca-certificates/" \; 2>/dev/null
  podman_build "$1" "$2" "$HERE/rust.Containerfile" "$context" \
    --build-arg RUST_VERSION="$RUST_VERSION" -v "$(rustc --print sysroot):/host-toolchain:ro"
}

build_postgres() {
  local context="$WORK/postgres-context"
  mkdir -p "$context"
  cp "$HERE/postgres-entrypoint.sh" "$context/"
  podman_build "$1" "$2" "$HERE/postgres.Containerfile" "$context"
}

build_mail() {
  local context="$WORK/mail-context"
  mkdir -p "$context"
  cp "$HERE/maildev/package.json" "$HERE/maildev/package-lock.json" "$context/"
  (cd "$context" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --silent) || return 1
  cp "$(readlink -f "$(command -v node)")" "$context/node" || return 1
  podman_build "$1" "$2" "$HERE/mailpit.Containerfile" "$context"
}

# Builds the three images on the Debian base side by side; each one's output is shown.
stand_ins() {
  local names=(rust postgres mail) pids=() status=0
  ensure_image "$RUST_IMAGE" "$RUST_KEY" build_rust >"$WORK/image-rust.log" 2>&1 &
  pids+=($!)
  ensure_image "$POSTGRES_IMAGE" "$POSTGRES_KEY" build_postgres >"$WORK/image-postgres.log" 2>&1 &
  pids+=($!)
  ensure_image "$MAIL_IMAGE" "$MAIL_KEY" build_mail >"$WORK/image-mail.log" 2>&1 &
  pids+=($!)
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
    cat "$WORK/image-${names[$i]}.log"
  done
  return $status
}

# --- the stack ---------------------------------------------------------------------------

pc() {
  (cd "$SRC" && "$VENV/bin/podman-compose" -p "$PROJECT" "$@")
}

container_of() {
  podman ps -a --filter "label=io.podman.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

# What is left of this project, by label or by podman-compose's names: "<project>_…"
# for containers, volumes and networks, "pod_<project>" for its pod (which has no labels).
leftovers() {
  {
    podman ps -a --format 'container {{.Names}} {{index .Labels "io.podman.compose.project"}}'
    podman pod ls --format 'pod {{.Name}} {{index .Labels "io.podman.compose.project"}}'
    podman volume ls --format 'volume {{.Name}} {{index .Labels "io.podman.compose.project"}}'
    # (podman 4.3 cannot index a network's labels in a format)
    podman network ls --format 'network {{.Name}} -'
  } | awk -v p="$PROJECT" '$3 == p || index($2, p "_") == 1 || $2 == "pod_" p {print $1, $2}'
}

# The tollgate image and the build stage, whose layers are the next build's cache.
BUILD_CACHE_TAG=localhost/tollgate-smoke:build-stage
image_ids() {
  podman image inspect --format '{{.Id}}' localhost/tollgate:dev "$BUILD_CACHE_TAG" 2>/dev/null || true
}

# Tags the build stage, all of whose layers the build just made or used, so that they
# stay while the layers of earlier builds are removed.
keep_build_stage() {
  (cd "$SRC" && podman build -q --target build -f Dockerfile -t "$BUILD_CACHE_TAG" . >/dev/null)
}

# Everything of this project, even from a run that was killed before its own teardown.
# Best effort: what it cannot remove, the leftovers check (or the port check) reports.
teardown() {
  if [[ -n "${SRC:-}" && -d "$SRC" ]]; then
    pc down -v -t 10 >"$WORK/down.log" 2>&1 || cat "$WORK/down.log"
  fi
  local kind name
  for kind in container pod volume network; do
    for name in $(leftovers | awk -v k="$kind" '$1 == k {print $2}'); do
      case "$kind" in
        # --depend: tollgate's container requires db's; -i: it may be gone with it.
        container) podman rm -f -i --depend -t 10 "$name" ;;
        *) podman "$kind" rm -f "$name" ;;
      esac >/dev/null 2>&1 || echo "teardown: could not remove $kind $name"
    done
  done
  # The images this run's build replaced, with the layers only they used.
  local id
  for id in $OLD_IMAGES; do
    if ! grep -qx "$id" <<<"$(image_ids)"; then
      podman rmi -i "$id" >/dev/null 2>&1 || true
    fi
  done
  if [[ "$STACK_UP" == true ]]; then
    if [[ -z "$(leftovers)" ]]; then
      pass "teardown: no container, pod, volume or network of $PROJECT is left"
    else
      leftovers >"$WORK/leftovers"
      fail "teardown: left behind" "$WORK/leftovers"
    fi
  fi
}

# wait_healthy SERVICE: runs the service's healthcheck until it passes. Podman 4.3 runs
# healthchecks from systemd timers, and no systemd runs here, so nothing else runs them.
wait_healthy() {
  local service="$1" deadline=$((SECONDS + HEALTH_DEADLINE)) ctr
  while :; do
    ctr="$(container_of "$service")"
    if [[ -n "$ctr" ]] && podman healthcheck run "$ctr" >/dev/null 2>&1; then
      echo "$service healthy after $((SECONDS - deadline + HEALTH_DEADLINE)) s" \
        "(restarts: $(podman inspect --format '{{.RestartCount}}' "$ctr"))"
      return 0
    fi
    if [[ $SECONDS -ge $deadline ]]; then
      echo "$service not healthy within $HEALTH_DEADLINE s; state and log:"
      [[ -z "$ctr" ]] || {
        podman ps -a --filter "name=$ctr" --format '{{.Names}} {{.Status}}'
        podman logs --tail 30 "$ctr"
      }
      return 1
    fi
    sleep 1
  done
}

# http METHOD PATH [BODY [TOKEN]]: prints the status code, the body to $WORK/body.
http() {
  local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" "$URL$2")
  [[ -z "${3:-}" ]] || args+=(-H 'content-type: application/json' -d "$3")
  [[ -z "${4:-}" ]] || args+=(-H "authorization: Bearer $4")
  curl "${args[@]}"
}

# expect CODE METHOD PATH [BODY [TOKEN]]
expect() {
  local want="$1" got
  shift
  got="$(http "$@")" || true
  if [[ "$got" != "$want" ]]; then
    echo "$1 $2: $got, expected $want; body:"
    cat "$WORK/body"
    echo
    return 1
  fi
}

json() {
  jq -r "$1" "$WORK/body"
}

# --- the README's "Try it" block ---------------------------------------------------------

# Its paragraphs run in order in one shell, with curl wrapped to note each status code.
# A paragraph's comment names the codes its requests answer, e.g. "(204)" and "(401)";
# one that names none must answer 2xx throughout.
try_it() {
  local block="$WORK/try-it.txt" script="$WORK/try-it.sh" statuses="$WORK/try-it-status"
  awk '/^## Try it/ {found = 1} found && /^```sh/ {inside = 1; next} inside && /^```/ {exit} inside' \
    "$ROOT/README.md" >"$block"
  if [[ ! -s "$block" ]]; then
    echo "no sh block under \"## Try it\" in README.md" >"$WORK/try-it.err"
    fail "Try it: the block is in README.md" "$WORK/try-it.err"
    return
  fi
  mkdir -p "$statuses"
  {
    # shellcheck disable=SC2016
    echo 'curl() { local h rc; h="$(mktemp)"; command curl -D "$h" "$@"; rc=$?
      awk '\''/^HTTP\//{code=$2} END{print code ? code : "none"}'\'' "$h" >>"$STATUSES/$PARAGRAPH"
      rm -f "$h"; return $rc; }'
    awk '/^$/ {blank = 1; next} n == 0 || blank {print "PARAGRAPH=" ++n; blank = 0} {print}' "$block"
  } >"$script"
  (cd "$WORK" && STATUSES="$statuses" bash "$script" >"$WORK/try-it.out" 2>&1) || true
  local n=0 title want i
  local -a expected got
  while IFS= read -r -d '' paragraph; do
    n=$((n + 1))
    title="$(grep -m1 '^#' <<<"$paragraph" | sed 's/^# *//')" || true
    mapfile -t expected < <(grep '^#' <<<"$paragraph" | grep -oE '\([0-9]{3}' | tr -d '(' || true)
    mapfile -t got < <(cat "$statuses/$n" 2>/dev/null || true)
    {
      echo "statuses: ${got[*]:-none}"
      echo "--- paragraph:"
      echo "$paragraph"
      echo "--- output of the block so far:"
      cat "$WORK/try-it.out"
    } >"$WORK/try-it.why"
    local ok=true
    if [[ ${#got[@]} -eq 0 ]]; then
      ok=false
    elif [[ ${#expected[@]} -gt 0 ]]; then
      [[ "${got[*]}" == "${expected[*]}" ]] || ok=false
    else
      for i in "${got[@]}"; do [[ "$i" == 2?? ]] || ok=false; done
    fi
    want="${expected[*]:-2xx}"
    if $ok; then
      pass "Try it: $title [${got[*]}]"
    else
      fail "Try it: $title [want ${want// /, }]" "$WORK/try-it.why"
    fi
  done < <(awk 'BEGIN {RS = ""; ORS = "\0"} {print}' "$block")
}

# --- checks ------------------------------------------------------------------------------

check_runs_as_10001() {
  local status
  status="$(podman exec "$(container_of tollgate)" cat /proc/1/status)"
  grep -E '^(Uid|Gid):' <<<"$status"
  grep -qE '^Uid:\s+10001\s+10001\s+10001\s+10001$' <<<"$status" \
    && grep -qE '^Gid:\s+10001\s+10001\s+10001\s+10001$' <<<"$status"
}

check_key_files() {
  local listing
  listing="$(podman exec "$(container_of tollgate)" sh -c 'stat -c "%u %a %n" /data/keys /data/keys/*')"
  echo "$listing"
  awk 'NR == 1 && !($1 == 10001 && $2 == 700) {bad = 1}
       NR > 1 && !($1 == 10001 && $2 == 600) {bad = 1}
       END {exit bad || NR < 2}' <<<"$listing"
}

# The Dockerfile's own HEALTHCHECK (used by `docker run`; compose sets its own).
check_image_healthcheck() {
  local test
  test="$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' tollgate:dev)"
  echo "HEALTHCHECK $test"
  [[ "$test" == '["CMD-SHELL",'* ]] || return 1
  podman exec "$(container_of tollgate)" sh -c "$(jq -r '.[1]' <<<"$test")"
}

# .env reaches the container (env_file), except the settings the stack sets itself.
check_env_file() {
  local ctr
  ctr="$(container_of tollgate)"
  podman exec "$ctr" printenv COMPOSE_SMOKE_MARKER DATABASE_URL | sed 's/:[^:@]*@/:***@/'
  [[ "$(podman exec "$ctr" printenv COMPOSE_SMOKE_MARKER)" == from-dotenv ]] \
    && [[ "$(podman exec "$ctr" printenv DATABASE_URL)" == postgres://*@db:5432/* ]]
}

signup_bob() {
  expect 201 POST /auth/signup \
    '{"username":"bob","password":"bob has a long password","email":"bob@example.com"}' || return 1
  BOB_ACCESS="$(json .access_token)"
  BOB_REFRESH="$(json .refresh_token)"
  BOB_ID="$(json .user.id)"
  expect 200 GET /.well-known/jwks.json || return 1
  cp "$WORK/body" "$WORK/jwks-before.json"
  jq -c '[.keys[].kid]' "$WORK/jwks-before.json"
}

check_same_keys() {
  expect 200 GET /.well-known/jwks.json || return 1
  cp "$WORK/body" "$WORK/jwks-after.json"
  diff <(jq -S '[.keys[] | {kid, x, n, y}] | sort_by(.kid)' "$WORK/jwks-before.json") \
    <(jq -S '[.keys[] | {kid, x, n, y}] | sort_by(.kid)' "$WORK/jwks-after.json")
}

check_old_token_verifies() {
  local sub
  sub="$("$VENV/bin/python" "$HERE/verify_token.py" "$WORK/jwks-after.json" tollgate tollgate <<<"$BOB_ACCESS")"
  echo "sub $sub"
  [[ "$sub" == "$BOB_ID" ]]
}

check_old_refresh() {
  expect 200 POST /auth/refresh "{\"refresh_token\":\"$BOB_REFRESH\"}" || return 1
  [[ "$(json .user.id)" == "$BOB_ID" ]]
}

# create_user HOW NAME: `tollgate user create NAME` with the password on standard input,
# through `podman-compose exec` or `run`, then a login as NAME.
create_user() {
  local password="$2 has a long password"
  case "$1" in
    exec) printf '%s\n' "$password" | pc exec -T tollgate tollgate user create "$2" || return 1 ;;
    run) printf '%s\n' "$password" | pc run --rm -T tollgate user create "$2" || return 1 ;;
  esac
  login "$2" "$password"
}

# From inside the tollgate container to the mail service (curl speaks SMTP), then read
# back through the catcher's HTTP API on the host: compose's mail wiring, before tollgate
# sends mail itself (and reads SMTP_URL).
check_mail_wiring() {
  local subject="compose-smoke $$ $RANDOM"
  # The catcher may still be starting: curl retries a refused connection.
  podman exec -i "$(container_of tollgate)" sh -c \
    'curl -sS --retry 15 --retry-connrefused --retry-delay 1 --url smtp://mail:1025 \
       --mail-from smoke@example.com --mail-rcpt wiring@example.com -T -' \
    <<<"From: smoke@example.com
To: wiring@example.com
Subject: $subject

sent by scripts/compose-smoke.sh to the mail service" || return 1
  wait_for_mail "select(.subject == \"$subject\")"
}

# wait_for_mail JQ_FILTER: polls the catcher (MailDev's API: GET /email) for a mail that
# the filter selects, and leaves it in $WORK/mail.json.
wait_for_mail() {
  local deadline=$((SECONDS + 30))
  while [[ $SECONDS -lt $deadline ]]; do
    if curl -fsS "$MAIL_API/email" -o "$WORK/mails.json" \
      && jq -e "[.[] | $1] | last | select(. != null)" "$WORK/mails.json" >"$WORK/mail.json"; then
      jq -c '{subject, to: [.to[].address]}' "$WORK/mail.json"
      return 0
    fi
    sleep 1
  done
  echo "no such mail in the catcher within 30 s; it holds:"
  jq -c '[.[] | {subject, to: [.to[].address]}]' "$WORK/mails.json" 2>/dev/null || true
  return 1
}

# mail_token SUBJECT: the token of the link in the newest mail to alice whose subject has
# SUBJECT, in $token.
mail_token() {
  wait_for_mail "select(any(.to[]; .address == \"alice@example.com\") and (.subject | contains(\"$1\")))" \
    || return 1
  token="$(jq -r '.text // .html' "$WORK/mail.json" | grep -oE 'token=[A-Za-z0-9_%.~-]+' | head -n 1 | cut -d= -f2)"
  [[ -n "$token" ]] || {
    echo "no token= link in the mail"
    return 1
  }
}

# check_verification_mail: the link alice's signup mailed verifies her address.
check_verification_mail() {
  local token
  mail_token "confirm your email address" || return 1
  expect 200 POST /auth/email/verify "{\"token\":\"$token\"}"
}

# check_reset_mail CODE: the password-reset mail of the contract, once tollgate sends
# mail (issue 26); CODE is what POST /auth/password/forgot for alice answered.
check_reset_mail() {
  local token
  [[ "$1" == 202 ]] || {
    echo "POST /auth/password/forgot: $1, expected 202"
    return 1
  }
  mail_token "reset your password" || return 1
  expect 200 POST /auth/password/reset "{\"token\":\"$token\",\"new_password\":\"a reset long password\"}" \
    || return 1
  ALICE_PASSWORD="a reset long password"
  expect 200 POST /auth/login "{\"username\":\"alice\",\"password\":\"$ALICE_PASSWORD\"}"
}

login() {
  expect 200 POST /auth/login "{\"username\":\"$1\",\"password\":\"$2\"}"
}

# The Dockerfile's FROM lines and the compose file's images are the ones there are
# stand-ins for, and the machine's Rust is the version the Dockerfile names.
check_stand_in_names() {
  grep -qE '^FROM rust:\$\{RUST_VERSION\}-slim-\$\{DEBIAN_RELEASE\} ' "$ROOT/Dockerfile" \
    && grep -qE '^FROM debian:\$\{DEBIAN_RELEASE\}-slim ' "$ROOT/Dockerfile" \
    && [[ "$(grep -cE '^ *image:' "$ROOT/docker-compose.yml")" == 3 ]] \
    && [[ "$POSTGRES_IMAGE" == docker.io/library/postgres:* && "$MAIL_IMAGE" == docker.io/axllent/mailpit:* ]] || {
    echo "the Dockerfile's FROM lines or the compose file's images are not the ones this script makes stand-ins for"
    return 1
  }
  rustc --version
  [[ "$(rustc --version | awk '{print $2}')" == "$RUST_VERSION".* ]] || {
    echo "the machine's Rust is not the $RUST_VERSION the Dockerfile names"
    return 1
  }
  printf '%s\n' "$DEBIAN_IMAGE" "$RUST_IMAGE" "$POSTGRES_IMAGE" "$MAIL_IMAGE"
}

# --- the run -----------------------------------------------------------------------------

main() {
  [[ "$(id -u)" == 0 ]] || {
    echo "compose-smoke.sh needs root: it installs packages and runs rootful podman" >&2
    exit 1
  }
  # One run at a time (the project name and the ports are the machine's); whatever a
  # killed run left in its work directory goes first.
  WORK="$CACHE/run"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  trap finish EXIT

  phase "install"
  required "install: podman, runc, debootstrap, jq" install_packages
  required "install: containers.conf" configure_podman
  required "install: podman-compose and PyJWT (venv)" install_venv

  # A stack of this project left by a run that was killed goes first, then the ports
  # must be free.
  teardown
  required "ports ${PUBLISHED_PORTS[*]} free on loopback" ports_free

  # The names the Dockerfile and docker-compose.yml use, from their defaults.
  RUST_VERSION="$(sed -n 's/^ARG RUST_VERSION=//p' "$ROOT/Dockerfile")"
  DEBIAN_RELEASE="$(sed -n 's/^ARG DEBIAN_RELEASE=//p' "$ROOT/Dockerfile")"
  RUST_IMAGE="$(qualify "rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE}")"
  DEBIAN_IMAGE="$(qualify "debian:${DEBIAN_RELEASE}-slim")"
  POSTGRES_IMAGE="$(qualify "$(sed -n 's/^ *image: *\(postgres:.*\)$/\1/p' "$ROOT/docker-compose.yml")")"
  MAIL_IMAGE="$(qualify "$(sed -n 's/^ *image: *\(axllent\/mailpit.*\)$/\1/p' "$ROOT/docker-compose.yml")")"
  required "stand-ins: the images the Dockerfile and compose file name, and Rust $RUST_VERSION" check_stand_in_names

  phase "stand-in images"
  DEBIAN_KEY="$(key_of <(declare -f build_debian podman_build) "$HERE/debian.sources" <(echo "$DEBIAN_RELEASE"))"
  RUST_KEY="$(key_of <(echo "$DEBIAN_KEY $RUST_VERSION") <(declare -f build_rust) "$HERE/rust.Containerfile" \
    <(rustc -vV) <(find /usr/local/share/ca-certificates -name '*.crt' -exec cat {} + 2>/dev/null))"
  POSTGRES_KEY="$(key_of <(echo "$DEBIAN_KEY") "$HERE/postgres.Containerfile" "$HERE/postgres-entrypoint.sh")"
  MAIL_KEY="$(key_of <(echo "$DEBIAN_KEY") <(declare -f build_mail) "$HERE/mailpit.Containerfile" \
    "$HERE/maildev/package-lock.json" <(node --version))"
  SHOW=1 required "stand-in: $DEBIAN_IMAGE" ensure_image "$DEBIAN_IMAGE" "$DEBIAN_KEY" build_debian
  SHOW=1 required "stand-ins: $RUST_IMAGE, $POSTGRES_IMAGE, $MAIL_IMAGE" stand_ins
  if [[ -s "$WORK/to-save" ]]; then
    save_stand_ins >"$WORK/save.log" 2>&1 &
    SAVE_PID=$!
  fi

  phase "podman-compose up --build -d"
  # The source as committed or added, without a developer's .env; the README's first
  # command makes the .env, and two lines more check how compose hands it on.
  SRC="$WORK/src"
  mkdir -p "$SRC"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -T - --ignore-failed-read -c 2>/dev/null) | tar -C "$SRC" -x
  (cd "$SRC" && cp .env.example .env)
  cat >>"$SRC/.env" <<'EOF'
# Added by scripts/compose-smoke.sh: every variable reaches the container, except the
# ones the stack sets itself.
COMPOSE_SMOKE_MARKER=from-dotenv
DATABASE_URL=sqlite:///data/not-this.db
EOF
  # As `docker build` does, keep the Dockerfile's HEALTHCHECK (podman's default OCI
  # format drops it).
  export BUILDAH_FORMAT=docker
  STACK_UP=true
  OLD_IMAGES="$(image_ids)"
  required "podman-compose up --build -d" pc up --build -d
  keep_build_stage || echo "note: could not tag the build stage; its layers may be removed as unused"
  SHOW=1 required "db healthy" wait_healthy db
  SHOW=1 required "tollgate healthy" wait_healthy tollgate

  phase "Try it"
  try_it

  phase "checks"
  step "tollgate runs as uid/gid 10001" check_runs_as_10001 || true
  step "signing keys on the volume: owned by 10001, 0700/0600" check_key_files || true
  step "the image's own HEALTHCHECK passes" check_image_healthcheck || true
  step ".env reaches tollgate, but not over DATABASE_URL" check_env_file || true
  step "podman-compose exec tollgate tollgate migrate" pc exec -T tollgate tollgate migrate || true
  step "podman-compose run --rm tollgate migrate" pc run --rm -T tollgate migrate || true
  step "tollgate user create through podman-compose exec, then login" create_user exec carol || true
  step "tollgate user create through podman-compose run, then login" create_user run dave || true
  step "mail: the mail service is reached from tollgate's container, read back from its API" check_mail_wiring || true
  local code
  code="$(http POST /auth/password/forgot '{"email":"alice@example.com"}')" || true
  if [[ "$code" == 404 ]]; then
    skip "mail: password-reset mail read back" "mail not built yet"
  else
    step "mail: the signup's verification mail read back, its token verifies the address" \
      check_verification_mail || true
    step "mail: password-reset mail read back, token resets the password" check_reset_mail "$code" || true
  fi

  phase "down and up again"
  required "before: bob signs up; the JWKS" signup_bob
  required "podman-compose down" pc down -t 10
  required "podman-compose up -d" pc up -d
  SHOW=1 required "db healthy again" wait_healthy db
  SHOW=1 required "tollgate healthy again" wait_healthy tollgate
  step "signing keys survive: the same JWKS" check_same_keys || true
  step "a token issued before verifies against the JWKS (PyJWT)" check_old_token_verifies || true
  step "users survive: bob's token from before is accepted by /auth/me" \
    expect 200 GET /auth/me "" "$BOB_ACCESS" || true
  step "sessions survive: bob's refresh token from before refreshes" check_old_refresh || true
  step "users survive: alice logs in with her last password" login alice "$ALICE_PASSWORD" || true
  step "users survive: carol (CLI) logs in" login carol "carol has a long password" || true
  step "users survive: dave (CLI) logs in" login dave "dave has a long password" || true
}

main "$@"
