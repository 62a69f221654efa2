"""The ``ca`` command's CRL, certificate, lifecycle and profile subcommands (``ejbca.sh ca`` argument names).

A mixin of :class:`pki.management.commands.ca.Command`, kept apart so neither module grows past a screenful of
subcommands. Each handler translates arguments and calls the same service the admin UI calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import CommandError
from django.db import models

from cryptotokens import services as token_services
from cryptotokens.models import CryptoTokenKeyPair

from ..crl import create_crl, crl_pem, latest_crl
from ..models import CRL, Certificate, CertificateAuthority, CertificateProfile
from ..services.cas import EDITABLE_CA_FIELDS, edit_ca, get_ca, import_ca, renew_ca, set_ca_active
from ..services.certificates import restrict
from ..services.profiles import EDITABLE_FIELDS, save_profile
from .base import read_secret, true_false, unsupported


def _caname_args(p, *, required: bool = True) -> None:
    p.add_argument("caname_pos", nargs="?", metavar="CANAME")
    p.add_argument("--caname", help="CA name" + ("" if required else " (default: every active CA)"))


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CommandError(f"Cannot write {path}: {exc.strerror}") from None


def _field_value(field: models.Field, raw: str):
    """A command-line string as the value of a CA field (durations in hours, as the other CA options)."""
    from datetime import timedelta

    if isinstance(field, models.BooleanField):
        try:
            return true_false(raw)
        except Exception:
            raise CommandError(f"{field.name} takes true or false, not '{raw}'") from None
    if isinstance(field, models.DurationField):
        try:
            return timedelta(hours=float(raw))
        except ValueError:
            raise CommandError(f"{field.name} takes hours (e.g. 24 or 0.5), not '{raw}'") from None
    return raw


class CaMoreCommands:
    """ca createcrl, getcacert, getcrl, importcacert, importca, renewca, activateca, deactivateca,
    exportprofiles, importprofiles, editca, listexpired, importcert."""

    # --- CRLs ----------------------------------------------------------------------------------------------------

    def add_createcrl(self, p):
        _caname_args(p, required=False)
        p.add_argument("-delta", "--delta", dest="delta", action="store_true", help="A delta CRL")

    def handle_createcrl(self, delta=False, **o):
        name = self._caname(o, required=False)
        if name:
            cas = [get_ca(name)]
        else:  # ejbca.sh without --caname: every CA that can sign one
            cas = list(CertificateAuthority.objects.active().order_by("pk"))
        for ca in cas:
            crl = create_crl(self.actor, ca, delta=delta)
            self.stdout.write(f"{'Delta CRL' if delta else 'CRL'} #{crl.crl_number} for {ca.name}: {crl.entries} "
                              f"entries, next update {crl.next_update.isoformat()}")

    def add_getcrl(self, p):
        _caname_args(p)
        p.add_argument("-f", "--file", dest="file", required=True, help="Output file")
        p.add_argument("-delta", "--delta", dest="delta", action="store_true", help="The latest delta CRL")
        p.add_argument("-pem", "--pem", dest="pem", action="store_true", help="PEM instead of DER")
        p.add_argument("-crlnumber", "--crlnumber", dest="crlnumber", type=int, help="This CRL number")

    def handle_getcrl(self, file, delta=False, pem=False, crlnumber=None, **o):
        ca = get_ca(self._caname(o))
        self.actor.require(f"/ca/{ca.pk}")
        if crlnumber is not None:
            crl = CRL.objects.filter(ca=ca, crl_number=crlnumber).first()
        else:
            crl = latest_crl(ca, delta=delta)
        if crl is None:
            raise CommandError(f"CA '{ca.name}' has no {'delta ' if delta else ''}CRL"
                               + (f" number {crlnumber}" if crlnumber is not None else ""))
        _write(file, crl_pem(crl) if pem else bytes(crl.der))
        self.stdout.write(f"Wrote {'delta ' if crl.is_delta else ''}CRL #{crl.crl_number} of {ca.name} to {file}")

    # --- CA certificates -----------------------------------------------------------------------------------------

    def add_getcacert(self, p):
        _caname_args(p)
        p.add_argument("-f", "--file", dest="file", help="Output file (default stdout)")
        p.add_argument("--chain", action="store_true", help="The whole chain, CA first")
        p.add_argument("-der", "--der", dest="der", action="store_true",
                       help="DER instead of PEM (first certificate only)")

    def handle_getcacert(self, file=None, chain=False, der=False, **o):
        ca = get_ca(self._caname(o))
        certs = ca.chain() if chain else [ca.certificate]
        if der:
            data = certs[0].public_bytes(serialization.Encoding.DER)
        else:
            data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        if file:
            _write(file, data)
            self.stdout.write(f"Wrote {len(certs)} certificate(s) to {file}")
        else:
            self.stdout.write(data.decode() if not der else data.hex())

    def add_importcacert(self, p):
        p.add_argument("standalone", nargs="*", metavar="VALUE", help="ejbca.sh's positional form: caname file")
        p.add_argument("--caname")
        p.add_argument("-f", "--file", dest="file", help="PEM certificate (chain, CA first) or DER")
        p.add_argument("-initauthorization", dest="initauthorization", action="store_true",
                       help="(ejbca.sh) make it the administrators' CA: not supported")
        p.add_argument("-superadmincn", dest="superadmincn", help="(ejbca.sh) not supported")

    def handle_importcacert(self, standalone=(), caname=None, file=None, initauthorization=False, superadmincn=None,
                            **o):
        values = list(standalone)
        caname = caname or (values.pop(0) if values else None)
        file = file or (values.pop(0) if values else None)
        if not caname or not file:
            raise CommandError("--caname and -f are required")
        if initauthorization or superadmincn:
            raise unsupported("-initauthorization (an external administrators' CA)",
                              "Import the CA, then add its certificates' members with `roles addrolemember`.")
        ca = import_ca(self.actor, caname, _read(file))
        self.stdout.write(f"Imported CA '{ca.name}' ({ca.subject_dn}), id {ca.pk}")

    def add_importca(self, p):
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        p.add_argument("--caname")
        p.add_argument("-f", "--file", dest="file")
        p.add_argument("-kspassword", "--kspassword", dest="kspassword")

    def handle_importca(self, **o):
        raise unsupported("importing a CA together with its private keys from a keystore (ca importca)",
                          "Import the certificate for trust with `ca importcacert`, or create the CA here with "
                          "`ca init` (on an existing token key: --tokenName and --existingkey).")

    def add_importcert(self, p):
        p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
        for name in ("--username", "--password", "--caname", "-a", "--email", "-f", "--eeprofile", "--certprofile"):
            p.add_argument(name)

    def handle_importcert(self, **o):
        raise unsupported("importing a certificate issued elsewhere into the database (ca importcert)",
                          "Issue it here instead (createcert, ra enroll, REST pkcs10enroll).")

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def add_renewca(self, p):
        _caname_args(p)
        p.add_argument("-R", dest="regenerate", action="store_true", help="Generate a new key pair")
        p.add_argument("--auth", help="The token's authentication code, when it is off line")
        p.add_argument("--notbefore", help="(ejbca.sh) not supported")

    def handle_renewca(self, regenerate=False, auth=None, notbefore=None, **o):
        ca = get_ca(self._caname(o))
        if notbefore:
            raise unsupported("a chosen notBefore for a renewed CA certificate (--notbefore)")
        if ca.crypto_token_id and not ca.crypto_token.is_active and auth:
            token_services.activate(self.actor, ca.crypto_token, auth)
        if regenerate:
            current = CryptoTokenKeyPair.objects.filter(token_id=ca.crypto_token_id, alias=ca.key_alias).first()
            spec = current.key_spec if current else None
            taken = set(CryptoTokenKeyPair.objects.filter(token_id=ca.crypto_token_id).values_list("alias", flat=True))
            n = 1
            while f"{ca.key_alias}-{n}" in taken:
                n += 1
            renewed = renew_ca(self.actor, ca, new_key_alias=f"{ca.key_alias}-{n}", new_key_spec=spec)
        else:
            renewed = renew_ca(self.actor, ca)
        cert = renewed.certificate
        self.stdout.write(f"Renewed CA '{ca.name}': serial {format(cert.serial_number, 'X')}, key '{renewed.key_alias}'"
                          f", valid to {cert.not_valid_after_utc.isoformat()}")

    def add_activateca(self, p):
        _caname_args(p)
        p.add_argument("--authcode", "--pin", dest="authcode",
                       help="The token's authentication code, when it is off line (better: $PKI_TOKEN_AUTHCODE)")

    def handle_activateca(self, authcode=None, **o):
        ca = get_ca(self._caname(o))
        if ca.crypto_token_id and not ca.crypto_token.is_active:
            code = read_secret(authcode, env="PKI_TOKEN_AUTHCODE", prompt="Authentication code of the CA's token: ",
                               missing=f"Crypto token '{ca.crypto_token.name}' is off line: give its code with "
                                       "--authcode or PKI_TOKEN_AUTHCODE")
            token_services.activate(self.actor, ca.crypto_token, code)
        set_ca_active(self.actor, ca, True)
        self.stdout.write(f"CA '{ca.name}' is active")

    def add_deactivateca(self, p):
        _caname_args(p)

    def handle_deactivateca(self, **o):
        ca = get_ca(self._caname(o))
        set_ca_active(self.actor, ca, False)
        self.stdout.write(f"CA '{ca.name}' is off line")

    def add_editca(self, p):
        _caname_args(p, required=False)
        p.add_argument("--field")
        p.add_argument("--value")
        p.add_argument("-listFields", dest="list_fields", action="store_true", help="List the fields editca changes")
        p.add_argument("-getValue", dest="get_value", action="store_true", help="Show the field's value")

    def handle_editca(self, field=None, value=None, list_fields=False, get_value=False, **o):
        if list_fields:
            for name in EDITABLE_CA_FIELDS:
                model_field = CertificateAuthority._meta.get_field(name)
                unit = " (hours)" if isinstance(model_field, models.DurationField) else ""
                self.stdout.write(f"{name}{unit}: {model_field.verbose_name}")
            return
        ca = get_ca(self._caname(o))
        if not field:
            raise CommandError("--field is required (-listFields lists them)")
        if field not in EDITABLE_CA_FIELDS:
            raise CommandError(f"'{field}' is not a field editca changes (-listFields lists them)")
        model_field = CertificateAuthority._meta.get_field(field)
        if get_value:
            self.stdout.write(f"{field}: {getattr(ca, field)}")
            return
        if value is None:
            raise CommandError("--value is required")
        edit_ca(self.actor, ca, **{field: _field_value(model_field, value)})
        self.stdout.write(f"CA '{ca.name}': {field} set to {getattr(get_ca(ca.pk), field)}")

    def add_listexpired(self, p):
        p.add_argument("days_pos", nargs="?", type=int, metavar="DAYS")
        p.add_argument("-d", "--days", dest="days", type=int, help="Within this many days")

    def handle_listexpired(self, days=None, days_pos=None, **o):
        within = days if days is not None else days_pos
        if within is None or within < 0:
            raise CommandError("-d (a number of days, 0 or more) is required")
        rows = restrict(Certificate.objects.expiring(days=within), self.actor).select_related("ca").order_by(
            "not_after")
        count = 0
        for row in rows.iterator():
            count += 1
            self.stdout.write(f"{row.ca.name}\t{row.serial.upper()}\t{row.subject_dn}\texpires "
                              f"{row.not_after.isoformat()}")
        self.stdout.write(f"{count} certificate(s) expire within {within} day(s).")

    # --- profiles ------------------------------------------------------------------------------------------------

    def add_exportprofiles(self, p):
        p.add_argument("dir_pos", nargs="?", metavar="DIRECTORY")
        p.add_argument("-d", "--directory", dest="directory", help="Directory to write to")

    def handle_exportprofiles(self, directory=None, dir_pos=None, **o):
        target = Path(directory or dir_pos or "")
        if not (directory or dir_pos) or not target.is_dir():
            raise CommandError("-d must name an existing directory")
        self.actor.require("/ca_functionality/view_certificate_profiles")
        count = 0
        for profile in CertificateProfile.objects.filter(builtin=False).order_by("pk"):
            values = {name: getattr(profile, name) for name in EDITABLE_FIELDS}
            name = f"certprofile_{profile.name}-{profile.pk}.json"
            _write(str(target / name), json.dumps({"name": profile.name, **values}, indent=2).encode())
            count += 1
        self.stdout.write(f"Wrote {count} certificate profile(s) to {target} (built-in profiles are not exported)")

    def add_importprofiles(self, p):
        p.add_argument("dir_pos", nargs="?", metavar="DIRECTORY")
        p.add_argument("-d", "--directory", dest="directory", help="Directory to read from")

    def handle_importprofiles(self, directory=None, dir_pos=None, **o):
        source = Path(directory or dir_pos or "")
        if not (directory or dir_pos) or not source.is_dir():
            raise CommandError("-d must name an existing directory")
        files = sorted(source.glob("certprofile_*.json"))
        if not files and list(source.glob("*.xml")):
            raise unsupported("EJBCA's XML profile exports", "Profiles move as this project's JSON "
                                                             "(ca exportprofiles).")
        for path in files:
            try:
                data = json.loads(path.read_text())
                name = str(data.pop("name"))
            except (ValueError, KeyError, OSError) as exc:
                raise CommandError(f"{path.name}: not a certificate profile export ({exc})") from None
            if CertificateProfile.objects.filter(name=name).exists():
                self.stdout.write(f"Certificate profile '{name}' exists already; skipped")
                continue
            unknown = set(data) - set(EDITABLE_FIELDS)
            if unknown:
                raise CommandError(f"{path.name}: unknown field(s) {', '.join(sorted(unknown))}")
            save_profile(self.actor, name, data)
            self.stdout.write(f"Imported certificate profile '{name}'")
