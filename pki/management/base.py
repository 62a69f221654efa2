"""Shared plumbing of the command groups (``ca``, ``audit``, ...): subcommands, errors, the CLI actor."""

from __future__ import annotations

import argparse
import getpass
import os

from django.core.management.base import BaseCommand, CommandError

from cryptotokens.errors import CryptoTokenError

from ..auth.access import Actor
from ..errors import PkiError

UNSUPPORTED_EXIT = 2


def unsupported(capability: str, hint: str = "") -> CommandError:
    """The error of an ``ejbca.sh`` form this project cannot carry out: it names the missing capability and
    exits with code 2 (other failures exit 1), so a migrated script can tell "not here" from "went wrong"."""
    return CommandError(f"Not supported here: {capability}." + (f" {hint}" if hint else ""),
                        returncode=UNSUPPORTED_EXIT)


def true_false(value: str) -> bool:
    """EJBCA's ``true``/``false`` option values (also yes/no, 1/0)."""
    low = str(value).strip().lower()
    if low in {"true", "yes", "1", "on"}:
        return True
    if low in {"false", "no", "0", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {value!r}")


def read_secret(given: str | None, *, env: str, prompt: str, missing: str) -> str:
    """A secret from its command-line option, else the environment variable ``env``, else a prompt on a terminal
    (not echoed): a secret need never be on a command line, where other users of the host can read it.
    ``missing`` is the error when none of them gives one."""
    value = given or os.environ.get(env)
    if not value and os.isatty(0):
        value = getpass.getpass(prompt)
    if not value:
        raise CommandError(missing)
    return value


WAITING_FOR_APPROVAL_EXIT = 3  # the action was stored as an approval request, not carried out


class GroupCommand(BaseCommand):
    """A command with subcommands: each ``handle_<name>`` method is one, ``add_<name>`` adds its options.
    ``aliases`` maps other names of a subcommand (this project's earlier spelling) to it."""

    subcommands: dict[str, str] = {}
    aliases: dict[str, str] = {}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=type(parser))
        for name, help_text in self.subcommands.items():
            p = sub.add_parser(
                name, help=help_text, aliases=[a for a, canonical in self.aliases.items() if canonical == name],
                called_from_command_line=getattr(self, "_called_from_command_line", False)
            )
            adder = getattr(self, f"add_{name}", None)
            if adder:
                adder(p)

    @property
    def actor(self) -> Actor:
        return Actor.system_actor("cli")

    def handle(self, *args, **options):
        name = self.aliases.get(options["subcommand"], options["subcommand"])
        try:
            return getattr(self, f"handle_{name}")(**options)
        except (PkiError, CryptoTokenError) as exc:
            if getattr(exc, "request_id", None) is not None:  # stored for approval: `approvals show <id>`
                raise CommandError(str(exc), returncode=WAITING_FOR_APPROVAL_EXIT) from None
            raise CommandError(str(exc)) from None
