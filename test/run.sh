#!/usr/bin/env bash
# make test: install dependencies, build with -Werror, install, and run every
# suite against a throwaway cluster (pg_virtualenv): pg_regress, isolation,
# TAP, pgTAP (pg_prove), the unit tests and fuzzing of the numeric core, and
# the SciPy oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

./test/deps.sh

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

make -s clean >/dev/null
make -s -j2
$SUDO make -s install >/dev/null

# initdb and TAP refuse root: run the suites as postgres from a copy it owns.
WORK=$(mktemp -d /tmp/mlma-test.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cp -a "$ROOT"/. "$WORK"/
RUNAS=""
if [ "$(id -u)" -eq 0 ]; then
	chown -R postgres:postgres "$WORK"
	RUNAS="runuser -u postgres --"
fi

cd "$WORK"
status=0
$RUNAS pg_virtualenv \
	-o "shared_preload_libraries=pg_cron" \
	-o "cron.database_name=postgres" \
	-o "cron.use_background_workers=on" \
	-o "max_worker_processes=32" \
	./test/suites.sh || status=$?

if [ $status -ne 0 ]; then
	for f in "$WORK"/regression.diffs "$WORK"/output_iso/regression.diffs; do
		[ -s "$f" ] && { echo "==== $f"; cat "$f"; }
	done
fi
exit $status
