#!/bin/bash
# Entrypoint of the PostgreSQL STAND-IN (scripts/compose-smoke/postgres.Containerfile).
# As the official image's: on an empty $PGDATA, initdb with POSTGRES_USER (default
# postgres) as superuser with POSTGRES_PASSWORD, create POSTGRES_DB (default: the user's
# name), accept password (scram-sha-256) connections from anywhere and listen on every
# address; then run the command as the postgres user.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "Database is uninitialized and superuser password is not specified:" \
      "set POSTGRES_PASSWORD." >&2
    exit 1
  fi
  user="${POSTGRES_USER:-postgres}"
  database="${POSTGRES_DB:-$user}"
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$database" != postgres ]; then
    # Single-user mode: no server listens while the database is created.
    quoted="\"${database//\"/\"\"}\""
    echo "CREATE DATABASE $quoted" | postgres --single -D "$PGDATA" -c listen_addresses= postgres >/dev/null
  fi
  echo "PostgreSQL stand-in: initialised $PGDATA for user $user, database $database"
fi

exec "$@"
