"""``python manage.py audit verify|anchor``: check the audit log's HMAC chain; anchor its head outside the database."""

from __future__ import annotations

import logging.handlers
import os
from pathlib import Path

from django.core.management.base import CommandError

from pki.audit import current_anchor, parse_anchors, verify_chain
from pki.management.base import GroupCommand

SYSLOG_SOCKET = "/dev/log"


class Command(GroupCommand):
    help = "Audit log operations."
    subcommands = {
        "verify": "Verify the HMAC chain, its head, every certificate's event and the anchors; list every break.",
        "anchor": "Record the chain head's sequence and MAC outside the database (a file appended to, syslog).",
    }

    def add_verify(self, parser) -> None:
        parser.add_argument("--anchor", metavar="FILE", action="append", default=[],
                            help="A file of anchors written by 'audit anchor' (or a syslog file holding them); "
                                 "the chain must still hold each and reach the newest. May be repeated.")

    def add_anchor(self, parser) -> None:
        parser.add_argument("--file", metavar="FILE", help="Append the anchor line to FILE (created mode 0600).")
        parser.add_argument("--syslog", action="store_true", help=f"Also send it to syslog ({SYSLOG_SOCKET}).")

    def handle_verify(self, anchor: list[str], **options) -> None:
        anchors = []
        for name in anchor:
            try:
                found = parse_anchors(Path(name).read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise CommandError(f"Cannot read anchor file {name}: {exc.strerror}") from None
            if not found:
                raise CommandError(f"No audit anchors in {name}.")
            anchors += found
        report = verify_chain(anchors)
        if report.ok:
            newest = f", reaching anchor #{max(a.sequence for a in anchors)}" if anchors else ""
            self.stdout.write(f"Audit chain OK: {report.checked} events verified{newest}")
            return
        for brk in report.breaks:
            self.stderr.write(f"BROKEN: {brk.message}")
        where = f" at event #{report.broken_at}" if report.broken_at is not None else ""
        raise CommandError(f"Audit chain BROKEN{where}: {report.problem} ({len(report.breaks)} break"
                           f"{'s' if len(report.breaks) != 1 else ''} in all; {report.checked} events read)")

    def handle_anchor(self, file: str | None, syslog: bool, **options) -> None:
        line = current_anchor().line()
        if file:
            try:
                # O_APPEND: an anchor is only ever added; fsync: it must survive a crash right after.
                fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise CommandError(f"Cannot append to {file}: {exc.strerror}") from None
        if syslog:
            if not os.path.exists(SYSLOG_SOCKET):
                raise CommandError(f"No local syslog socket at {SYSLOG_SOCKET}.")
            handler = logging.handlers.SysLogHandler(address=SYSLOG_SOCKET,
                                                     facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV)
            try:
                handler.emit(logging.LogRecord("pki.audit", logging.WARNING, __file__, 0, line, None, None))
            finally:
                handler.close()
        self.stdout.write(line)
