#!/usr/bin/env bash
# promtool for the tests of docs/prometheus (tests/host/test_prometheus_files.py): Debian's
# `prometheus` package when promtool is missing. Only the checker is used; no server is
# started (Debian's service is not run in a container without an init system).
#
# Usage: bash .ci/prometheus.sh
set -euo pipefail

if ! command -v promtool >/dev/null; then
    echo "installing promtool (Debian package prometheus)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq prometheus >&2
fi
promtool --version >&2
