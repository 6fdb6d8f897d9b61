#!/usr/bin/env bash
# CI for the Django package: a fresh venv, the package with its test extras from PyPI,
# then pytest against a real tollgate (TOLLGATE_BIN, else built here with cargo).
# Exits non-zero on any failure, and when pytest collected no test (its exit code 5).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(cd ../.. && pwd)"

source "$ROOT/scripts/lib/tollgate-bin.sh"

VENV="${DJANGO_TOLLGATE_VENV:-${HOME:-/root}/.cache/django-tollgate/venv}"
echo "== venv $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
echo "== pip install .[test]"
# A copy, so that the build leaves nothing (build/, *.egg-info) in the work tree.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -r pyproject.toml README.md src "$build/"
"$VENV/bin/pip" install --quiet "$build[test]"

echo "== pytest"
status=0
(cd tests && "$VENV/bin/python" -m pytest -p no:cacheprovider -q) || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
