#!/usr/bin/env bash
# Runs the SciPy/NumPy oracles (Debian's interpreter) against a fresh database.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=mlma_oracle
dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -q -X -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION mlma;"
status=0
for f in test/oracle/test_*.py; do
	echo "-- $f"
	PGDATABASE="$DB" /usr/bin/python3 "$f" || status=1
done
exit $status
