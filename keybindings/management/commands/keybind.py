"""``python manage.py keybind <subcommand>``: internal key bindings, with ``ejbca.sh keybind``'s verbs and
argument names (``--name``, ``--type``, ``--token``, ``--alias``, ``--sigalg``, ``--status``, ``-f``), so a
migrating administrator's scripts keep working. ``issue`` (certify from a local CA) and ``renew`` are this
product's additions; ``--keyspec`` on ``create`` generates a new key on the token.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from keybindings import services
from keybindings.choices import BindingStatus, BindingType
from pki.management.base import GroupCommand
from pki.models import CertificateProfile
from pki.services.cas import get_ca


def _trust(values: list[str] | None) -> list[dict[str, str]]:
    """``--addtrust 'CA name[;serial]'`` entries (EJBCA's ``CA;serial`` form)."""
    out = []
    for value in values or []:
        ca, _, serial = value.partition(";")
        out.append({"ca": ca.strip(), "serial": serial.strip()})
    return out


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from None


def _write(path: str | None, data: bytes, out) -> None:
    if not path:
        out.write(data.decode())
        return
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise CommandError(f"Cannot write {path}: {exc.strerror}") from None


class Command(GroupCommand):
    help = "Internal key bindings (remote authenticators and OCSP responders)."
    subcommands = {
        "create": "Create a key binding on a token's key (or a new key with --keyspec).",
        "list": "List key bindings.",
        "info": "Show one key binding.",
        "gencsr": "Write a PKCS#10 request for the binding's current (or next) key.",
        "import": "Import a certificate issued elsewhere for the binding's key.",
        "issue": "Issue the binding's certificate from a local CA with a certificate profile.",
        "setstatus": "Set the status: ACTIVE or DISABLED.",
        "modify": "Change the signature algorithm, next key, trusted certificates or protocol/cipher pairs.",
        "delete": "Delete a key binding (refused while something uses it).",
        "renew": "Generate the next key, certify it and switch to it.",
        "export": "Write the binding's certificate (PEM).",
        "exportcert": "Same as export (EJBCA's name).",
    }

    def _binding(self, name: str):
        return services.get_binding(self.actor, name)

    def add_create(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--type", required=True, choices=BindingType.values)
        p.add_argument("--token", required=True, help="Crypto token name or id")
        p.add_argument("--alias", default="", help="Key pair alias on the token")
        p.add_argument("--keyspec", default="", help="Generate a new key of this specification (P-256, RSA2048, ...)")
        p.add_argument("--sigalg", default="", help="Signature algorithm, e.g. SHA256WithRSA")
        p.add_argument("--status", default=BindingStatus.DISABLED, choices=BindingStatus.values)
        p.add_argument("--cert", default="null", help="EJBCA's argument; only 'null' (issue or import afterwards)")
        p.add_argument("--addtrust", action="append", metavar="CA[;serial]", help="Trusted server certificates")
        p.add_argument("-protocolAndCipherSuite", "--protocolandciphersuite", dest="suites", action="append",
                       metavar="TLSv1.3;TLS_AES_256_GCM_SHA384")

    def handle_create(self, name, type, token, alias="", keyspec="", sigalg="", status="DISABLED", cert="null",
                      addtrust=None, suites=None, **o):
        if cert not in ("", "null"):
            raise CommandError("--cert: give 'null' and then 'keybind import' or 'keybind issue'.")
        binding = services.create_binding(
            self.actor, name=name, binding_type=type, crypto_token=token, key_pair_alias=alias, key_spec=keyspec,
            signature_algorithm=sigalg, trusted_certificates=_trust(addtrust),
            protocol_and_cipher_suites=[s for v in suites or [] for s in v.split(",") if s.strip()])
        if status == BindingStatus.ACTIVE:
            services.set_status(self.actor, binding, status)
        self.stdout.write(f"InternalKeyBinding with id {binding.pk} created successfully.")

    def add_list(self, p):
        p.add_argument("--type", choices=BindingType.values)

    def handle_list(self, type=None, **o):
        for b in services.list_bindings(self.actor, type):
            st = services.certificate_status(b)
            days = "" if st["days_to_expiry"] is None else f", {st['days_to_expiry']} days to expiry"
            self.stdout.write(f'{b.binding_type} "{b.name}" ({b.pk}), {b.status}, "{st["issuer_dn"] or "n/a"}", '
                              f'{st["serial"].upper() or "n/a"}, "{b.crypto_token.name}" ({b.crypto_token_id}), '
                              f'{b.key_pair_alias}, {b.next_key_pair_alias or "null"}, '
                              f'{b.signature_algorithm or "default"}, certificate {st["state"]}{days}')

    def add_info(self, p):
        p.add_argument("--name", required=True)

    def handle_info(self, name, **o):
        b = self._binding(name)
        st = services.certificate_status(b)
        lines = [("Name", b.name), ("Id", b.pk), ("Type", b.binding_type), ("Status", b.status),
                 ("Crypto token", b.crypto_token.name), ("Key pair alias", b.key_pair_alias),
                 ("Next key pair alias", b.next_key_pair_alias or "null"),
                 ("Signature algorithm", b.signature_algorithm or "default for the key"),
                 ("Certificate", f"{st['serial'].upper() or 'none'} ({st['state']})"),
                 ("Issuer", st["issuer_dn"] or "n/a"), ("Days to expiry", st["days_to_expiry"]),
                 ("Trusted server certificates",
                  "; ".join(f"CA {e['ca_id']}" + (f", serial {e['serial']}" if e.get("serial") else "")
                            for e in b.trusted_certificates) or "any CA known locally"),
                 ("Protocol and cipher suites", ", ".join(b.protocol_and_cipher_suites) or "all allowed"),
                 ("Certificate history", ", ".join(h.certificate.serial.upper() for h in services.history(b))
                  or "none")]
        for label, value in lines:
            self.stdout.write(f"{label}: {value}")

    def add_gencsr(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("-f", "--file", dest="file", help="Output file (default: standard output)")
        p.add_argument("--subjectdn", default=None)
        p.add_argument("--nextkey", action="store_true", help="For the next key")
        p.add_argument("--genkeypair", action="store_true", help="Generate the next key first (and use it)")

    def handle_gencsr(self, name, file=None, subjectdn=None, nextkey=False, genkeypair=False, **o):
        b = self._binding(name)
        if genkeypair:
            services.generate_next_key(self.actor, b)
            nextkey = True
        _write(file, services.generate_csr(self.actor, b, next_key=nextkey, subject_dn=subjectdn), self.stdout)
        if file:
            self.stdout.write(f"Stored PEM encoded PKCS#10 request for '{name}' as {file}")

    def add_import(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("-f", "--file", dest="file", required=True, help="PEM or DER certificate")

    def handle_import(self, name, file, **o):
        row = services.import_certificate(self.actor, self._binding(name), _read(file))
        self.stdout.write(f"Operation completed successfully: certificate {row.serial.upper()} is now used by "
                          f"'{name}'.")

    def add_issue(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--caname", required=True)
        p.add_argument("--certprofile", required=True)
        p.add_argument("--subjectdn", default=None)
        p.add_argument("--validity", default=None)
        p.add_argument("--nextkey", action="store_true")

    def _profile(self, name: str) -> CertificateProfile:
        found = CertificateProfile.objects.filter(name=name).first()
        if found is None:
            raise CommandError(f"Certificate profile '{name}' does not exist")
        return found

    def handle_issue(self, name, caname, certprofile, subjectdn=None, validity=None, nextkey=False, **o):
        row = services.issue_certificate(self.actor, self._binding(name), ca=get_ca(caname),
                                         profile=self._profile(certprofile), subject_dn=subjectdn,
                                         validity=validity, next_key=nextkey)
        self.stdout.write(f"Issued certificate {row.serial.upper()} for '{name}' from CA '{caname}'.")

    def add_setstatus(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--status", "-v", dest="status", required=True, type=str.upper, choices=BindingStatus.values)

    def handle_setstatus(self, name, status, **o):
        services.set_status(self.actor, self._binding(name), status)
        self.stdout.write(f"Status for '{name}' was updated to {status}.")

    def add_modify(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--newname", default=None)
        p.add_argument("--sigalg", default=None)
        p.add_argument("--nextkeypair", default=None, help="Alias of the next key ('' to clear)")
        p.add_argument("--addtrust", action="append", metavar="CA[;serial]")
        p.add_argument("--removetrust", action="append", metavar="CA[;serial]")
        p.add_argument("-protocolAndCipherSuite", "--protocolandciphersuite", dest="suites", action="append")

    def handle_modify(self, name, newname=None, sigalg=None, nextkeypair=None, addtrust=None, removetrust=None,
                      suites=None, **o):
        b = self._binding(name)
        changes: dict = {"name": newname, "signature_algorithm": sigalg, "next_key_pair_alias": nextkeypair}
        if addtrust or removetrust:
            current = list(b.trusted_certificates)
            add = services.check_trusted(_trust(addtrust))
            remove = services.check_trusted(_trust(removetrust))
            changes["trusted_certificates"] = [e for e in current + add if e not in remove]
        if suites is not None:
            changes["protocol_and_cipher_suites"] = [s for v in suites for s in v.split(",") if s.strip()]
        services.edit_binding(self.actor, b, **changes)
        self.stdout.write(f"Key binding '{b.name}' updated.")

    def add_delete(self, p):
        p.add_argument("--name", required=True)

    def handle_delete(self, name, **o):
        services.delete_binding(self.actor, self._binding(name))
        self.stdout.write(f"Deleted key binding '{name}'.")

    def add_renew(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("--caname", default=None, help="Default: the CA of the current certificate")
        p.add_argument("--certprofile", default=None, help="Default: the profile of the current certificate")
        p.add_argument("--keyspec", default="", help="Default: the current key's specification")

    def handle_renew(self, name, caname=None, certprofile=None, keyspec="", **o):
        b = self._binding(name)
        row = services.renew(self.actor, b, ca=get_ca(caname) if caname else None,
                             profile=self._profile(certprofile) if certprofile else None, key_spec=keyspec)
        self.stdout.write(f"Renewed '{name}': new key '{b.key_pair_alias}', certificate {row.serial.upper()}.")

    def add_export(self, p):
        p.add_argument("--name", required=True)
        p.add_argument("-f", "--file", dest="file")

    def handle_export(self, name, file=None, **o):
        _write(file, services.export_certificate(self.actor, self._binding(name)), self.stdout)
        if file:
            self.stdout.write(f"Wrote the certificate of '{name}' to {file}")

    add_exportcert, handle_exportcert = add_export, handle_export
