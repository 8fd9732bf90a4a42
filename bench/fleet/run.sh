#!/usr/bin/env bash
# run_checks() at fleet scale vs a Python/SciPy job, in one throwaway cluster.
# FLEET_STREAMS=N changes the number of streams (default 10000).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec pg_virtualenv -t -o "shared_buffers=512MB" -o "max_wal_size=4GB" -o "synchronous_commit=off" \
	/usr/bin/python3 bench/fleet/bench_fleet.py
