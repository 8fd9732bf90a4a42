#!/usr/bin/env bash
# Runs the pgTAP suites with pg_prove in a fresh database (inside pg_virtualenv).
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=mlma_pgtap
dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -q -X -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION pgtap; CREATE EXTENSION mlma;"
pg_prove -d "$DB" test/pgtap/*.sql
