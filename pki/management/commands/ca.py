"""``python manage.py ca <subcommand>``: CA operations from the command line (the same services as the UI)."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import CommandError

from cryptotokens import services as token_services
from cryptotokens.models import CryptoToken
from pki import bootstrap
from pki.crl import create_crl
from pki.issuance import IssuanceRequest, issue
from pki.management.base import GroupCommand, read_secret
from pki.models import CertificateAuthority
from pki.public_urls import default_ocsp_url
from pki.revocation import find_certificate, revoke
from pki.services.cas import CASettings, create_ca, get_ca
from pki.services.profiles import get_profile


def _hours(value: str) -> timedelta:
    return timedelta(hours=float(value))


class Command(GroupCommand):
    help = "Certificate authority operations."
    subcommands = {
        "init": "Create a CA (root, or sub-CA with --signedby); without options, bootstrap the ManagementCA.",
        "list": "List the CAs.",
        "createcrl": "Create a new CRL (or delta CRL) for a CA.",
        "issuecert": "Issue a certificate for a PKCS#10 request.",
        "revokecert": "Revoke a certificate by issuer and serial.",
        "getcacert": "Write a CA's certificate (or chain) in PEM or DER.",
    }

    def add_init(self, p):
        p.add_argument("--caname")
        p.add_argument("--dn", help='Subject DN, e.g. "CN=Issuing CA,O=Example,C=SE"')
        p.add_argument("--token", help="Existing crypto token name (default: a new soft token named after the CA)")
        p.add_argument("--tokenpass", help="Authentication code for a new soft token (auto-activated). Better: "
                       "$PKI_TOKEN_AUTHCODE or the prompt; a command line is visible to other users of the host")
        p.add_argument("--keyalias", default="signKey")
        p.add_argument("--keyspec", default="RSA3072", help="RSA2048..RSA8192, P-256, P-384, P-521, Ed25519")
        p.add_argument("--existingkey", action="store_true", help="Use the key pair already under --keyalias")
        p.add_argument("--validity", default="10y")
        p.add_argument("--signalg", help="e.g. SHA256WithRSA, SHA256withECDSA (default from the key)")
        p.add_argument("--signedby", help="Name of the local CA that signs this sub-CA")
        p.add_argument("--certprofile", help="CA certificate profile (ROOTCA / SUBCA by default)")
        p.add_argument("--crlperiod", type=_hours, default=timedelta(hours=24), help="hours")
        p.add_argument("--crloverlap", type=_hours, default=timedelta(minutes=10), help="hours")
        p.add_argument("--deltacrlperiod", type=_hours, default=timedelta(0), help="hours (0: no delta CRLs)")
        p.add_argument("--crldp", default="")
        p.add_argument("--ocspurl", default=None, help="OCSP URL in issued certificates (default: this "
                       "installation's responder, PKI_BASE_URL/ocsp; '' for none)")
        p.add_argument("--default", action="store_true", help="Use this CA when SCEP/REST name none")
        p.add_argument("--uniquepublickeys", action=argparse.BooleanOptionalAction, default=True,
                       help="Enforce unique public keys (EJBCA's default: on)")
        p.add_argument("--uniquedn", action=argparse.BooleanOptionalAction, default=True,
                       help="Enforce unique DN (EJBCA's default: on)")
        p.add_argument("--uniquednserialnumber", action=argparse.BooleanOptionalAction, default=False,
                       help="Enforce unique Subject DN SerialNumber (default: off)")

    def handle_init(self, caname=None, dn=None, **o):
        if not caname:
            result = bootstrap.run()
            self.stdout.write("\n".join(f"created {c}" for c in result.created) or "already initialized")
            if result.admin_password:
                self.stdout.write(f"admin '{result.admin_username}' password: {result.admin_password}")
            return
        if not dn:
            raise CommandError("--dn is required with --caname")
        token = self._token(caname, o["token"], o["tokenpass"])
        ca = create_ca(self.actor, CASettings(
            name=caname, subject_dn=dn, crypto_token=token, key_alias=o["keyalias"],
            key_spec=None if o["existingkey"] else o["keyspec"],
            signed_by=get_ca(o["signedby"]) if o["signedby"] else None, validity=o["validity"],
            signature_algorithm=o["signalg"], certificate_profile=o["certprofile"],
            crl_period=o["crlperiod"], crl_overlap=o["crloverlap"], delta_crl_period=o["deltacrlperiod"],
            crl_distribution_point=o["crldp"], is_default=o["default"],
            ocsp_url=default_ocsp_url() if o["ocspurl"] is None else o["ocspurl"],
            enforce_unique_public_keys=o["uniquepublickeys"], enforce_unique_dn=o["uniquedn"],
            enforce_unique_dn_serial_number=o["uniquednserialnumber"],
        ))
        self.stdout.write(f"Created CA '{ca.name}' ({ca.subject_dn}), id {ca.pk}")

    def _token(self, caname: str, token_name: str | None, tokenpass: str | None) -> CryptoToken:
        if token_name:
            token = CryptoToken.objects.filter(name=token_name).first()
            if token is None:
                raise CommandError(f"Crypto token '{token_name}' does not exist")
            return token
        if tokenpass:
            self.stderr.write("Warning: --tokenpass puts the code on the command line, where other users of this "
                              "host can read it; set PKI_TOKEN_AUTHCODE or answer the prompt instead.")
        tokenpass = read_secret(
            tokenpass, env="PKI_TOKEN_AUTHCODE", prompt=f"Authentication code for the new crypto token '{caname}': ",
            missing="Give --token (an existing crypto token), or the new soft token's authentication code in "
                    "PKI_TOKEN_AUTHCODE, at the prompt (on a terminal) or with --tokenpass")
        return token_services.create_token(self.actor, name=caname, token_type="SoftCryptoToken",
                                           auth_code=tokenpass, auto_activate=True)

    def handle_list(self, **o):
        for ca in CertificateAuthority.objects.select_related("signed_by"):
            cert = ca.certificate
            expires = cert.not_valid_after_utc.date().isoformat() if cert else "-"
            issuer = ca.signed_by.name if ca.signed_by else ("self" if ca.is_root else "external")
            self.stdout.write(f"{ca.pk}\t{ca.name}\t{ca.status}\t{ca.subject_dn}\tsigned by {issuer}\texpires {expires}"
                              + ("\t(default)" if ca.is_default else ""))

    def add_createcrl(self, p):
        p.add_argument("caname")
        p.add_argument("--delta", action="store_true")

    def handle_createcrl(self, caname, delta=False, **o):
        crl = create_crl(self.actor, get_ca(caname), delta=delta)
        self.stdout.write(f"{'Delta CRL' if delta else 'CRL'} #{crl.crl_number} for {caname}: {crl.entries} entries, "
                          f"next update {crl.next_update.isoformat()}")

    def add_issuecert(self, p):
        p.add_argument("--caname", required=True)
        p.add_argument("--csr", required=True, help="PKCS#10 file (PEM or DER)")
        p.add_argument("--certprofile", default="ENDUSER")
        p.add_argument("--dn", help="Subject DN (default: the CSR's)")
        p.add_argument("--altname", help='e.g. "DNSNAME=host.example.com,IPADDRESS=10.0.0.1"')
        p.add_argument("--username", default="")
        p.add_argument("--validity", help="Override (when the profile allows), e.g. 90 or 1y")
        p.add_argument("-o", "--out", help="Write the certificate here (PEM); default stdout")

    def handle_issuecert(self, caname, csr, certprofile, dn=None, altname=None, username="", validity=None,
                         out=None, **o):
        try:
            data = Path(csr).read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {csr}: {exc.strerror}") from None
        issued = issue(IssuanceRequest(
            ca=get_ca(caname), actor=self.actor, profile=get_profile(certprofile), csr=data, subject_dn=dn,
            subject_alt_name=altname, username=username, validity=validity,
        ))
        pem = issued.certificate.public_bytes(serialization.Encoding.PEM).decode()
        if out:
            Path(out).write_text(pem)
            self.stdout.write(f"Issued serial {issued.row.serial} to {out}")
        else:
            self.stdout.write(pem, ending="")

    def add_revokecert(self, p):
        p.add_argument("--caname", required=True, help="Issuing CA name or DN")
        p.add_argument("--serial", required=True, help="Hex serial number")
        p.add_argument("--reason", default="unspecified", help="RFC 5280 reason name or code")

    def handle_revokecert(self, caname, serial, reason, **o):
        cert = revoke(self.actor, find_certificate(caname, serial), reason)
        self.stdout.write(f"Certificate {cert.serial} is now {cert.get_status_display().lower()}")

    def add_getcacert(self, p):
        p.add_argument("--caname", required=True)
        p.add_argument("-f", "--file", help="Output file (default stdout)")
        p.add_argument("--chain", action="store_true", help="The whole chain, CA first")
        p.add_argument("--der", action="store_true", help="DER instead of PEM (first certificate only)")

    def handle_getcacert(self, caname, file=None, chain=False, der=False, **o):
        ca = get_ca(caname)
        certs = ca.chain() if chain else [ca.certificate]
        if der:
            data = certs[0].public_bytes(serialization.Encoding.DER)
        else:
            data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
        if file:
            Path(file).write_bytes(data)
            self.stdout.write(f"Wrote {len(certs)} certificate(s) to {file}")
        else:
            self.stdout.write(data.decode() if not der else data.hex())
