#!/usr/bin/env bash
# Runs inside pg_virtualenv (PGHOST/PGPORT/PGUSER/PGPASSWORD set), as postgres.
# Each suite runs even when an earlier one failed; the summary line counts them.
set -uo pipefail
cd "$(dirname "$0")/.."

# MLMA_SUITES="regress tap ..." runs only the named suites.
passed=0; failed=0; failures=""
suite() {
	local name=$1; shift
	if [ -n "${MLMA_SUITES:-}" ] && [[ " $MLMA_SUITES " != *" $name "* ]]; then
		return 0
	fi
	echo "==== suite: $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1)); failures="$failures $name"
	fi
}

# pg_regress and isolation (PGXS installcheck)
[ -n "$(ls test/sql/*.sql 2>/dev/null)" ] && \
	suite regress make -s installcheck ISOLATION= TAP_TESTS=
[ -n "$(ls test/specs/*.spec 2>/dev/null)" ] && \
	suite isolation make -s installcheck REGRESS= TAP_TESTS=

# pgTAP via pg_prove, in a database of its own
if [ -n "$(ls test/pgtap/*.sql 2>/dev/null)" ]; then
	suite pgtap ./test/pgtap/run.sh
fi

# TAP (PostgreSQL::Test::Cluster): builds its own clusters
if [ -n "$(ls test/t/*.pl 2>/dev/null)" ]; then
	suite tap make -s installcheck REGRESS= ISOLATION=
fi

# numeric oracle: C unit tests of the stats core, then SciPy against SQL
if [ -f test/unit/Makefile ]; then
	suite unit make -s -C test/unit check
fi
# libFuzzer over the numeric core, bounded time (test/fuzz/run.sh)
if [ -x test/fuzz/run.sh ]; then
	suite fuzz ./test/fuzz/run.sh
fi
if [ -n "$(ls test/oracle/*.py 2>/dev/null)" ]; then
	suite oracle ./test/oracle/run.sh
fi

# the README's examples, run as written
if [ -f test/readme/run.py ]; then
	suite readme /usr/bin/python3 test/readme/run.py
fi

echo
echo "mlma test suites:$([ -n "$failures" ] && echo " failed:$failures")"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
