#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:6379 (the login throttle's tests): installs
# it from Debian if missing, starts it if stopped, waits until ready.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -qx PONG; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis.sh: installing Redis from Debian" >&2
    apt-get update </dev/null
    apt-get install -y redis-server </dev/null
fi
if ! ready; then
    echo "redis.sh: starting redis-server on 127.0.0.1:6379" >&2
    redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        </dev/null >/dev/null
fi
for _ in $(seq 1 30); do
    ready && break
    sleep 1
done
ready || { echo "redis.sh: Redis did not become ready" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 info server | grep -m1 '^redis_version'
