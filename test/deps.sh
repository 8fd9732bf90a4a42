#!/usr/bin/env bash
# Install the Debian packages mlma needs to build, test, benchmark and demo.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

PKGS="build-essential postgresql-15 postgresql-contrib postgresql-server-dev-15 libpq-dev
postgresql-15-pgtap postgresql-15-cron libtap-parser-sourcehandler-pgtap-perl
libipc-run-perl python3-scipy python3-statsmodels python3-psycopg2 python3-numpy
clang libclang-rt-14-dev chromium python3-pil"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "mlma: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
