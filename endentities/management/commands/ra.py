"""``python manage.py ra <subcommand>``: end entity operations, with EJBCA's CLI arguments.

    ra addendentity --username=user --password=foo123 --dn="CN=User Usersson" --caname=ManagementCA \\
        --type=1 --token=USERGENERATED [--altname=...] [--email=...] [--certprofile=...] [--eeprofile=...]
    ra setclearpwd --username=user --password=foo123        (also: ra setclearpwd user foo123)
    ra setpwd --username=user --password=foo123
    ra setendentitystatus --username=user -S 10             (also: ra setendentitystatus user 10)
    ra revokeendentity --username=user -r 1
    ra delendentity --username=user [-force]
    ra findendentity --username=user
    ra listendentities [-S 10]
    ra enroll --username=user --password=foo123 --csr=req.pem [-o cert.pem]
    ra revokecert --dn "CN=ManagementCA,O=PKI Demo,C=SE" -s 1A2B3C -r 1
    ra unrevokeendentity --username=user                     (takes its certificates off hold)
    ra getendentitycert --username=user                      (its certificates, PEM)
    ra setsubjectdn --username=user --dn "CN=New Name,O=Org"
    ra renameendentity --current=user --new=user2

Like EJBCA's, the username (and the password or status) may also be given as positional arguments.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import CommandError

from endentities.choices import EndEntityStatus, EndEntityType, TokenType
from endentities.models import EndEntity
from endentities.services import (
    EndEntityQuery,
    add_end_entity,
    certificates_of,
    delete_end_entity,
    edit_end_entity,
    enroll,
    find_end_entity,
    revoke_end_entity,
    search_end_entities,
    set_clear_password,
    set_password,
    set_status,
)
from endentities.services.rename import rename_end_entity
from endentities.validation import EndEntityInput
from pki.choices import CertificateStatus
from pki.errors import ValidationError
from pki.management.base import GroupCommand
from pki.revocation import find_certificate, revoke, unrevoke


def _username(p) -> None:
    p.add_argument("username_pos", nargs="?", metavar="USERNAME")
    p.add_argument("--username", dest="username")


def _pick(options: dict, name: str, positional: str) -> str | None:
    value = options.get(name) or options.get(positional)
    return value


class Command(GroupCommand):
    help = "End entity (RA) operations, with EJBCA's `ra` arguments."
    subcommands = {
        "addendentity": "Add an end entity.",
        "setclearpwd": "Set the password of an end entity and keep it recoverable (encrypted).",
        "setpwd": "Set the password (enrollment code) of an end entity (stored hashed).",
        "setendentitystatus": "Set the status of an end entity (NEW=10, GENERATED=40, ...).",
        "revokeendentity": "Revoke an end entity and all its certificates.",
        "delendentity": "Delete an end entity.",
        "findendentity": "Show an end entity.",
        "listendentities": "List end entities, optionally only those with a status.",
        "enroll": "Enroll an end entity with its username and enrollment code and a PKCS#10 request.",
        "revokecert": "Revoke one certificate by issuer DN and serial number.",
        "unrevokeendentity": "Take an end entity's certificates off hold (and its status back from REVOKED).",
        "getendentitycert": "Print the certificates of an end entity (PEM).",
        "setsubjectdn": "Change the subject DN of an end entity.",
        "renameendentity": "Give an end entity another username.",
    }

    # --- addendentity ------------------------------------------------------------------------------

    def add_addendentity(self, p):
        p.add_argument("--username", required=True)
        p.add_argument("--password", help="Enrollment code (omit when the profile generates it)")
        p.add_argument("--dn", default="", help='Subject DN, e.g. "CN=User Usersson,O=Org,C=SE"')
        p.add_argument("--altname", default="", help='e.g. "dNSName=host.example.com,rfc822Name=u@example.com"')
        p.add_argument("--email", default="")
        p.add_argument("--caname", help="CA name (default: the profile's default CA)")
        p.add_argument("--type", default="1", help="End entity type bits: 1 end user, +128 key recoverable, "
                                                   "+256 send notification (EJBCA's --type)")
        p.add_argument("--token", default="USERGENERATED", help="USERGENERATED, P12, JKS, PEM or BCFKS (or 1-5)")
        p.add_argument("--certprofile", help="Certificate profile (default: the end entity profile's default)")
        p.add_argument("--eeprofile", help="End entity profile (default: EMPTY)")

    def handle_addendentity(self, username, password=None, dn="", altname="", email="", caname=None, type="1",
                            token="USERGENERATED", certprofile=None, eeprofile=None, **o):  # noqa: S107
        try:
            bits = int(type)
        except ValueError:
            raise CommandError(f"--type must be a number (1 = end user), not '{type}'") from None
        if not bits & EndEntityType.ENDUSER:
            raise CommandError("--type must include 1 (end user)")
        try:
            token_type = TokenType.parse(token)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        data = EndEntityInput(
            username=username, password=password or None, subject_dn=dn, subject_alt_name=altname, email=email,
            ca=caname, certificate_profile=certprofile, token_type=token_type,
            key_recoverable=True if bits & EndEntityType.KEYRECOVERABLE else None,
            send_notification=True if bits & EndEntityType.SENDNOTIFICATION else None,
        )
        ee = add_end_entity(self.actor, data, profile=eeprofile)
        self.stdout.write(f"End entity '{ee.username}' added (status NEW, token {TokenType(ee.token_type).name}, "
                          f"CA '{ee.ca.name}').")
        if getattr(ee, "generated_password", None):
            self.stdout.write(f"Generated password: {ee.generated_password}")

    # --- passwords and status ----------------------------------------------------------------------

    def add_setclearpwd(self, p):
        _username(p)
        p.add_argument("password_pos", nargs="?", metavar="PASSWORD")
        p.add_argument("--password", dest="password")

    def handle_setclearpwd(self, **o):
        username, password = self._need(o, "username"), self._need(o, "password")
        set_clear_password(self.actor, username, password)
        self.stdout.write(f"Password of '{username}' set (kept recoverable, encrypted).")

    add_setpwd = add_setclearpwd

    def handle_setpwd(self, **o):
        username, password = self._need(o, "username"), self._need(o, "password")
        set_password(self.actor, username, password)
        self.stdout.write(f"Password of '{username}' set.")

    def add_setendentitystatus(self, p):
        _username(p)
        p.add_argument("status_pos", nargs="?", metavar="STATUS")
        p.add_argument("-S", "--status", dest="status", help="10 NEW, 11 FAILED, 20 INITIALIZED, 30 INPROCESS, "
                                                           "40 GENERATED, 50 REVOKED, 60 HISTORICAL, 70 KEYRECOVERY")

    def handle_setendentitystatus(self, **o):
        username, status = self._need(o, "username"), self._need(o, "status")
        ee = set_status(self.actor, username, status)
        self.stdout.write(f"Status of '{username}' set to {ee.status} ({ee.status_name}).")

    # --- revoke and delete -------------------------------------------------------------------------

    def add_revokeendentity(self, p):
        _username(p)
        p.add_argument("reason_pos", nargs="?", metavar="REASON")
        p.add_argument("-r", "--reason", dest="reason", help="RFC 5280 reason code (0 unspecified, 1 keyCompromise, "
                                                           "... 6 certificateHold ...) or name")

    def handle_revokeendentity(self, **o):
        username = self._need(o, "username")
        reason = _pick(o, "reason", "reason_pos") or "0"
        ee = revoke_end_entity(self.actor, username, reason)
        self.stdout.write(f"End entity '{username}' revoked; status {ee.status} ({ee.status_name}).")

    def add_delendentity(self, p):
        _username(p)
        p.add_argument("-force", "--force", action="store_true", help="Do not ask (EJBCA's -force)")
        p.add_argument("--revoke", action="store_true", help="Revoke its certificates first (reason unspecified)")

    def handle_delendentity(self, force=False, revoke=False, **o):
        username = self._need(o, "username")
        if not force and not self._confirm(f"Delete end entity '{username}'? [y/N] "):
            raise CommandError("Not deleted.")
        delete_end_entity(self.actor, username, revoke_reason=0 if revoke else None)
        self.stdout.write(f"End entity '{username}' deleted.")

    def _confirm(self, question: str) -> bool:
        import sys

        if not sys.stdin or not sys.stdin.isatty():
            return True  # scripts (EJBCA's CLI also deletes without asking when there is no terminal)
        return input(question).strip().lower() in {"y", "yes"}

    # --- reading -----------------------------------------------------------------------------------

    def add_findendentity(self, p):
        _username(p)

    def handle_findendentity(self, **o):
        ee = find_end_entity(self.actor, self._need(o, "username"))
        self.stdout.write("\n".join(self._describe(ee)))

    def _describe(self, ee: EndEntity) -> list[str]:
        from endentities.subject import redact_subject

        profile = ee.end_entity_profile
        return [
            "Found end entity:",
            f"Username: {ee.username}",
            f"DN: \"{redact_subject(ee.subject_dn, profile)}\"",
            f"Alt Name: \"{redact_subject(ee.subject_alt_name, profile) or ''}\"",
            f"E-Mail: {ee.email}",
            f"Status: {ee.status} ({ee.status_name})",
            f"Type: {1 + (128 if ee.key_recoverable else 0) + (256 if ee.send_notification else 0)}",
            f"Token Type: {ee.token_type} ({TokenType(ee.token_type).name})",
            f"CA: {ee.ca.name}",
            f"End Entity Profile: {profile.name} ({profile.pk})",
            f"Certificate Profile: {ee.certificate_profile.name} ({ee.certificate_profile_id})",
            f"Requests remaining: {ee.request_counter} of {ee.allowed_requests}",
            f"Failed logins: {ee.failed_login_count}",
            f"Created: {ee.created_at.isoformat()}",
            f"Modified: {ee.updated_at.isoformat()}",
        ]

    def add_listendentities(self, p):
        p.add_argument("-S", "--status", default="00", help="Status code or name; 00 or ANY: all (default)")

    def handle_listendentities(self, status="00", **o):
        query = EndEntityQuery()
        if str(status).upper() not in {"00", "0", "ANY", "ALL"}:
            try:
                query.statuses = [EndEntityStatus.parse(status)]
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        count = 0
        for ee in search_end_entities(self.actor, query):
            from endentities.subject import redact_subject

            count += 1
            self.stdout.write(f"End Entity: {ee.username}, \"{redact_subject(ee.subject_dn, ee.end_entity_profile)}\""
                              f", \"{ee.email}\", {ee.status} ({ee.status_name}), {TokenType(ee.token_type).name}")
        self.stdout.write(f"{count} end entities.")

    # --- enroll ------------------------------------------------------------------------------------

    def add_enroll(self, p):
        p.add_argument("--username", required=True)
        p.add_argument("--password", required=True, help="Enrollment code")
        p.add_argument("--csr", required=True, help="PKCS#10 file (PEM or DER)")
        p.add_argument("-o", "--out", help="Write the certificate here (PEM); default stdout")

    def handle_enroll(self, username, password, csr, out=None, **o):
        try:
            data = Path(csr).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {csr}: {exc.strerror}") from None
        issued = enroll(username, password, csr=data, interface="cli")
        pem = issued.certificate.public_bytes(serialization.Encoding.PEM).decode()
        if out:
            Path(out).write_text(pem)
            self.stdout.write(f"Issued serial {issued.row.serial} to {out}")
        else:
            self.stdout.write(pem, ending="")

    # --- single certificates and renames -------------------------------------------------------------

    def add_revokecert(self, p):
        p.add_argument("--dn", required=True, help="Issuer DN of the certificate (or the CA's name)")
        p.add_argument("-s", "--serial", dest="serial", required=True, help="Serial number, hex")
        p.add_argument("-r", "--reason", dest="reason", default="0",
                       help="RFC 5280 reason code (0 unspecified, 1 keyCompromise, ... 6 certificateHold) or name")

    def handle_revokecert(self, dn, serial, reason="0", **o):
        cert = revoke(self.actor, find_certificate(dn, serial), reason)
        self.stdout.write(f"Certificate {cert.serial.upper()} is now {cert.get_status_display().lower()}.")

    def add_unrevokeendentity(self, p):
        _username(p)

    def handle_unrevokeendentity(self, **o):
        ee = find_end_entity(self.actor, self._need(o, "username"))
        held = list(certificates_of(self.actor, ee).filter(status=CertificateStatus.ON_HOLD))
        for cert in held:
            unrevoke(self.actor, cert)
        if held and ee.status == EndEntityStatus.REVOKED:
            set_status(self.actor, ee.username, EndEntityStatus.GENERATED)
        self.stdout.write(f"{len(held)} certificate(s) of '{ee.username}' taken off hold.")

    def add_getendentitycert(self, p):
        _username(p)

    def handle_getendentitycert(self, **o):
        ee = find_end_entity(self.actor, self._need(o, "username"))
        for cert in certificates_of(self.actor, ee):
            self.stdout.write(f"Serial number: {cert.serial.upper()} ({cert.get_status_display().lower()})")
            self.stdout.write(cert.certificate.public_bytes(serialization.Encoding.PEM).decode(), ending="")

    def add_setsubjectdn(self, p):
        _username(p)
        p.add_argument("--dn", required=True)

    def handle_setsubjectdn(self, dn, **o):
        ee = find_end_entity(self.actor, self._need(o, "username"))
        data = EndEntityInput(
            username=ee.username, subject_dn=dn, subject_alt_name=ee.subject_alt_name, email=ee.email, ca=ee.ca,
            certificate_profile=ee.certificate_profile, token_type=ee.token_type,
            key_recoverable=ee.key_recoverable, send_notification=ee.send_notification)
        ee = edit_end_entity(self.actor, ee.username, data, profile=ee.end_entity_profile)
        self.stdout.write(f"Subject DN of '{ee.username}' set.")

    def add_renameendentity(self, p):
        p.add_argument("--current", required=True, help="Current username")
        p.add_argument("--new", required=True, help="New username")

    def handle_renameendentity(self, current, new, **o):
        ee = rename_end_entity(self.actor, current, new)
        self.stdout.write(f"End entity '{current}' renamed to '{ee.username}'.")

    # --- helpers -----------------------------------------------------------------------------------

    def _need(self, options: dict, name: str) -> str:
        value = _pick(options, name, f"{name}_pos")
        if value in (None, ""):
            raise CommandError(f"--{name} is required")
        return str(value)

    def handle(self, *args, **options):
        try:
            return super().handle(*args, **options)
        except ValidationError as exc:  # name the field, as every interface does
            raise CommandError(f"{exc.field}: {exc.message}" if exc.field else exc.message) from None
