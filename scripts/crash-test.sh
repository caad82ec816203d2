#!/usr/bin/env bash
# kill -9 during a refresh load, then restart and check the database kept its promises.
#
# Starts the binary on a fresh PostgreSQL database, runs WORKERS parallel clients that log in
# and refresh in chains (each one writes down every token it was *acknowledged* — a 200 it
# received), kills the server with SIGKILL after LOAD_SECS, restarts it on the same database
# and checks:
#   1. no refresh token is usable twice: no token has two successors, no session has two
#      current tokens, and replaying any consumed token is refused (401) after the restart;
#   2. no acknowledged session is lost: every session's newest acknowledged token, and the one
#      it replaced, are in the database (a session keeps only its recent history, so older
#      ones are forgotten by design), and the newest one of every session still refreshes.
#      When the refresh in flight at the kill committed before the process died, its token
#      is consumed with a successor nobody received: presented again within the grace window
#      (REFRESH_REUSE_GRACE_SECS, 60 here) it gets that very successor, derived again, so the
#      client's retry succeeds (reported);
#   3. the crash does not change the answer: a second presentation of the newest token, in
#      the window, gets the same successor as the first; a token two generations old is
#      reuse (401) and kills the family.
#
# Usage:   scripts/crash-test.sh [BINARY]          (default: target/release/jwt-auth)
# Env:     TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
#          WORKERS (default 8), LOAD_SECS (default 5), CHAIN (refreshes per session, 25)
# Needs:   curl, psql, sha256sum. Exit 0 when every check passes.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-target/release/jwt-auth}"
ADMIN_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
WORKERS="${WORKERS:-8}"
LOAD_SECS="${LOAD_SECS:-5}"
CHAIN="${CHAIN:-25}"
KEPT_TOKENS=5

say() { printf 'crash-test: %s\n' "$*"; }
die() { say "FAIL: $*"; exit 1; }

[[ -x "$BIN" ]] || { say "no binary at $BIN (build it with: cargo build --release)"; exit 2; }
BIN="$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")"
for tool in curl psql sha256sum; do
    command -v "$tool" >/dev/null || { say "needs $tool"; exit 2; }
done

DB="jwt_auth_crash_$(date +%s)_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
WORK="$(mktemp -d)"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    psql "$ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

sql() { psql "$DB_URL" -qAt -v ON_ERROR_STOP=1 "$@"; }

psql "$ADMIN_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null

# The service as an operator would run it, on a free port (in an empty directory, so no
# .env file is read); sets BASE and SERVER_PID.
start_server() {
    local log="$WORK/server-$1.log"
    mkdir -p "$WORK/run"
    (cd "$WORK/run" && exec env -i PATH="$PATH" \
        ENV=dev HOST=127.0.0.1 PORT=0 BCRYPT_COST=4 LOGIN_THROTTLE_ENABLED=false \
        REFRESH_REUSE_GRACE_SECS=60 \
        JWT_SECRET_KEY="crash-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz" \
        DATABASE_URL="$DB_URL" RUST_LOG=warn,jwt_auth=info NO_COLOR=1 \
        "$BIN") >"$log" 2>&1 &
    SERVER_PID=$!
    local base=""
    for _ in $(seq 1 100); do
        base="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -n1 | sed 's/listening on //')" || true
        [[ -n "$base" ]] && curl -sf "$base/health/ready" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log"; die "the server did not start"; }
        sleep 0.1
    done
    [[ -n "$base" ]] || die "the server did not become ready"
    BASE="$base"
}

cookie_of() { sed -n 's/^[Ss]et-[Cc]ookie: refresh_token=\([^;]*\).*/\1/p' "$1" | tr -d '\r' | head -n1; }

# One client: login, then CHAIN refreshes, again and again, until the server dies.
# Log lines: "L - <token>" (login acknowledged), "R <presented> <new>" (refresh acknowledged),
# "E <what> <status>" (an unexpected answer while the server was up).
worker() {
    local id=$1 log="$WORK/w$1.log" hdr="$WORK/h$1" code token new
    while :; do
        code="$(curl -s -o /dev/null -D "$hdr" -w '%{http_code}' -H 'content-type: application/json' \
            -d '{"email":"jywan@test.com","password":"test"}' "$BASE/auth/login")" || return 0
        [[ "$code" == 200 ]] || { echo "E login $code" >>"$log"; return 0; }
        token="$(cookie_of "$hdr")"
        echo "L - $token" >>"$log"
        for _ in $(seq 1 "$CHAIN"); do
            code="$(curl -s -o /dev/null -D "$hdr" -w '%{http_code}' -X POST \
                -H "cookie: refresh_token=$token" "$BASE/auth/refresh")" || return 0
            [[ "$code" == 200 ]] || { echo "E refresh $code" >>"$log"; return 0; }
            new="$(cookie_of "$hdr")"
            echo "R $token $new" >>"$log"
            token="$new"
        done
    done
}

start_server first
say "binary $BIN, database $DB, $WORKERS workers for ${LOAD_SECS}s, server pid $SERVER_PID at $BASE"
pids=()
for i in $(seq 1 "$WORKERS"); do
    worker "$i" &
    pids+=($!)
done
sleep "$LOAD_SECS"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
say "kill -9 sent during the load"
for p in "${pids[@]}"; do wait "$p" || true; done

cat "$WORK"/w*.log >"$WORK/all.log"
errors="$(grep -c '^E ' "$WORK/all.log" || true)"
logins="$(grep -c '^L ' "$WORK/all.log" || true)"
refreshes="$(grep -c '^R ' "$WORK/all.log" || true)"
say "acknowledged before the kill: $logins logins, $refreshes refreshes; unexpected answers: $errors"
[[ "$errors" == 0 ]] || { grep '^E ' "$WORK/all.log" | sort | uniq -c; die "unexpected answers under load"; }
[[ "$logins" -gt 0 ]] || die "no login was acknowledged; nothing to check"

start_server second
say "restarted: pid $SERVER_PID at $BASE"

# 1. Database invariants.
two_successors="$(sql -c "SELECT count(*) FROM (SELECT parent_hash FROM refresh_tokens
    WHERE parent_hash IS NOT NULL GROUP BY parent_hash HAVING count(*) > 1) x")"
two_current="$(sql -c "SELECT count(*) FROM (SELECT session_id FROM refresh_tokens
    WHERE consumed_at IS NULL GROUP BY session_id HAVING count(*) > 1) x")"
unconsumed_parents="$(sql -c "SELECT count(*) FROM refresh_tokens c
    JOIN refresh_tokens p ON p.hash = c.parent_hash WHERE p.consumed_at IS NULL")"
say "tokens with two successors: $two_successors; sessions with two current tokens: $two_current; replaced tokens not consumed: $unconsumed_parents"
[[ "$two_successors" == 0 && "$two_current" == 0 && "$unconsumed_parents" == 0 ]] \
    || die "a token was usable twice"
# A session's history is bounded: its current token and domain::KEPT_CONSUMED_TOKENS (4).
most_kept="$(sql -c "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM refresh_tokens
    GROUP BY session_id) x")"
say "most tokens stored for one session: $most_kept (at most $KEPT_TOKENS)"
[[ "$most_kept" -le "$KEPT_TOKENS" ]] || die "a session's token history grew beyond its bound"

# 2. Every session's newest acknowledged token and the one it replaced are in the database.
#    (Older ones are forgotten by design: a session keeps its current token and a few
#    consumed ones, at least two even after the in-flight refresh.)
hash_of() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
for f in "$WORK"/w*.log; do
    awk '$1=="L"{ if (newest) print newest; if (prev) print prev; newest=$3; prev="" }
         $1=="R"{ prev=$2; newest=$3 }
         END   { if (newest) print newest; if (prev) print prev }' "$f"
done | while read -r t; do hash_of "$t"; done >"$WORK/acked.hex"
sql -c "CREATE TEMP TABLE acked (h text)" -c "COPY acked FROM STDIN" \
    -c "SELECT count(*) FROM acked WHERE NOT EXISTS (
            SELECT 1 FROM refresh_tokens WHERE hash = decode(acked.h, 'hex'))" \
    <"$WORK/acked.hex" >"$WORK/missing" 2>&1 || { cat "$WORK/missing"; die "psql failed"; }
missing="$(tail -n1 "$WORK/missing")"
say "acknowledged tokens missing from the database: $missing of $(wc -l <"$WORK/acked.hex")"
[[ "$missing" == 0 ]] || die "acknowledged state was lost"

# 3. Over HTTP, per session: the newest acknowledged token refreshes (by the grace window if
#    the in-flight refresh consumed it), a second presentation gets the same successor, a
#    replay of the token before it (now two generations old) is refused, and then the family
#    is dead.
refresh() {
    curl -s -o /dev/null -D "$WORK/hdr" -w '%{http_code}' -X POST \
        -H "cookie: refresh_token=$1" "$BASE/auth/refresh"
}
for f in "$WORK"/w*.log; do
    awk '$1=="L"{ if (first) print first, newest, replayed; first=$3; newest=$3; replayed="-" }
         $1=="R"{ replayed=$2; newest=$3 }
         END   { if (first) print first, newest, replayed }' "$f"
done >"$WORK/sessions"
live=0 inflight=0 lost=0 same=0 replays=0 replays_refused=0 dead_after=0 checked_after=0
while read -r first newest replayed; do
    consumed="$(sql -c "SELECT consumed_at IS NOT NULL AND EXISTS (SELECT 1 FROM refresh_tokens c
        WHERE c.parent_hash = p.hash) FROM refresh_tokens p WHERE hash = decode('$(hash_of "$newest")', 'hex')")"
    code="$(refresh "$newest")"
    successor=""
    if [[ "$code" == 200 ]]; then
        live=$((live + 1))
        [[ "$consumed" == t ]] && inflight=$((inflight + 1))
        successor="$(cookie_of "$WORK/hdr")"
        [[ "$(refresh "$newest")" == 200 && "$(cookie_of "$WORK/hdr")" == "$successor" ]] \
            && same=$((same + 1))
    else
        lost=$((lost + 1))
    fi
    if [[ "$replayed" != "-" ]]; then
        replays=$((replays + 1))
        [[ "$(refresh "$replayed")" == 401 ]] && replays_refused=$((replays_refused + 1))
        if [[ -n "$successor" ]]; then
            checked_after=$((checked_after + 1))
            [[ "$(refresh "$successor")" == 401 ]] && dead_after=$((dead_after + 1))
        fi
    fi
done <"$WORK/sessions"
sessions="$(wc -l <"$WORK/sessions")"
say "sessions: $sessions; newest token refreshes after restart: $live (of them consumed by the refresh in flight at the kill, recovered by the grace window: $inflight); lost: $lost"
say "second presentations answered with the same successor: $same of $live"
say "replays of tokens two generations old refused: $replays_refused of $replays; families dead after the replay: $dead_after of $checked_after"
[[ "$lost" == 0 ]] || die "an acknowledged session was lost"
[[ "$inflight" -le "$WORKERS" ]] || die "more in-flight refreshes than workers"
[[ "$same" == "$live" ]] || die "a second presentation got another successor"
[[ "$replays_refused" == "$replays" && "$dead_after" == "$checked_after" ]] \
    || die "a consumed token was usable again"
say "PASS"
