#!/usr/bin/env bash
# Install the Debian packages the test suite needs beyond the Python packages: openssl, chromium for
# the browser tests (driven by Playwright from the test extras; no browser download), the database servers.
set -euo pipefail
PY="${1:-.venv/bin/python}"
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
