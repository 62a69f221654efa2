"""What no certificate row or end entity can hold is refused in the shared layers, before the database: a NUL in
a DN or alt name, a DN over the columns' 2048 characters, a DN value over its field's length (pki.x509, pure),
and a CSR whose extensions cannot be read (duplicate or x400Address alt names: the issuance pipeline), so every
interface (REST, RA portal, SCEP, CLI) answers them as a validation error and not as a database error."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from pki.errors import ValidationError
from pki.issuance import IssuanceRequest, issue, load_csr
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.x509.altnames import AltNameError, parse_altnames
from pki.x509.der import sequence, tlv
from pki.x509.dn import MAX_DN_LENGTH, DNError, checked_dn, parse_dn


def _oid(dotted: str) -> bytes:
    from asn1crypto import core

    return core.ObjectIdentifier(dotted).dump()


@pytest.mark.parametrize("dn, error", [
    ("CN=a\x00b,O=Org", "NUL"),
    ("CN=ok,O=" + "o" * 60 + ",OU=" + ",OU=".join(["u" * 60] * 34), f"longer than {MAX_DN_LENGTH}"),
    ("CN=" + "c" * 65, "longer than 64"),
    ("CN=fine,O=Org", None),
])
def test_parse_dn_limits(dn, error):
    if error is None:
        assert checked_dn(parse_dn(dn)) == dn
        return
    with pytest.raises(DNError, match=error):
        parse_dn(dn)


def _unchecked(*attrs: tuple) -> x509.Name:
    """A Name as a CSR may carry it: cryptography reads such values without the builders' checks."""
    out = []
    for oid, value in attrs:
        attr = x509.NameAttribute.__new__(x509.NameAttribute)
        attr._oid, attr._value, attr._type = oid, value, x509.name._ASN1Type.UTF8String
        out.append(x509.RelativeDistinguishedName([attr]))
    return x509.Name(out)


@pytest.mark.parametrize("name, error", [
    (_unchecked((NameOID.COMMON_NAME, "victim\x00admin")), "NUL"),
    (_unchecked((NameOID.COMMON_NAME, "v" * 300)), "longer than 64"),
    (_unchecked(*[(NameOID.ORGANIZATIONAL_UNIT_NAME, "u" * 60)] * 40), f"longer than {MAX_DN_LENGTH}"),
    (_unchecked((x509.ObjectIdentifier("1.2.3.4"), "x\x00")), "NUL"),  # not in the field table
    (_unchecked((NameOID.COMMON_NAME, "c" * 64)), None),
])
def test_checked_dn_of_a_request_subject(name, error):
    if error is None:
        assert checked_dn(name).startswith("CN=")
        return
    with pytest.raises(DNError, match=error):
        checked_dn(name)


@pytest.mark.parametrize("text, ok", [
    ("dNSName=a.example\x00.evil.example", False),
    ("rfc822Name=a\x00@example.com", False),
    ("dNSName=a.example", True),
])
def test_alt_names_refuse_nul(text, ok):
    if ok:
        assert parse_altnames(text)
    else:
        with pytest.raises(AltNameError, match="NUL"):
            parse_altnames(text)


def _csr_with_extensions(key, extensions: list[tuple[str, bytes]]) -> bytes:
    """A DER PKCS#10 request with these (OID, DER value) extensions, duplicates included."""
    name = sequence(tlv(0x31, sequence(_oid("2.5.4.3") + tlv(0x0C, b"ext"))))
    exts = b"".join(sequence(_oid(oid) + tlv(0x04, value)) for oid, value in extensions)
    attr = sequence(_oid("1.2.840.113549.1.9.14") + tlv(0x31, sequence(exts)))
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    info = sequence(b"\x02\x01\x00" + name + spki + tlv(0xA0, attr))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    alg = sequence(_oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    return sequence(info + alg + tlv(0x03, b"\x00" + signature))


_DNS = ("2.5.29.17", sequence(tlv(0x82, b"a.example")))
_X400 = ("2.5.29.17", sequence(tlv(0xA3, sequence(b""))))


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


@pytest.mark.parametrize("extensions, error", [
    ([_DNS, _DNS], "Duplicate"),
    ([_X400], "x400Address"),
])
def test_load_csr_refuses_unreadable_extensions(rsa_key, extensions, error):
    with pytest.raises(ValidationError, match=error):
        load_csr(_csr_with_extensions(rsa_key, extensions))


@pytest.mark.django_db
def test_issue_refuses_them_before_storing(rsa_root_ca, actor, rsa_key):
    before = Certificate.objects.count()
    with pytest.raises(ValidationError, match="Duplicate"):
        issue(IssuanceRequest(ca=rsa_root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                              csr=_csr_with_extensions(rsa_key, [_DNS, _DNS]), username="dup"))
    with pytest.raises(ValidationError, match="NUL"):
        issue(IssuanceRequest(ca=rsa_root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                              public_key=rsa_key.public_key(), subject_dn="CN=a\x00b", username="nul"))
    assert Certificate.objects.count() == before
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").count() == 2
