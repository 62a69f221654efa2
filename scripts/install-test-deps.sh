#!/usr/bin/env bash
# Install the Debian packages the test suite needs beyond the Python packages: openssl, chromium for
# the browser tests (driven by Playwright from the test extras; no browser download), SoftHSM2 for the
# PKCS#11 token tests, the database servers.
set -euo pipefail
PY="${1:-.venv/bin/python}"
need=()
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
{ command -v nginx || [ -x /usr/sbin/nginx ]; } >/dev/null || need+=(nginx)
command -v systemd-analyze >/dev/null || need+=(systemd)
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
# micromdm's SCEP client and server: interoperability tests and benchmarks/scep_enroll.py.
{ command -v scepclient && command -v scepserver; } >/dev/null || need+=(scep)
# certmonger's daemon and its SCEP helper on a private D-Bus session (tests/protocols/scep/test_certmonger.py).
{ command -v certmonger && command -v dbus-run-session; } >/dev/null || need+=(certmonger dbus-daemon)
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)  # the test OpenID provider
command -v keytool >/dev/null || need+=(default-jre-headless)  # JKS/BCFKS keystore tests read with keytool
[ -e /usr/share/java/bcprov.jar ] || need+=(libbcprov-java)  # BCFKS keystores (keytool + Bouncy Castle)
if [ ${#need[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The test OpenID provider (oidc-provider from npm, versions pinned by its package-lock.json).
(cd "$(dirname "$0")/../tests/support/oidc_op" && npm ci --no-audit --no-fund --loglevel=error)
# axe-core for the browser tests' accessibility checks (pinned by its package-lock.json), into the git-ignored
# tests/e2e/axe/node_modules: the tests inject it into each page; the application never serves it.
(cd "$(dirname "$0")/../tests/e2e/axe" && npm ci --no-audit --no-fund --loglevel=error)
# django-ca for benchmarks/peer_issuance.py (its smoke run is part of the suite), in .venv-peers.
"$(dirname "$0")/install-peer-bench.sh"
