"""``python manage.py peer <subcommand>``: outgoing peer connectors (CA node), incoming peers (RA/VA node), and
``run``, the connector process that ``make run`` and the compose file start on a CA node."""

from __future__ import annotations

import json
import signal
import threading

from django.conf import settings
from django.core.management.base import CommandError

from peers import connector as runner
from peers import services
from peers.transport import PeerError
from pki.management.base import GroupCommand


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise CommandError(f"--enabled: true or false, not {value!r}")
    return text in ("true", "1", "yes", "on")


class Command(GroupCommand):
    help = "Peer systems: outgoing connectors from this CA to RA/VA nodes, and incoming peers on an RA/VA."
    subcommands = {
        "add": "Add an outgoing connector (CA node): --name, --url https://..., --binding <remote authenticator>.",
        "list": "List outgoing connectors (and incoming peers on an RA/VA).",
        "edit": "Change a connector's --newname, --url, --binding or --enabled.",
        "remove": "Remove a connector.",
        "test": "Connect once with mTLS and say hello.",
        "status": "Show a connector's state (connected, last contact, requests carried, failures, TLS errors).",
        "run": "Run the connectors until stopped (the connector process).",
    }

    def add_add(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--url", required=True)
        p.add_argument("--binding", required=True, help="Authentication key binding (remote authenticator) name")
        p.add_argument("--enabled", default="true")

    def handle_add(self, name, url, binding, enabled="true", **o):
        c = services.add_connector(self.actor, name=name, url=url, binding=binding, enabled=_flag(enabled))
        self.stdout.write(f"Peer connector '{c.name}' ({c.pk}) added.")

    def add_list(self, p):
        p.add_argument("--json", action="store_true")

    def handle_list(self, json=False, **o):  # noqa: A002 - the option's name
        rows = [services.connector_summary(c) for c in services.list_connectors(self.actor)]
        incoming = [services.incoming_summary(i) for i in services.list_incoming(self.actor)]
        if json:
            import json as json_module

            self.stdout.write(json_module.dumps({"node": settings.PKI_NODE_ROLE, "connectors": rows,
                                                 "incoming": incoming}, indent=2))
            return
        for r in rows:
            self.stdout.write(f'"{r["name"]}" ({r["id"]}) {r["url"]} binding "{r["binding"]}" '
                              f'{"enabled" if r["enabled"] else "disabled"}, {r["state"]}')
        for i in incoming:
            self.stdout.write(f'incoming "{i["identity"]}" last contact {i["last_contact"]}, '
                              f'{i["requests_leased"]} leased, {i["answers"]} answers')

    def add_edit(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--newname")
        p.add_argument("--url")
        p.add_argument("--binding")
        p.add_argument("--enabled")

    def handle_edit(self, name, newname=None, url=None, binding=None, enabled=None, **o):
        c = services.get_connector(self.actor, name)
        changes = {k: v for k, v in (("name", newname), ("url", url), ("binding", binding)) if v is not None}
        if enabled is not None:
            changes["enabled"] = _flag(enabled)
        if not changes:
            raise CommandError("Nothing to change: give --newname, --url, --binding or --enabled.")
        c = services.edit_connector(self.actor, c, **changes)
        self.stdout.write(f"Peer connector '{c.name}' saved.")

    def add_remove(self, p):
        p.add_argument("--name", required=True)

    def handle_remove(self, name, **o):
        services.remove_connector(self.actor, services.get_connector(self.actor, name))
        self.stdout.write(f"Peer connector '{name}' removed.")

    def add_test(self, p):
        p.add_argument("--name", required=True)

    def handle_test(self, name, **o):
        c = services.get_connector(self.actor, name)
        try:
            hello = runner.test_connection(c)
        except PeerError as exc:
            raise CommandError(f"Peer connector '{c.name}' could not connect: {exc.text}") from None
        self.stdout.write(f"Connected to {c.url}: a {hello.get('node', '?').upper()} node that knows us as "
                          f"{hello.get('peer', '?')}.")

    def add_status(self, p):
        p.add_argument("--name", required=True)

    def handle_status(self, name, **o):
        self.stdout.write(json.dumps(services.connector_summary(services.get_connector(self.actor, name)), indent=2))

    def add_run(self, p):
        p.add_argument("--name", action="append", help="Only these connectors (default: all)")
        p.add_argument("--workers", type=int, default=runner.WORKERS, help="Requests carried at once per connector")
        p.add_argument("--lease-wait", type=float, default=runner.LEASE_WAIT)

    def handle_run(self, name=None, workers=runner.WORKERS, lease_wait=runner.LEASE_WAIT, **o):
        if settings.PKI_NODE_ROLE != "ca":
            raise CommandError("Only a CA node runs peer connectors (the CA always opens the connection).")
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write("Peer connectors running.")
        self.stdout.flush()
        runner.run_all(stop, names=name, workers=max(1, min(workers, 32)), lease_wait=lease_wait)
