"""``python manage.py users status|unlock``: failed-login lockouts of local accounts and client addresses
(login form, HTTP Basic, SCEP RA shared secret; see pki.auth.throttle)."""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from pki.auth import throttle
from pki.management.base import GroupCommand

SCOPES = (throttle.ACCOUNT, throttle.ADDRESS, throttle.SCEP_RA)


class Command(GroupCommand):
    help = "Failed-login lockouts of local accounts and client addresses."
    subcommands = {
        "status": "List the accounts and addresses locked now (--all: also those with failures on record).",
        "unlock": "Clear an account's (or with --scope, an address's) failed logins and lockout.",
    }

    def add_status(self, parser) -> None:
        parser.add_argument("--all", action="store_true", help="Also subjects with failures but no lockout now.")

    def add_unlock(self, parser) -> None:
        parser.add_argument("name", help="The account name (or the client address with --scope address|scep-ra).")
        parser.add_argument("--scope", choices=SCOPES, default=throttle.ACCOUNT)

    def handle_status(self, all: bool, **options) -> None:  # noqa: A002 - the option's name
        rows = throttle.locks(active_only=not all)
        if not rows:
            self.stdout.write("No lockouts.")
            return
        now = time.time()
        for lock in rows:
            left = max(0, int(lock.until - now))
            state = f"locked {left} s more" if left else f"{lock.failures} recent failure(s)"
            self.stdout.write(f"{lock.scope:8} {lock.subject}  {state} (lockouts so far: {lock.lockouts})")

    def handle_unlock(self, name: str, scope: str, **options) -> None:
        if not throttle.unlock(self.actor.name, scope, name):
            raise CommandError(f"No failed logins on record for {scope} '{name}'.")
        self.stdout.write(f"Unlocked {scope} '{name}'.")
