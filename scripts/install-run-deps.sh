#!/usr/bin/env bash
# The Debian package `make run` needs beyond the Python packages: nginx, which scripts/serve.py puts in front
# of gunicorn. Installed only where this can be done unattended (root with apt-get); elsewhere serve.py runs
# gunicorn alone and says what that leaves open.
set -euo pipefail
{ command -v nginx || [ -x /usr/sbin/nginx ] || [ -x /usr/local/sbin/nginx ]; } >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "Installing the Debian package nginx (the front of make run's gunicorn)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
