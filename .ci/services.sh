#!/usr/bin/env bash
# The PostgreSQL the integration tests use: running on 127.0.0.1:5432 and letting `postgres`
# in from loopback without a password. On a fresh Debian machine this installs it, starts it
# and, because Debian's fresh cluster asks for a scram-sha-256 password on TCP, adds one
# pg_hba.conf line: `host all postgres 127.0.0.1/32 trust`. A PostgreSQL that was already
# there is reconfigured only when HOTLINE_TEST_DB_SETUP=1 says this is a throwaway test
# machine (.ci/run sets it); otherwise the script says what to change and stops.
# PG_CLUSTER and PG_PORT (main, 5432) name another cluster, for the script's own test.
set -euo pipefail
cluster=${PG_CLUSTER:-main}
port=${PG_PORT:-5432}
say() { echo "[services] $*" >&2; }
ready() { pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; }
can_connect() { psql -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

installed_here=no
if ! command -v pg_ctlcluster >/dev/null; then
  say "installing PostgreSQL"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  installed_here=yes
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
if ! ready; then
  say "starting PostgreSQL $version/$cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
  for _ in $(seq 1 30); do ready && break; sleep 1; done
fi
if ! ready; then
  say "PostgreSQL did not come up on 127.0.0.1:$port; see /var/log/postgresql/"
  exit 1
fi
can_connect && exit 0

hba=/etc/postgresql/$version/$cluster/pg_hba.conf
if [ "$installed_here" = no ] && [ "${HOTLINE_TEST_DB_SETUP:-0}" != 1 ]; then
  say "PostgreSQL on 127.0.0.1:$port refuses user postgres without a password, and the"
  say "integration tests connect as postgres@127.0.0.1 with none. On a test machine, put"
  say "'host all postgres 127.0.0.1/32 trust' first in $hba and run"
  say "'pg_ctlcluster $version $cluster reload' (or rerun with HOTLINE_TEST_DB_SETUP=1 to have it done)."
  exit 1
fi
say "letting postgres in from 127.0.0.1 without a password (test cluster: $hba)"
sed -i '1i host all postgres 127.0.0.1/32 trust  # added by hotline .ci/services.sh for the tests' "$hba"
pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" reload
for _ in $(seq 1 10); do can_connect && exit 0; sleep 1; done
say "still cannot connect as postgres@127.0.0.1 after the pg_hba.conf change; see /var/log/postgresql/"
exit 1
