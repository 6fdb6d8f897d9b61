# Sourced by the client suites' ci.sh: sets TOLLGATE_BIN to the binary under test. .ci/run
# passes the binary it built; without one, the debug build is made here (a no-op when it
# is up to date). Needs ROOT, the repository's top directory.
if [ -z "${TOLLGATE_BIN:-}" ]; then
  echo "== cargo build --bin tollgate"
  (cd "$ROOT" && cargo build --bin tollgate --quiet)
  target="${CARGO_TARGET_DIR:-target}"
  case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
  TOLLGATE_BIN="$target/debug/tollgate"
fi
export TOLLGATE_BIN
