#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for `postgres`:
# installs it from Debian if missing, starts the cluster if stopped, waits until ready.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "postgres.sh: installing PostgreSQL from Debian" >&2
    apt-get update </dev/null
    apt-get install -y postgresql </dev/null
fi
if ! ready; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    if [[ -z "$version" ]]; then
        echo "postgres.sh: no cluster found under /etc/postgresql" >&2
        exit 1
    fi
    if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
        pg_createcluster "$version" main </dev/null
    fi
    echo "postgres.sh: starting cluster $version/main" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 60); do
    ready && break
    sleep 1
done
ready || { echo "postgres.sh: PostgreSQL did not become ready" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian cluster uses peer/scram auth on TCP; the tests connect as postgres
    # without a password, so allow trust on loopback for this CI machine.
    hba="$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)"
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select version()'
