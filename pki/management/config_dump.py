"""``python manage.py config dump``: the configdump export (the same service as REST ``GET v1/configdump``),
as JSON on stdout or in a file, or as EJBCA's zip of YAML files (``--format zip -o dump.zip``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from ..services.configdump import ExportSettings, Pattern, export_dump, find_type, to_zip
from .config_groups import cli_actor


class DumpConfigGroup:
    help = "Export the configuration as EJBCA's configdump (JSON or a zip of YAML files)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--format", choices=("json", "zip"), default="json")
        parser.add_argument("-o", "--output", help="File to write (JSON: default stdout; zip: required)")
        parser.add_argument("--type", dest="item_type", help="Only this type, e.g. CERTPROFILE or certificate-profiles")
        parser.add_argument("--include", action="append", default=[], help="TYPE:NAME pattern, '*' wildcards")
        parser.add_argument("--exclude", action="append", default=[], help="TYPE:NAME pattern, '*' wildcards")
        parser.add_argument("--externalcas", action="store_true", help="Also export external (imported) CAs")

    def handle(self, options: dict[str, Any], stdout) -> None:
        settings = ExportSettings(
            include=[p for text in options["include"] for p in Pattern.parse(text)],
            exclude=[p for text in options["exclude"] for p in Pattern.parse(text)],
            external_cas=options["externalcas"],
            only_type=find_type(options["item_type"]) if options.get("item_type") else None,
        )
        dump = export_dump(cli_actor(), settings)
        if options["format"] == "zip":
            if not options.get("output"):
                raise CommandError("--format zip needs -o <file>.")
            Path(options["output"]).write_bytes(to_zip(dump))
            stdout.write(f"Wrote {sum(len(v) for v in dump.values())} items to {options['output']}")
            return
        text = json.dumps(dump, indent=2, default=str)
        if options.get("output"):
            Path(options["output"]).write_text(text + "\n")
            stdout.write(f"Wrote {sum(len(v) for v in dump.values())} items to {options['output']}")
        else:
            stdout.write(text)
