#!/usr/bin/env bash
# The controls at size, on a freshly seeded back-office database (PostgreSQL on 127.0.0.1):
#
#   bench/controls.sh backup       # back up, then restore into a second empty database (the restore drill)
#   bench/controls.sh retention    # make one record in ten a 除票 removed 151 years ago (SQL; UPDATE is allowed
#                                  # on the ledger), then `retention run --dry-run` and `retention run`
#   RESIDENTS=50000 bench/controls.sh backup
#
# `backup` and `restore` print their own times (dump + encryption; checks + decryption + pg_restore + row
# counts + audit verify); /usr/bin/time adds the command's start-up.
set -euo pipefail

cd "$(dirname "$0")/.."
MODE="${1:?backup or retention}"
FLASK="${FLASK:-.venv/bin/flask}"
RESIDENTS="${RESIDENTS:-300000}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-$(id -un)}"
export APP_ENV=development INSTANCE_PATH="${INSTANCE_PATH:-$(mktemp -d)}"
export BACKUP_KEY="${BACKUP_KEY:-$(openssl rand -hex 32)}"
src="bench_controls_src_$$" dst="bench_controls_dst_$$" out="$(mktemp -d)/backup"
cleanup() {
    psql -d postgres -qc "DROP DATABASE IF EXISTS $src WITH (FORCE)" || true
    psql -d postgres -qc "DROP DATABASE IF EXISTS $dst WITH (FORCE)" || true
    rm -rf "$out"
}
trap cleanup EXIT
psql -d postgres -qc "CREATE DATABASE $src"
export BACKOFFICE_DATABASE_URL="postgresql+psycopg://$PGHOST:$PGPORT/$src"
"$FLASK" --app wsgi:backoffice_app db upgrade >/dev/null 2>&1
"$FLASK" --app wsgi:backoffice_app seed --residents "$RESIDENTS"
case "$MODE" in
backup)
    psql -d postgres -qc "CREATE DATABASE $dst"
    /usr/bin/time -f "backup command: %e s" "$FLASK" --app wsgi:backoffice_app backup --out "$out"
    /usr/bin/time -f "restore command: %e s" "$FLASK" --app wsgi:backoffice_app restore --from "$out" \
        --into "postgresql+psycopg://$PGHOST:$PGPORT/$dst"
    ;;
retention)
    psql -d "$src" -qc "UPDATE resident SET status = 'removed', removed_on = current_date - interval '151 years' \
        WHERE id % 10 = 0"
    /usr/bin/time -f "retention run --dry-run: %e s" "$FLASK" --app wsgi:backoffice_app retention run --dry-run
    /usr/bin/time -f "retention run: %e s" "$FLASK" --app wsgi:backoffice_app retention run
    echo "records left: $(psql -d "$src" -Atc 'SELECT count(*) FROM resident')"
    ;;
*) echo "unknown mode $MODE" >&2; exit 2 ;;
esac
