#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is running on 127.0.0.1:5432 (trust auth on
# the project's machines); install and start it on a fresh Debian machine.
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if ! command -v pg_ctlcluster >/dev/null; then
  echo "[services] installing PostgreSQL" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -n | tail -1)
echo "[services] starting PostgreSQL $version" >&2
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
echo "[services] PostgreSQL did not come up on 127.0.0.1:5432; see /var/log/postgresql/" >&2
exit 1
