#!/usr/bin/env bash
# replay() and replay_fleet() over a long history, in one throwaway cluster:
# REPLAY_OBSERVATIONS (default 1000000) observations of one stream (batch 100,
# reference 200, drifting in places), then the replays, each timed and
# printed as seconds per million observations replayed.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec pg_virtualenv -o "shared_buffers=512MB" -o "max_wal_size=4GB" -o "synchronous_commit=off" \
	psql -X -q -v ON_ERROR_STOP=1 -v n="${REPLAY_OBSERVATIONS:-1000000}" -f bench/replay/replay.sql
