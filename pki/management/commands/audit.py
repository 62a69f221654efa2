"""``python manage.py audit verify``: check the audit log's HMAC chain."""

from django.core.management.base import CommandError

from pki.audit import verify_chain
from pki.management.base import GroupCommand


class Command(GroupCommand):
    help = "Audit log operations."
    subcommands = {"verify": "Verify the HMAC chain and report the first broken link."}

    def handle_verify(self, **options):
        report = verify_chain()
        if not report.ok:
            raise CommandError(f"Audit chain BROKEN at event #{report.broken_at}: {report.problem} "
                               f"({report.checked} events verified before it)")
        self.stdout.write(f"Audit chain OK: {report.checked} events verified")
