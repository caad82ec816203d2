#!/usr/bin/env bash
# Install what the end-to-end checks need, idempotently, on a fresh Debian machine as root
# with no standard input: Debian's chromium (only if missing) and the npm packages of .ci/e2e.
# Never downloads a browser build through playwright: only Debian's chromium is used.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DEBIAN_FRONTEND=noninteractive
# playwright-core downloads nothing on install, but make sure no browser download is ever tried.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo -n"
fi

if [[ ! -x /usr/bin/chromium ]]; then
    echo "install.sh: installing Debian chromium" >&2
    $SUDO apt-get update </dev/null
    $SUDO apt-get install -y chromium </dev/null
fi
/usr/bin/chromium --version 2>/dev/null || { echo "install.sh: /usr/bin/chromium does not run" >&2; exit 1; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "install.sh: installing Debian nodejs and npm" >&2
    $SUDO apt-get update </dev/null
    $SUDO apt-get install -y --no-install-recommends nodejs npm </dev/null
fi

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    echo "install.sh: node $(node --version) is too old: playwright-core needs node >= 20" >&2
    exit 1
fi

cd "$HERE"
if [[ -f package-lock.json ]]; then
    # Skip when node_modules already matches the lockfile (npm writes this copy on install).
    if [[ -f node_modules/.package-lock.json ]] && cmp -s <(node -e 'const l=require("./package-lock.json");delete l.packages[""];console.log(JSON.stringify(l.packages))') \
            <(node -e 'console.log(JSON.stringify(require("./node_modules/.package-lock.json").packages))'); then
        echo "install.sh: node_modules up to date" >&2
    else
        npm ci --no-audit --no-fund </dev/null
    fi
else
    npm install --no-audit --no-fund </dev/null
fi

node_modules/.bin/newman --version >/dev/null
node -e 'require("playwright-core")'
echo "install.sh: e2e tooling ready" >&2
