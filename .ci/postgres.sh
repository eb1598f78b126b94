#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests and print its URL on stdout.
#
# Usage: eval "$(bash .ci/postgres.sh)"   → exports T2T_TEST_POSTGRES_URL and T2T_TEST_PGDATA
#
# The server lives in a temporary data directory on a free local port, owned by the
# `postgres` system user (the server refuses to run as root, and CI runs as root), and
# listens on 127.0.0.1 only. Debian's package is installed first when it is missing.
# Stop it with: runuser -u postgres -- "$PGBIN/pg_ctl" -D "$T2T_TEST_PGDATA" stop
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
PGBIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")

run_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA=$(mktemp -d /tmp/t2t-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$DATA"
run_pg "$PGBIN/initdb" -D "$DATA" -U t2t --auth=trust -E UTF8 >/dev/null
run_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w \
    -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=on" start >&2
run_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PORT" -U t2t t2t_test
echo "export T2T_TEST_POSTGRES_URL=postgresql+psycopg://t2t@127.0.0.1:$PORT/t2t_test"
echo "export T2T_TEST_PGDATA=$DATA"
echo "export T2T_TEST_PGBIN=$PGBIN"
