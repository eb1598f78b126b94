#!/usr/bin/env bash
# Start a throwaway Redis server for the tests and print its URL on stdout.
#
# Usage: eval "$(bash .ci/redis.sh)"   → exports T2T_TEST_REDIS_URL and T2T_TEST_REDIS_DIR
#
# The server keeps nothing on disk (no RDB snapshots, no append-only file), lives in a
# temporary directory on a free local port and listens on 127.0.0.1 only. Debian's
# package is installed first when it is missing.
# Stop it with: kill "$(cat "$T2T_TEST_REDIS_DIR/redis.pid")"
set -euo pipefail

if ! command -v redis-server >/dev/null; then
    echo "installing Redis (Debian package)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq redis-server >&2
fi

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d /tmp/t2t-redis.XXXXXX)
redis-server --bind 127.0.0.1 --port "$PORT" --dir "$DIR" --save "" --appendonly no \
    --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" >&2
for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$PORT" ping | grep -q PONG || {
    echo "redis-server did not answer on 127.0.0.1:$PORT:" >&2; cat "$DIR/redis.log" >&2; exit 1; }
echo "export T2T_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
echo "export T2T_TEST_REDIS_DIR=$DIR"
