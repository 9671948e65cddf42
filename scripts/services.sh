#!/usr/bin/env bash
# What the suite needs on this machine, shared by `make test` and `.ci/run`: PostgreSQL and Redis on
# 127.0.0.1 (started when installed but stopped), Chromium, the CJK fonts, pdftotext, make, npm, pg_dump and
# pg_restore (the restore drill), and promtool (the alert rules' tests).
# Missing Debian packages are installed when running as root with apt-get; otherwise the script names
# exactly what to install and stops with status 1.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# One line per need: the Debian package, and the shell test that says it is there.
NEEDS=(
  "postgresql|command -v pg_ctlcluster"
  "postgresql-client|command -v pg_restore"
  "redis-server|command -v redis-server"
  "chromium|command -v chromium"
  "fonts-noto-cjk|dpkg -s fonts-noto-cjk"
  "poppler-utils|command -v pdftotext"
  "make|command -v make"
  "npm|command -v npm"
  "prometheus|command -v promtool"
)

missing=()
for need in "${NEEDS[@]}"; do
  package=${need%%|*}
  eval "${need#*|}" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "The test suite needs these Debian packages, which are missing: ${missing[*]}" >&2
    echo "Install them and run again:  sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if ! pg_isready -h 127.0.0.1 -q; then
  cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
  if [ -z "$cluster" ]; then
    echo "PostgreSQL is installed but has no cluster: sudo pg_createcluster --start <version> main" >&2
    exit 1
  fi
  echo "Starting PostgreSQL $cluster"
  if [ "$(id -u)" = 0 ]; then
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
  else
    pg_ctlcluster "$cluster" main start || {
      echo "Could not start PostgreSQL: sudo pg_ctlcluster $cluster main start" >&2; exit 1; }
  fi
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -q && break; sleep 1; done
fi
# A bare machine's PostgreSQL has no role for the current user yet (the suite connects with trust auth).
if ! psql -h 127.0.0.1 -d postgres -c 'select 1' >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    su postgres -c "createuser -s $(whoami)" || true
  else
    echo "PostgreSQL on 127.0.0.1 refuses $(whoami): sudo -u postgres createuser -s $(whoami)" \
      "(and trust auth for 127.0.0.1 in pg_hba.conf)" >&2
    exit 1
  fi
fi

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "Starting Redis on 127.0.0.1:6379"
  directory=/var/lib/redis
  [ -w "$directory" ] || [ "$(id -u)" = 0 ] || directory=${TMPDIR:-/tmp}/juki-redis
  mkdir -p "$directory"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir "$directory" --logfile "$directory/test.log"
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
