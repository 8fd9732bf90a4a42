#!/usr/bin/env bash
# report() and the dashboard views on a fleet of 1 000 streams x 30 days
# (REPORT_STREAMS, REPORT_DAYS), in one throwaway cluster.  The fleet's
# history is written straight into mlma's tables (fleet.sql): 30 000 closed
# batches of 96 losses, 29 000 checks, retrain requests in every state.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec pg_virtualenv -t -o "shared_buffers=512MB" -o "synchronous_commit=off" \
	bash -c '
		set -euo pipefail
		createdb mlma_report_bench
		psql -XqAt -d mlma_report_bench -c "CREATE EXTENSION mlma" >/dev/null
		start=$(date +%s%N)
		psql -Xq -d mlma_report_bench -v streams="${REPORT_STREAMS:-1000}" \
			-v days="${REPORT_DAYS:-30}" -f bench/report/fleet.sql >/dev/null
		echo "fleet built in $(( ($(date +%s%N) - start) / 1000000 )) ms"
		psql -X -d mlma_report_bench -v runs=5 -f bench/report/bench.sql | grep -v "^CREATE FUNCTION"
	'
