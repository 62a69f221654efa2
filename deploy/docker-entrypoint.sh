#!/bin/sh
# Entrypoint of the pki image: checks the master key, then runs the command (gunicorn, celery, manage.py).
#
# Every pki process must use the same PKI_MASTER_KEY. Without one, pki would generate a key into the
# container's own PKI_VAR_DIR, so each replica would get a different key and could not read what the
# others stored: refuse to start instead. The key comes from the environment (deploy/pki.env) or, for
# operators who prefer a docker secret, from /run/secrets/pki_master_key.
set -eu

secret=/run/secrets/pki_master_key
if [ -z "${PKI_MASTER_KEY:-}" ] && [ -r "$secret" ]; then
    PKI_MASTER_KEY="$(cat "$secret")"
    export PKI_MASTER_KEY
fi
if [ -z "${PKI_MASTER_KEY:-}" ]; then
    echo "pki: PKI_MASTER_KEY is not set (put it in deploy/pki.env or the pki_master_key secret)." >&2
    echo "pki: every web, worker and beat process must share the same key; refusing to start." >&2
    exit 78
fi
exec "$@"
