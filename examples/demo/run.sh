#!/usr/bin/env bash
# make demo: the simulated last-mile delivery platform.
#
# Installs what is missing (Debian packages), builds and installs mlma and
# mlma-agent, then replays four weeks of 15-minute order counts of 300
# delivery zones against a throwaway cluster (pg_virtualenv) and prints the
# summary.  Options are passed on to simulate.py (e.g. --zones 100, --mlma
# '{"method": "hac"}'); see examples/demo/simulate.py --help.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

./test/deps.sh
make -s -j2
$SUDO make -s install >/dev/null

# -t: the throwaway cluster lives in a temporary directory, even as root.
# synchronous_commit=off: the replay commits once per simulated hour and the
# demo's cluster is thrown away; mlma's own work is the same either way.
# pg_virtualenv picks a free port before starting the server; when another
# cluster grabs it in between, start again (nothing has run yet).
#
# The demo ends with the picture: the fleet report of the replay, written
# (before the cluster goes away) to examples/demo/out/fleet.html or to
# $MLMA_DEMO_REPORT; open it in a browser.
report=${MLMA_DEMO_REPORT:-$(pwd)/examples/demo/out/fleet.html}
mkdir -p "$(dirname "$report")"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export MLMA_DEMO_REPORT="$report"
for attempt in 1 2 3; do
	status=0
	pg_virtualenv -t -o shared_buffers=256MB -o synchronous_commit=off \
		bash -c '/usr/bin/python3 examples/demo/simulate.py "$@" &&
			psql -XAt -d mlma_demo -c "SELECT mlma.report()" > "$MLMA_DEMO_REPORT" &&
			echo && echo "fleet report: $MLMA_DEMO_REPORT"' demo "$@" 2>&1 | tee "$log" || status=$?
	if [ $status -ne 0 ] && [ $attempt -lt 3 ] &&
		grep -q -e 'Port conflict' -e 'could not create any TCP/IP sockets' "$log"; then
		echo "mlma demo: the cluster's port was taken, starting again"
		sleep 3
		continue
	fi
	exit $status
done
