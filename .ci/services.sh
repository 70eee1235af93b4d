#!/usr/bin/env bash
# The PostgreSQL the integration tests use: running on 127.0.0.1:5432 and letting `postgres`
# in from loopback without a password. On a fresh Debian machine this installs it, starts it
# and, because Debian's fresh cluster asks for a scram-sha-256 password on TCP, adds one
# pg_hba.conf line: `host all postgres 127.0.0.1/32 trust`. A PostgreSQL that was already
# there is never reconfigured: the script says what to change and stops.
set -euo pipefail
say() { echo "[services] $*" >&2; }
can_connect() { psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }

installed_here=no
if ! command -v pg_ctlcluster >/dev/null; then
  say "installing PostgreSQL"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  installed_here=yes
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  say "PostgreSQL did not come up on 127.0.0.1:5432; see /var/log/postgresql/"
  exit 1
fi
can_connect && exit 0

hba=/etc/postgresql/$version/main/pg_hba.conf
if [ "$installed_here" = no ]; then
  say "PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password."
  say "The integration tests connect as postgres@127.0.0.1 with no password: on a test machine,"
  say "put 'host all postgres 127.0.0.1/32 trust' first in $hba and run: pg_ctlcluster $version main reload"
  exit 1
fi
say "letting postgres in from 127.0.0.1 without a password (fresh test cluster: $hba)"
sed -i '1i host all postgres 127.0.0.1/32 trust  # added by hotline .ci/services.sh for the tests' "$hba"
pg_ctlcluster --skip-systemctl-redirect "$version" main reload
for _ in $(seq 1 10); do can_connect && exit 0; sleep 1; done
say "still cannot connect as postgres@127.0.0.1 after the pg_hba.conf change; see /var/log/postgresql/"
exit 1
