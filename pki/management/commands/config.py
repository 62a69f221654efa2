"""``python manage.py config <group> <verb> ...``: system configuration (EJBCA's ``config`` CLI).

The groups (``oauth``, ``scep``, ...) are registered by their apps; see ``pki.management.config_groups``.
"""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from cryptotokens.errors import CryptoTokenError
from pki.errors import PkiError
from pki.management.config_groups import config_groups


class Command(BaseCommand):
    help = "System configuration: one group per feature (config <group> --help lists its verbs)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="config_group", required=True, metavar="group", parser_class=type(parser))
        for name, group in config_groups().items():
            p = sub.add_parser(
                name, help=group.help, description=group.help,
                called_from_command_line=getattr(self, "_called_from_command_line", False),
            )
            group.add_arguments(p)

    def handle(self, *args, **options) -> None:
        group = config_groups().get(options["config_group"])
        if group is None:  # argparse already refuses unknown groups; this guards call_command(**kwargs)
            raise CommandError(f"Unknown config group {options['config_group']!r}")
        try:
            group.handle(options, self.stdout)
        except (PkiError, CryptoTokenError) as exc:
            raise CommandError(str(exc)) from None
