"""How the connector process is started beside the web server (``make run``'s scripts/serve.py, the compose file's
``connector`` service, deploy/systemd/pki-connector.service): ``manage.py peer run`` on a CA node.

No Django here: scripts/serve.py imports it before any settings exist. With no connector configured the process
idles (one small query every :data:`peers.connector.IDLE_LOOK` seconds); it connects out as soon as one is added.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: ``PKI_PEER_CONNECTOR=0`` leaves the process out (another host of the same CA database runs it).
OFF = ("0", "false", "no", "off")


def wants_connector(environ: Mapping[str, str] | None = None) -> bool:
    """Start the connector process: on a CA node (the CA always opens the connection), unless turned off."""
    env = os.environ if environ is None else environ
    role = (env.get("PKI_NODE_ROLE") or "ca").strip().lower()
    return role == "ca" and (env.get("PKI_PEER_CONNECTOR") or "1").strip().lower() not in OFF


def connector_argv(python: str | None = None) -> list[str]:
    """The connector process's command line."""
    return [python or sys.executable, str(ROOT / "manage.py"), "peer", "run"]
