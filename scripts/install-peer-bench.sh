#!/usr/bin/env bash
# The peers benchmarks/peer_issuance.py measures this project against, each in a virtual environment of its own so
# that their dependencies (django-ca wants a newer cryptography than this project pins) never meet ours.
# .venv-peers: django-ca 3.2 with psycopg2 (Django's PostgreSQL driver). Re-running is a no-op once installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv-peers"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import django_ca, psycopg2" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "django-ca==3.2.*" "psycopg2-binary>=2.9"
