#!/bin/sh
# retrain.sh -- the retrain command mlma-agent runs for a flagged zone.
#
# mlma-agent puts the request into the environment (MLMA_STREAM is the zone,
# the stream name given by the zone column of demo.orders_forecast).  The
# refit runs in the database: demo.retrain() fits the zone's slot-of-week
# profile on its last two weeks of orders and re-forecasts the slots not yet
# realized.  The last line of output is the new model version, which the
# agent reports back with mlma.complete_retrain().
set -eu
: "${MLMA_STREAM:?MLMA_STREAM is not set: run by mlma-agent}"
echo "SELECT demo.retrain(:'zone')" |
	"${MLMA_DEMO_PSQL:-psql}" -X -q -A -t -v ON_ERROR_STOP=1 -v zone="$MLMA_STREAM"
