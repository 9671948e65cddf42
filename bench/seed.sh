#!/usr/bin/env bash
# Load 300,000 synthetic residents into a fresh, migrated PostgreSQL database several times and print the median.
#
#   bench/seed.sh                      # 300,000 residents, 3 runs, PostgreSQL on 127.0.0.1
#   RESIDENTS=50000 RUNS=5 bench/seed.sh
#
# Each run: CREATE DATABASE, `flask db upgrade`, then `flask seed --residents N` (the time it prints covers
# generation, encryption, the bulk load and the commit). The budget is 120 s for 300,000 on 2 cores.
set -euo pipefail

cd "$(dirname "$0")/.."
FLASK="${FLASK:-.venv/bin/flask}"
RESIDENTS="${RESIDENTS:-300000}"
RUNS="${RUNS:-3}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-$(id -un)}"
export INSTANCE_PATH="${INSTANCE_PATH:-$(mktemp -d)}"
ADMIN_DB="${ADMIN_DB:-postgres}"

db=""
cleanup() {
    if [[ -n "$db" ]]; then
        psql -X -q -d "$ADMIN_DB" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null || true
    fi
}
trap cleanup EXIT

echo "seed benchmark: $RESIDENTS residents, $RUNS runs, PostgreSQL $PGHOST:$PGPORT, $(nproc) cores"
times=()
for run in $(seq 1 "$RUNS"); do
    db="seedbench_$(date +%s)_$$_$run"
    psql -X -q -d "$ADMIN_DB" -c "CREATE DATABASE \"$db\"" >/dev/null
    export BACKOFFICE_DATABASE_URL="postgresql+psycopg://$PGUSER@$PGHOST:$PGPORT/$db"
    "$FLASK" --app wsgi:backoffice_app db upgrade >/dev/null 2>&1
    line="$("$FLASK" --app wsgi:backoffice_app seed --residents "$RESIDENTS" --seed 1)"
    echo "run $run: $line"
    seconds="$(sed -E 's/.* in ([0-9.]+) s .*/\1/' <<<"$line")"
    times+=("$seconds")
    cleanup
    db=""
done

median="$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}')"
echo "times: ${times[*]} s"
echo "median: $median s (budget 120 s)"
