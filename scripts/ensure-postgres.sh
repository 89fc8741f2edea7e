#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for local connections, as the dev stack
# and the tests expect: starts the installed cluster when it is stopped, installs one (Debian) when there is none.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

if command -v pg_isready >/dev/null && ready; then
  exit 0
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

installed_now=no
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  echo "ensure-postgres: PostgreSQL is not installed; installing it with apt-get" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  installed_now=yes
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
if [ "$installed_now" = yes ]; then
  # A fresh Debian cluster asks local TCP clients for a password; the dev and test setup uses trust auth on
  # loopback only, as the development machines do.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  sudo_if_needed sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  sudo_if_needed sed -i -E 's/^(local\s+all\s+(postgres|all)\s+)\S+/\1trust/' "$hba"
fi

echo "ensure-postgres: starting cluster $version/main" >&2
sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
for _ in $(seq 1 60); do
  if ready; then exit 0; fi
  sleep 0.5
done
echo "ensure-postgres: PostgreSQL did not become ready on 127.0.0.1:5432" >&2
exit 1
