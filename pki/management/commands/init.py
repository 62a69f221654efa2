"""``python manage.py init``: create the demo PKI on first start (safe to run again)."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from pki import bootstrap
from pki.admin_credentials import credential_paths


class Command(BaseCommand):
    help = "Create the ManagementCA, default profiles, roles and the admin account (idempotent)."

    def handle(self, *args, **options):
        # Without Redis the shared cache is a database table (a no-op for other cache backends).
        call_command("createcachetable", verbosity=0)
        result = bootstrap.run()
        if result.created:
            for item in result.created:
                self.stdout.write(f"created {item}")
        else:
            self.stdout.write("already initialized; nothing to do")
        if result.superadmin_password:
            # As EJBCA's install: the administrator's client certificate and its password, shown once.
            self.stdout.write(self.style.SUCCESS(
                f"\n  Superadmin client certificate:  {credential_paths().superadmin_p12}\n"
                f"  P12 password:  {result.superadmin_password}\n"
                "  (shown once; a member of 'Super Administrator Role' by issuing CA + serial number. REST over\n"
                "  make run's HTTPS port (PORT+443: https://127.0.0.1:8443/ by default) with it, e.g.\n"
                "  openssl pkcs12 -in var/superadmin.p12 -nodes -out admin.pem)\n"
            ))
        if result.admin_password:
            self.stdout.write(self.style.SUCCESS(
                f"\n  Admin login:  user '{result.admin_username}'  password '{result.admin_password}'\n"
                "  (shown once; change it after logging in)\n"
            ))
        else:
            self.stdout.write(
                f"Admin login: user '{result.admin_username}' (the password was shown at first start; set a new one "
                f"with: .venv/bin/python manage.py changepassword {result.admin_username})"
            )
