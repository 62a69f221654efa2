#!/bin/sh
# ejbca.sh for scripts written against EJBCA's command line: the same subcommands and arguments, run by this
# project's manage.py (README "Command line"). Put this directory on PATH or symlink ejbca.sh to this file.
# The command line acts as the server itself (every action authorized and audited as "cli").
ROOT=$(CDPATH= cd -- "$(dirname -- "$(readlink -f -- "$0")")/.." && pwd)
exec "${PKI_PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/manage.py" "$@"
