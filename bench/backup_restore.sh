#!/usr/bin/env bash
# The restore drill at size: seed a fresh back-office database, back it up, restore it into another, print the times.
#
#   bench/backup_restore.sh                  # 300,000 residents, PostgreSQL on 127.0.0.1
#   RESIDENTS=50000 bench/backup_restore.sh
#
# `backup` and `restore` print their own times (dump + encryption; checks + decryption + pg_restore + row
# counts + audit verify); /usr/bin/time adds the command's start-up.
set -euo pipefail

cd "$(dirname "$0")/.."
FLASK="${FLASK:-.venv/bin/flask}"
RESIDENTS="${RESIDENTS:-300000}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-$(id -un)}"
export APP_ENV=development INSTANCE_PATH="${INSTANCE_PATH:-$(mktemp -d)}"
export BACKUP_KEY="${BACKUP_KEY:-$(openssl rand -hex 32)}"
src="bench_backup_src_$$" dst="bench_backup_dst_$$" out="$(mktemp -d)/backup"
cleanup() {
    psql -d postgres -qc "DROP DATABASE IF EXISTS $src WITH (FORCE)" || true
    psql -d postgres -qc "DROP DATABASE IF EXISTS $dst WITH (FORCE)" || true
    rm -rf "$out"
}
trap cleanup EXIT
psql -d postgres -qc "CREATE DATABASE $src"
psql -d postgres -qc "CREATE DATABASE $dst"
export BACKOFFICE_DATABASE_URL="postgresql+psycopg://$PGHOST:$PGPORT/$src"
"$FLASK" --app wsgi:backoffice_app db upgrade >/dev/null 2>&1
"$FLASK" --app wsgi:backoffice_app seed --residents "$RESIDENTS"
/usr/bin/time -f "backup command: %e s" "$FLASK" --app wsgi:backoffice_app backup --out "$out"
/usr/bin/time -f "restore command: %e s" "$FLASK" --app wsgi:backoffice_app restore --from "$out" \
    --into "postgresql+psycopg://$PGHOST:$PGPORT/$dst"
