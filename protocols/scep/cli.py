"""``python manage.py config scep <verb>``: EJBCA's ``config scep`` commands over :mod:`.services`."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from pki.management.config_groups import VerbConfigGroup, cli_actor

from . import services


class ScepConfigGroup(VerbConfigGroup):
    help = "SCEP aliases: uploadfile, listalias, addalias, removealias, renamealias, dumpalias."
    verbs = {
        "uploadfile": "Read an alias's <alias>.<key> lines from a properties file (creates the alias).",
        "listalias": "List the SCEP aliases.",
        "addalias": "Add an alias with the default settings.",
        "removealias": "Remove an alias.",
        "renamealias": "Rename an alias.",
        "dumpalias": "Print an alias as <alias>.<key>=value lines (secrets masked).",
    }

    def add_uploadfile(self, p) -> None:
        p.add_argument("--alias", required=True)
        p.add_argument("--file", required=True)

    def handle_uploadfile(self, options, stdout) -> None:
        path = Path(options["file"])
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        alias, keys = services.upload_properties(cli_actor(), options["alias"], text)
        if alias is None:
            stdout.write(f"No SCEP configuration for alias '{options['alias']}' in {path}: nothing changed.")
            return
        for key in keys:
            stdout.write(f"Setting value: {alias.name}.{key}")
        stdout.write(f"SCEP alias '{alias.name}' saved from {path}.")

    def handle_listalias(self, options, stdout) -> None:
        for alias in services.list_aliases():
            stdout.write(alias.name)

    def add_addalias(self, p) -> None:
        p.add_argument("--alias", required=True)

    def handle_addalias(self, options, stdout) -> None:
        services.add_alias(cli_actor(), options["alias"])
        stdout.write(f"Added SCEP alias '{options['alias']}'.")

    def add_removealias(self, p) -> None:
        p.add_argument("--alias", required=True)

    def handle_removealias(self, options, stdout) -> None:
        services.remove_alias(cli_actor(), options["alias"])
        stdout.write(f"Removed SCEP alias '{options['alias']}'.")

    def add_renamealias(self, p) -> None:
        p.add_argument("--oldalias", required=True)
        p.add_argument("--newalias", required=True)

    def handle_renamealias(self, options, stdout) -> None:
        services.rename_alias(cli_actor(), options["oldalias"], options["newalias"])
        stdout.write(f"Renamed SCEP alias '{options['oldalias']}' to '{options['newalias']}'.")

    def add_dumpalias(self, p) -> None:
        p.add_argument("--alias", required=True)

    def handle_dumpalias(self, options, stdout) -> None:
        stdout.write(services.dump_alias(options["alias"]), ending="")
