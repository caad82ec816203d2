#!/usr/bin/env bash
# End-to-end checks against a real jwt-auth binary.
# Usage: .ci/e2e/run.sh BINARY      (e.g. target/release/jwt-auth)
# Starts BINARY (dev profile) on a free loopback port, waits for /openapi.json, runs the
# Postman collection (newman.sh), the Swagger UI "Try it out" check (swagger-ui.mjs) and the
# two-tab check of the demo page (demo-tabs.mjs, screenshots in $DEMO_SCREENSHOT_DIR or a
# fresh folder it prints), stops the server; then, for EdDSA, ES256 and RS256, a server of
# that algorithm whose tokens the npm `jose` library must verify from the discovery URL alone
# (jose-verify.mjs); exits non-zero if any check failed.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 BINARY" >&2
    exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

BINARY="$1"
[[ "$BINARY" == /* ]] || BINARY="$PWD/$BINARY"
if [[ ! -x "$BINARY" ]]; then
    echo "e2e: $BINARY is not an executable file" >&2
    exit 2
fi

# Tooling (idempotent and quick when already there).
if [[ ! -x /usr/bin/chromium || ! -x "$HERE/node_modules/.bin/newman" || ! -d "$HERE/node_modules/playwright-core" ]]; then
    "$HERE/install.sh"
fi

PORT="$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')"
BASE_URL="http://127.0.0.1:$PORT"
LOG="$(mktemp -t jwt-auth-e2e.XXXXXX.log)"

SERVER_PID=""
cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f "$LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() {
    echo "e2e: ---- server log (last 60 lines) ----" >&2
    tail -n 60 "$LOG" >&2 || true
    echo "e2e: ---- end of server log ----" >&2
}

echo "e2e: starting $BINARY on $BASE_URL (ENV=dev)" >&2
(cd "$REPO" && exec env PORT="$PORT" HOST=127.0.0.1 ENV=dev "$BINARY" </dev/null >"$LOG" 2>&1) &
SERVER_PID=$!

# Wait (bounded) until GET /openapi.json answers 200.
ready=0
for _ in $(seq 60); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "e2e: server exited before it answered" >&2
        show_log
        exit 1
    fi
    if python3 - "$BASE_URL/openapi.json" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    then
        ready=1
        break
    fi
    sleep 0.5
done
if [[ "$ready" -ne 1 ]]; then
    echo "e2e: $BASE_URL/openapi.json did not answer 200 within 30 s" >&2
    show_log
    exit 1
fi
echo "e2e: server ready" >&2

passed=0
failed=0
failures=()

echo "e2e: == newman (Postman collection) ==" >&2
if "$HERE/newman.sh" "$BASE_URL"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); failures+=("newman")
fi

echo "e2e: == Swagger UI (Try it out) ==" >&2
if timeout 90 node "$HERE/swagger-ui.mjs" "$BASE_URL"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); failures+=("swagger-ui")
fi

echo "e2e: == demo page (two tabs) ==" >&2
DEMO_SCREENSHOT_DIR="${DEMO_SCREENSHOT_DIR:-$(mktemp -d -t jwt-auth-demo-tabs.XXXXXX)}"
export DEMO_SCREENSHOT_DIR
if timeout 120 node "$HERE/demo-tabs.mjs" "$BASE_URL"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)); failures+=("demo-tabs")
fi
echo "e2e: demo page screenshots in $DEMO_SCREENSHOT_DIR" >&2

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "e2e: the server died during the checks" >&2
    failed=$((failed + 1)); failures+=("server-alive")
fi

# A second server per asymmetric algorithm, on its own port; stopped before the next starts.
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
stop_server
for alg in EdDSA ES256 RS256; do
    echo "e2e: == jose (npm) verifies $alg tokens via discovery ==" >&2
    (cd "$REPO" && exec env PORT="$PORT" HOST=127.0.0.1 ENV=dev JWT_ALGORITHM="$alg" \
        JWT_ISSUER="$BASE_URL" "$BINARY" </dev/null >"$LOG" 2>&1) &
    SERVER_PID=$!
    up=0
    for _ in $(seq 60); do
        if curl -fsS "$BASE_URL/health/live" >/dev/null 2>&1; then up=1; break; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.5
    done
    if [[ "$up" -eq 1 ]] && (cd "$HERE" && timeout 60 node jose-verify.mjs "$BASE_URL" "$alg"); then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures+=("jose-$alg")
        show_log
    fi
    stop_server
done
if [[ "$failed" -ne 0 ]]; then
    echo "e2e: failed: ${failures[*]}" >&2
    show_log
fi
echo "e2e: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
