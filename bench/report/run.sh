#!/usr/bin/env bash
# report() and the dashboard views on a fleet of 1 000 streams x 30 days
# (REPORT_STREAMS, REPORT_DAYS), in one throwaway cluster.  The fleet's
# history is written straight into mlma's tables (fleet.sql): 30 000 closed
# batches of 96 losses, 29 000 checks, retrain requests in every state.
# Prints the median wall-clock time of each query (bench.sql) and the CPU
# time of the backend for report() (from /proc: on a busy machine the wall
# clock also counts the waits for a core).
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
		# CPU time of one backend running report() 5 times (after a warm-up)
		coproc P { psql -XAtq -d mlma_report_bench; }
		q="SELECT length(mlma.report());"
		echo "SELECT pg_backend_pid();" >&"${P[1]}"; read -r pid <&"${P[0]}"
		echo "$q" >&"${P[1]}"; read -r size <&"${P[0]}"
		t0=$(awk "{print \$14 + \$15}" /proc/$pid/stat); w0=$(date +%s%N)
		for i in 1 2 3 4 5; do echo "$q" >&"${P[1]}"; read -r size <&"${P[0]}"; done
		t1=$(awk "{print \$14 + \$15}" /proc/$pid/stat); w1=$(date +%s%N)
		echo "\\q" >&"${P[1]}"
		echo "report(), whole fleet: $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) / 5 )) ms CPU," \
			"$(( (w1 - w0) / 5000000 )) ms wall per run ($size bytes); load average $(cut -d" " -f1-3 /proc/loadavg)"
	'
