#!/usr/bin/env bash
# Run the Postman collection against a running jwt-auth service.
# Usage: .ci/e2e/newman.sh BASE_URL      (e.g. http://127.0.0.1:8000)
# Exits non-zero if any request or assertion fails.
set -euo pipefail

if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: $0 BASE_URL" >&2
    exit 2
fi
BASE_URL="${1%/}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COLLECTION="$(cd "$HERE/../.." && pwd)/openapi/jwt-auth.postman_collection.json"

if [[ ! -x "$HERE/node_modules/.bin/newman" ]]; then
    echo "newman.sh: newman is not installed; run .ci/e2e/install.sh first" >&2
    exit 2
fi

cd "$HERE"
# --bail: stop at the first failing request so the report points at it.
# Timeouts keep a hung server from hanging CI.
exec "$HERE/node_modules/.bin/newman" run "$COLLECTION" \
    --env-var "baseUrl=$BASE_URL" \
    --reporters cli \
    --bail \
    --timeout 60000 \
    --timeout-request 10000 \
    --timeout-script 5000 \
    --color off
