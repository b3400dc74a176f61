#!/bin/sh
# First start: initdb with a password for host connections, then the database named by
# POSTGRES_DB. Every start: postgres listening on all interfaces.
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
: "${POSTGRES_USER:=postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    "$BIN/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != "$POSTGRES_USER" ]; then
        "$BIN/postgres" --single -D "$PGDATA" -c listen_addresses='' postgres \
            <<SQL >/dev/null
CREATE DATABASE "$POSTGRES_DB";
SQL
    fi
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/var/run/postgresql
