"""``python manage.py ca <subcommand>``: CA operations with ``ejbca.sh ca``'s subcommands and argument names.

    ca init --caname IssuingCA --dn "CN=Issuing CA,O=Example,C=SE" --tokenType soft --tokenPass foo123 \\
        --keyspec 2048 --keytype RSA -v 3650 --policy null -s SHA256WithRSA [--signedby ManagementCA]
    ca init IssuingCA "CN=Issuing CA,O=Example,C=SE" soft foo123 2048 RSA 3650 null SHA256WithRSA   (positional)
    ca listcas · ca info --caname X · ca createcrl [--caname X] [-delta] · ca getcacert --caname X -f f [-der]
    ca getcrl --caname X -f f [-delta] [-pem] [-crlnumber N] · ca importcacert --caname X -f chain.pem
    ca renewca --caname X [-R] · ca activateca|deactivateca --caname X · ca listexpired -d 30
    ca exportprofiles -d dir · ca importprofiles -d dir · ca editca --caname X --field F --value V
    ca issuecert / revokecert (this project's own)

Every subcommand calls the services the admin UI calls (authorized as the command line's actor, audited). Secrets
(``--tokenPass``) are accepted on the command line as ``ejbca.sh`` takes them, but $PKI_TOKEN_AUTHCODE or the prompt
keep them out of the process list; they are never printed. What this project cannot do exits with code 2.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from django.core.management.base import CommandError

from cryptotokens import services as token_services
from cryptotokens.models import CryptoToken
from pki import bootstrap
from pki.approval_actions import gate_issue
from pki.issuance import IssuanceRequest, issue
from pki.management.base import GroupCommand, read_secret, unsupported
from pki.management.ca_more import CaMoreCommands
from pki.models import CertificateAuthority
from pki.public_urls import default_ocsp_url
from pki.revocation import find_certificate, revoke
from pki.services.cas import CASettings, create_ca, get_ca
from pki.services.profiles import get_profile

SOFT_TOKEN_TYPES = {"soft", "softcryptotoken", "org.cesecore.keys.token.softcryptotoken"}
# ca init's positional order in ejbca.sh (StandaloneMode): each value fills the option of that name.
INIT_POSITIONAL = ("caname", "dn", "tokentype", "tokenpass", "keyspec", "keytype", "validity", "policy", "signalg")


def _hours(value: str) -> timedelta:
    return timedelta(hours=float(value))


def key_spec_of(keyspec: str | None, keytype: str | None) -> str:
    """ejbca.sh's ``--keyspec 2048 --keytype RSA`` / ``--keyspec secp256r1 --keytype ECDSA`` as one key spec."""
    spec = (keyspec or "").strip()
    kind = (keytype or "").strip().upper()
    if kind in {"ED25519", "ED448"}:
        return keytype.strip()
    if kind in {"", "RSA"} and spec.isdigit():
        return f"RSA{spec}"
    if kind in {"", "RSA", "ECDSA", "EC", "ECC"}:
        return spec or "RSA3072"
    raise unsupported(f"key type '{keytype}'", "Use RSA, ECDSA, Ed25519 or Ed448.")


class Command(CaMoreCommands, GroupCommand):
    help = "Certificate authority operations (ejbca.sh ca subcommands)."
    subcommands = {
        "init": "Create a CA (root, or sub-CA with --signedby); without options, bootstrap the ManagementCA.",
        "listcas": "List the CAs.",
        "info": "Show a CA.",
        "createcrl": "Create a CRL (or delta CRL) for a CA, or for every active CA without --caname.",
        "getcacert": "Write a CA's certificate (or chain) in PEM or DER.",
        "getcrl": "Write a CA's latest CRL (or delta CRL, or CRL number N) in DER or PEM.",
        "importcacert": "Import an external CA's certificate (chain) for trust.",
        "importca": "Import a CA with its keys from a keystore (not supported here).",
        "renewca": "Renew a CA's certificate, with its key or a new one (-R).",
        "activateca": "Put a CA on line.",
        "deactivateca": "Take a CA off line.",
        "exportprofiles": "Write the certificate profiles to a directory.",
        "importprofiles": "Read certificate profiles from a directory.",
        "editca": "Change one field of a CA (-listFields lists them).",
        "listexpired": "List certificates that expire within some days.",
        "importcert": "Import a certificate issued elsewhere (not supported here).",
        "issuecert": "Issue a certificate for a PKCS#10 request.",
        "revokecert": "Revoke a certificate by issuer and serial.",
    }
    aliases = {"list": "listcas"}

    # --- init ----------------------------------------------------------------------------------------------------

    def add_init(self, p):
        p.add_argument("standalone", nargs="*", metavar="VALUE",
                       help="ejbca.sh's positional form: caname dn tokentype tokenpass keyspec keytype validity "
                            "policy signalg")
        p.add_argument("--caname")
        p.add_argument("--dn", help='Subject DN, e.g. "CN=Issuing CA,O=Example,C=SE"')
        p.add_argument("--tokenType", "--tokentype", dest="tokentype",
                       help="soft: a new soft crypto token named after the CA (PKCS#11: create the token with "
                            "cryptotoken create and give --tokenName)")
        p.add_argument("--tokenName", "--token", dest="token", help="An existing crypto token")
        p.add_argument("--tokenPass", "--tokenpass", dest="tokenpass",
                       help="The token's authentication code ('prompt' to be asked). Better: $PKI_TOKEN_AUTHCODE or "
                            "the prompt; a command line is visible to other users of the host")
        p.add_argument("--keyspec", help="2048, 4096, secp256r1, P-384, ... or RSA3072 (default)")
        p.add_argument("--keytype", help="RSA, ECDSA, Ed25519, Ed448")
        p.add_argument("--keyalias", default="signKey")
        p.add_argument("--existingkey", nargs="?", const="", default=None, metavar="ALIAS",
                       help="Use the key pair already on the token under ALIAS (or --keyalias)")
        p.add_argument("-v", "--validity", dest="validity", help="Days (3650) or 10y, 1y 6mo, ... (default 10y)")
        p.add_argument("--policy", help="Certificate policy OIDs of the CA certificate ('null': none)")
        p.add_argument("-s", "--signalg", dest="signalg", help="e.g. SHA256WithRSA, SHA256withECDSA")
        p.add_argument("--signedby", help="Id or name of the local CA that signs this sub-CA")
        p.add_argument("-certprofile", "--certprofile", dest="certprofile",
                       help="CA certificate profile (ROOTCA / SUBCA by default)")
        p.add_argument("-superadmincn", dest="superadmincn", help=argparse.SUPPRESS)
        p.add_argument("-externalcachain", dest="externalcachain", help=argparse.SUPPRESS)
        p.add_argument("--tokenprop", help=argparse.SUPPRESS)
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

    def handle_init(self, standalone=(), **o):
        if len(standalone) > len(INIT_POSITIONAL):
            raise CommandError(f"ca init takes at most {len(INIT_POSITIONAL)} positional values")
        for name, value in zip(INIT_POSITIONAL, standalone, strict=False):
            if o.get(name) in (None, ""):
                o[name] = value
        caname, dn = o.get("caname"), o.get("dn")
        if not caname:
            if standalone or dn:
                raise CommandError("--caname is required")
            result = bootstrap.run()
            self.stdout.write("\n".join(f"created {c}" for c in result.created) or "already initialized")
            if result.superadmin_password:
                self.stdout.write(f"superadmin.p12 password: {result.superadmin_password}")
            if result.admin_password:
                self.stdout.write(f"admin '{result.admin_username}' password: {result.admin_password}")
            return
        if not dn:
            raise CommandError("--dn is required with --caname")
        self._refuse_unsupported_init(o)
        token = self._token(caname, o)
        existing = o["existingkey"]
        alias = existing or o["keyalias"]
        ca = create_ca(self.actor, CASettings(
            name=caname, subject_dn=dn, crypto_token=token, key_alias=alias,
            key_spec=None if existing is not None else key_spec_of(o.get("keyspec"), o.get("keytype")),
            signed_by=get_ca(o["signedby"]) if o["signedby"] else None, validity=o.get("validity") or "10y",
            signature_algorithm=o.get("signalg") or None, certificate_profile=o["certprofile"],
            crl_period=o["crlperiod"], crl_overlap=o["crloverlap"], delta_crl_period=o["deltacrlperiod"],
            crl_distribution_point=o["crldp"], is_default=o["default"],
            ocsp_url=default_ocsp_url() if o["ocspurl"] is None else o["ocspurl"],
            enforce_unique_public_keys=o["uniquepublickeys"], enforce_unique_dn=o["uniquedn"],
            enforce_unique_dn_serial_number=o["uniquednserialnumber"],
        ))
        self.stdout.write(f"Created CA '{ca.name}' ({ca.subject_dn}), id {ca.pk}")

    def _refuse_unsupported_init(self, o: dict) -> None:
        policy = (o.get("policy") or "null").strip()
        if policy.lower() not in {"null", "", "none"}:
            raise unsupported("certificate policies in a CA certificate (--policy)", "Give --policy null.")
        if o.get("superadmincn"):
            raise unsupported("-superadmincn", "init makes var/superadmin.p12, a Super Administrator member.")
        if o.get("externalcachain") or str(o.get("signedby") or "").lower() == "external":
            raise unsupported("a CA signed by an external CA (--signedby External)")
        if o.get("tokenprop"):
            raise unsupported("--tokenprop files", "Create the crypto token with `cryptotoken create` and give "
                                                   "--tokenName.")
        kind = (o.get("tokentype") or "soft").strip().lower()
        if not o.get("token") and kind not in SOFT_TOKEN_TYPES:
            raise unsupported(f"creating a '{o['tokentype']}' token inside ca init",
                              "Create it with `cryptotoken create --type ...` and give --tokenName.")

    def _token(self, caname: str, o: dict) -> CryptoToken:
        given = o.get("tokenpass")
        if given and given.lower() == "prompt":
            given = None
        elif given and given.lower() == "null":
            given = None
        if given:
            self.stderr.write("Warning: --tokenPass puts the code on the command line, where other users of this "
                              "host can read it; set PKI_TOKEN_AUTHCODE or answer the prompt instead.")
        if o.get("token"):
            token = CryptoToken.objects.filter(name=o["token"]).first()
            if token is None:
                raise CommandError(f"Crypto token '{o['token']}' does not exist")
            if given and not token.is_active:
                token_services.activate(self.actor, token, given)
            return token
        code = read_secret(
            given, env="PKI_TOKEN_AUTHCODE", prompt=f"Authentication code for the new crypto token '{caname}': ",
            missing="Give --tokenName (an existing crypto token), or the new soft token's authentication code in "
                    "PKI_TOKEN_AUTHCODE, at the prompt (on a terminal) or with --tokenPass")
        return token_services.create_token(self.actor, name=caname, token_type="SoftCryptoToken", auth_code=code,
                                           auto_activate=True)

    # --- listing -------------------------------------------------------------------------------------------------

    def handle_listcas(self, **o):
        for ca in CertificateAuthority.objects.select_related("signed_by").order_by("pk"):
            cert = ca.certificate
            expires = cert.not_valid_after_utc.date().isoformat() if cert else "-"
            issuer = ca.signed_by.name if ca.signed_by else ("self" if ca.is_root else "external")
            self.stdout.write(f"{ca.pk}\t{ca.name}\t{ca.status}\t{ca.subject_dn}\tsigned by {issuer}\texpires {expires}"
                              + ("\t(default)" if ca.is_default else ""))

    def add_info(self, p):
        p.add_argument("caname_pos", nargs="?", metavar="CANAME")
        p.add_argument("--caname")

    def handle_info(self, **o):
        ca = get_ca(self._caname(o))
        cert = ca.certificate
        lines = [f"CA name: {ca.name}", f"Id: {ca.pk}", f"Status: {ca.status}", f"Subject DN: {ca.subject_dn}"]
        if cert is not None:
            lines += [f"Issuer DN: {cert.issuer.rfc4514_string()}", f"Serial number: {format(cert.serial_number, 'X')}",
                      f"Valid from: {cert.not_valid_before_utc.isoformat()}",
                      f"Valid to: {cert.not_valid_after_utc.isoformat()}",
                      f"Signature algorithm: {ca.signature_algorithm or '-'}"]
        if ca.crypto_token_id:
            lines += [f"Crypto token: {ca.crypto_token.name}", f"Key alias: {ca.key_alias}"]
        lines += [f"CRL period: {ca.crl_period}", f"Delta CRL period: {ca.delta_crl_period}",
                  f"Default CA: {'yes' if ca.is_default else 'no'}"]
        self.stdout.write("\n".join(lines))

    def _caname(self, o: dict, required: bool = True) -> str | None:
        name = o.get("caname") or o.get("caname_pos")
        if required and not name:
            raise CommandError("--caname is required")
        return name

    # --- issue and revoke (this project's own) -------------------------------------------------------------------

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
        wanted = IssuanceRequest(
            ca=get_ca(caname), actor=self.actor, profile=get_profile(certprofile), csr=data, subject_dn=dn,
            subject_alt_name=altname, username=username, validity=validity,
        )
        gate_issue(wanted, "cli")  # may store it for approval instead (raises: exit code 3)
        issued = issue(wanted)
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
