"""``python manage.py createcert``: ``ejbca.sh createcert`` — issue an end entity's certificate for a PKCS#10 request.

    createcert --username user --password foo123 -c request.pem -f certificate.pem

The end entity must exist (``ra addendentity``) with status NEW; the username and enrollment code authenticate the
request exactly as REST pkcs10enroll and SCEP do (one issuance pipeline, the profile's rules, audit). The
certificate is written to ``-f`` in PEM. ``--password`` is taken on the command line as ejbca.sh takes it, or from
$PKI_ENROLLMENT_CODE or a prompt; it is never printed.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import BaseCommand, CommandError

from cryptotokens.errors import CryptoTokenError
from endentities.services import enroll
from pki.errors import PkiError, ValidationError
from pki.management.base import read_secret


class Command(BaseCommand):
    help = "Issue a certificate for a PKCS#10 request, as an end entity with its username and enrollment code."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", required=True, help="End entity username")
        parser.add_argument("--password", help="Enrollment code (or $PKI_ENROLLMENT_CODE, or the prompt)")
        parser.add_argument("-c", "--csr", dest="csr", required=True, help="PKCS#10 request file (PEM or DER)")
        parser.add_argument("-f", "--file", dest="file", required=True, help="Certificate output file (PEM)")

    def handle(self, *args, username: str, password: str | None, csr: str, file: str, **options) -> None:
        code = read_secret(password, env="PKI_ENROLLMENT_CODE", prompt=f"Enrollment code of '{username}': ",
                           missing="Give the enrollment code with --password or PKI_ENROLLMENT_CODE")
        try:
            data = Path(csr).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {csr}: {exc.strerror}") from None
        try:
            issued = enroll(username, code, csr=data, interface="cli")
        except ValidationError as exc:
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
        except (PkiError, CryptoTokenError) as exc:
            raise CommandError(str(exc)) from None
        try:
            Path(file).write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
        except OSError as exc:
            raise CommandError(f"Certificate {issued.row.serial} was issued but cannot be written to {file}: "
                               f"{exc.strerror}") from None
        self.stdout.write(f"Issued serial {issued.row.serial.upper()} to '{username}', written to {file}")
