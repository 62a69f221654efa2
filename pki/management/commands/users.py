"""``python manage.py users add|list|passwd|disable|enable``: local accounts (pki.services.users; a password set
here is one-time, printed once, and must be changed at the next login), and ``users status|unlock``: failed-login
lockouts of local accounts and client addresses (login form, HTTP Basic, SCEP RA shared secret; see
pki.auth.throttle)."""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from pki.auth import throttle
from pki.management.base import GroupCommand
from pki.services import users

SCOPES = (throttle.ACCOUNT, throttle.ADDRESS, throttle.SCEP_RA)


class Command(GroupCommand):
    help = "Local user accounts, and failed-login lockouts of local accounts and client addresses."
    subcommands = {
        "add": "Create a local account; its one-time password is printed once (changed at the first login).",
        "list": "Every local account: active or disabled, last login, the roles that name it.",
        "passwd": "Reset an account's password to a new one-time password, printed once.",
        "disable": "Disable an account: it can no longer log in and its sessions end.",
        "enable": "Enable a disabled account again.",
        "status": "List the accounts and addresses locked now (--all: also those with failures on record).",
        "unlock": "Clear an account's (or with --scope, an address's) failed logins and lockout.",
    }

    def add_add(self, parser) -> None:
        parser.add_argument("username")

    def add_passwd(self, parser) -> None:
        parser.add_argument("username")

    def add_disable(self, parser) -> None:
        parser.add_argument("username")

    def add_enable(self, parser) -> None:
        parser.add_argument("username")

    def handle_add(self, username: str, **options) -> None:
        user, password = users.create_user(self.actor, username)
        self.stdout.write(f"Created user '{user.get_username()}'. One-time password (shown once; it must be "
                          f"changed at the first login):\n{password}")

    def handle_list(self, **options) -> None:
        rows = users.list_users(self.actor)
        if not rows:
            self.stdout.write("No local users.")
        for row in rows:
            last = f"{row.last_login:%Y-%m-%d %H:%M} UTC" if row.last_login else "never"
            state = "active" if row.is_active else "disabled"
            flag = "  (must change password)" if row.must_change_password else ""
            self.stdout.write(f"{row.username:24} {state:8}  last login {last}  roles: "
                              f"{', '.join(row.roles) or '-'}{flag}")

    def handle_passwd(self, username: str, **options) -> None:
        password = users.reset_password(self.actor, username)
        self.stdout.write(f"New one-time password of '{username}' (shown once; it must be changed at the next "
                          f"login):\n{password}")

    def handle_disable(self, username: str, **options) -> None:
        changed = users.set_active(self.actor, username, False)
        self.stdout.write(f"Disabled '{username}'." if changed else f"'{username}' was already disabled.")

    def handle_enable(self, username: str, **options) -> None:
        changed = users.set_active(self.actor, username, True)
        self.stdout.write(f"Enabled '{username}'." if changed else f"'{username}' was already enabled.")

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
