"""OtherName subject alternative names: encoding from EJBCA's string forms and back.

UPN, GUID (Microsoft), KRB5PrincipalName (RFC 4556), PermanentIdentifier (RFC 4043), SIM (RFC 4683),
FASC-N (FIPS 201-2), XmppAddr (RFC 6120) and SRVName (RFC 4985). Each encoder takes the value of an
EJBCA alt-name string (``permanentIdentifier=123/1.2.3.4``) and returns the DER of the OtherName value
(what goes inside ``[0] EXPLICIT``); each decoder does the reverse for certificates read back.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

from asn1crypto import core

from . import der


class OtherNameError(ValueError):
    """A value that is not of its OtherName's form."""


class SIMError(OtherNameError):
    """Subject identification method parameters that cannot be used."""


class _KerberosStrings(core.SequenceOf):
    _child_spec = core.GeneralString


class _PrincipalName(core.Sequence):
    _fields = [("name_type", core.Integer, {"explicit": 0}), ("name_string", _KerberosStrings, {"explicit": 1})]


class KRB5PrincipalName(core.Sequence):
    """RFC 4556 KRB5PrincipalName (Kerberos tags are explicit)."""

    _fields = [("realm", core.GeneralString, {"explicit": 0}), ("principal_name", _PrincipalName, {"explicit": 1})]


class PermanentIdentifier(core.Sequence):
    """RFC 4043."""

    _fields = [
        ("identifier_value", core.UTF8String, {"optional": True}),
        ("assigner", core.ObjectIdentifier, {"optional": True}),
    ]


class _AlgorithmIdentifier(core.Sequence):
    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


class SIM(core.Sequence):
    """RFC 4683 subject identification method."""

    _fields = [("hash_alg", _AlgorithmIdentifier), ("authority_random", core.OctetString),
               ("pepsi", core.OctetString)]


NT_PRINCIPAL = 1  # Kerberos name type of the principal names written here

# Hash algorithms a SIM may use, by OID.
SIM_HASHES: dict[str, str] = {
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_OID_RE = re.compile(r"^[0-2](\.\d+)+$")
_UNESCAPED_SLASH = re.compile(r"(?<!\\)/")


def _hex(value: str, what: str, max_bytes: int | None = None, exact: int | None = None) -> bytes:
    text = value.strip().replace("-", "") if what == "GUID" else value.strip()
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise OtherNameError(f"{what} '{value}' is not hex-encoded") from None
    if not data:
        raise OtherNameError(f"{what} is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise OtherNameError(f"{what} is {len(data)} bytes, at most {max_bytes} are allowed")
    if exact is not None and len(data) != exact:
        raise OtherNameError(f"{what} must be {exact} bytes ({2 * exact} hex digits), not {len(data)}")
    return data


# --- encoders ----------------------------------------------------------------------------------------------

# The encoders write DER with pki.x509.der (asn1crypto object building cost more than the rest of an end
# entity's validation); the decoders and the tests read it back with asn1crypto.

def encode_utf8(value: str) -> bytes:
    return der.tlv(0x0C, value.encode("utf-8"))


def encode_srv_name(value: str) -> bytes:
    if not value.startswith("_") or "." not in value:
        raise OtherNameError(f"SRVNAME '{value}' is not of the form _Service.Name")
    try:
        return der.tlv(0x16, value.encode("ascii"))
    except UnicodeEncodeError:
        raise OtherNameError(f"SRVNAME '{value}' must be ASCII") from None


def encode_guid(value: str) -> bytes:
    return der.tlv(0x04, _hex(value, "GUID", exact=16))


def encode_fascn(value: str) -> bytes:
    """FASC-N: hex of at most 25 bytes. The hex of the whole DER OCTET STRING (``0419...``, as in EJBCA's
    documentation example) is accepted too and written as given."""
    text = value.strip()
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise OtherNameError(f"FASCN '{value}' is not hex-encoded") from None
    if len(data) > 25 and data[0] == 0x04 and data[1] == len(data) - 2:
        return data
    return der.tlv(0x04, _hex(text, "FASCN", max_bytes=25))


def encode_krb5_principal(value: str) -> bytes:
    """``principal1/principal2@REALM`` (the realm after the last '@')."""
    principal, at, realm = value.rpartition("@")
    if not at or not principal or not realm:
        raise OtherNameError(f"KRB5PRINCIPAL '{value}' is not of the form principal1/principal2@REALM")
    names = principal.split("/")
    if any(not n for n in names):
        raise OtherNameError(f"KRB5PRINCIPAL '{value}' has an empty principal name component")
    try:
        strings = b"".join(der.tlv(0x1B, n.encode("ascii")) for n in names)  # GeneralString
        realm_der = der.tlv(0x1B, realm.encode("ascii"))
    except UnicodeEncodeError:
        raise OtherNameError(f"KRB5PRINCIPAL '{value}' must be ASCII") from None
    principal = der.sequence(der.tlv(0xA0, der.integer(NT_PRINCIPAL)) + der.tlv(0xA1, der.sequence(strings)))
    return der.sequence(der.tlv(0xA0, realm_der) + der.tlv(0xA1, principal))


def split_permanent_identifier(value: str) -> tuple[str | None, str | None]:
    """``identifierValue/assignerOID`` -> (value, assigner); ``\\/`` is a slash inside the value; either part
    may be empty."""
    parts = _UNESCAPED_SLASH.split(value)
    if len(parts) > 2:
        raise OtherNameError(f"PERMANENTIDENTIFIER '{value}': escape '/' inside the value as '\\/'")
    ident = parts[0].replace("\\/", "/") or None
    assigner = parts[1].strip() if len(parts) == 2 else None
    if assigner and not _OID_RE.match(assigner):
        raise OtherNameError(f"PERMANENTIDENTIFIER assigner '{assigner}' is not an OID")
    return ident, assigner or None


def encode_permanent_identifier(value: str) -> bytes:
    ident, assigner = split_permanent_identifier(value)
    body = b""
    if ident is not None:
        body += der.tlv(0x0C, ident.encode("utf-8"))
    if assigner is not None:
        body += der.oid(assigner)
    return der.sequence(body)


def is_sim_input(value: str) -> bool:
    """``hashOID::password::SIItype::SIIvalue`` (parameters to compute) rather than a stored SIM."""
    return value.count("::") == 3


def compute_sim(value: str, authority_random: bytes | None = None) -> str:
    """From ``hashOID::password::SIItypeOID::SIIvalue`` to the stored ``hashOID::authorityRandom::PEPSI``
    (both hex): PEPSI = H(H(password || R || DER(SIItype) || SII)) (RFC 4683 section 4.2), R random with the
    hash's length. The password never leaves this function."""
    parts = value.split("::")
    if len(parts) != 4:
        raise SIMError("SUBJECTIDENTIFICATIONMETHOD must be hashAlgorithmOID::password::SIItypeOID::SIIvalue")
    hash_oid, password, sii_type, sii = (p.strip() for p in parts)
    algorithm = SIM_HASHES.get(hash_oid)
    if algorithm is None:
        raise SIMError(f"SUBJECTIDENTIFICATIONMETHOD hash algorithm {hash_oid} is not one of "
                       f"{', '.join(SIM_HASHES)}")
    if not password or not all(32 <= ord(c) < 127 for c in password):
        raise SIMError("The SUBJECTIDENTIFICATIONMETHOD password must be printable ASCII characters")
    if not _OID_RE.match(sii_type):
        raise SIMError(f"SUBJECTIDENTIFICATIONMETHOD SII type '{sii_type}' is not an OID")
    if not sii:
        raise SIMError("SUBJECTIDENTIFICATIONMETHOD SII value is empty")
    size = hashlib.new(algorithm).digest_size
    r = authority_random if authority_random is not None else secrets.token_bytes(size)
    inner = hashlib.new(algorithm, password.encode() + r + core.ObjectIdentifier(sii_type).dump() + sii.encode())
    pepsi = hashlib.new(algorithm, inner.digest()).digest()
    return f"{hash_oid}::{r.hex()}::{pepsi.hex()}"


def verify_sim(stored: str, password: str, sii_type: str, sii: str) -> bool:
    """Whether ``stored`` was computed from these parameters (a relying party's check)."""
    hash_oid, r_hex, _ = stored.split("::")
    return compute_sim(f"{hash_oid}::{password}::{sii_type}::{sii}", bytes.fromhex(r_hex)) == stored


def encode_sim(value: str) -> bytes:
    """The stored form ``hashOID::authorityRandom::PEPSI`` as the RFC 4683 SIM SEQUENCE."""
    parts = value.split("::")
    if len(parts) != 3:
        raise SIMError("A stored SUBJECTIDENTIFICATIONMETHOD is hashAlgorithmOID::authorityRandom::PEPSI (hex)")
    hash_oid, r_hex, pepsi_hex = parts
    if hash_oid not in SIM_HASHES:
        raise SIMError(f"SUBJECTIDENTIFICATIONMETHOD hash algorithm {hash_oid} is not supported")
    try:
        r, pepsi = bytes.fromhex(r_hex), bytes.fromhex(pepsi_hex)
    except ValueError:
        raise SIMError("SUBJECTIDENTIFICATIONMETHOD authority random and PEPSI must be hex") from None
    return SIM({"hash_alg": {"algorithm": hash_oid}, "authority_random": r, "pepsi": pepsi}).dump()


# --- decoders (certificate -> string) ----------------------------------------------------------------------

def decode_string(der: bytes) -> str:
    return str(core.load(der).native)


def decode_octets(der: bytes) -> str:
    return core.OctetString.load(der).native.hex()


def decode_krb5_principal(der: bytes) -> str:
    p = KRB5PrincipalName.load(der)
    return "/".join(p["principal_name"]["name_string"].native) + "@" + p["realm"].native


def decode_permanent_identifier(der: bytes) -> str:
    p = PermanentIdentifier.load(der)
    ident = (p["identifier_value"].native or "").replace("/", "\\/")
    assigner = p["assigner"].native if p["assigner"].native is not None else ""
    return f"{ident}/{assigner}" if assigner else ident


def decode_sim(der: bytes) -> str:
    s = SIM.load(der)
    return f"{s['hash_alg']['algorithm'].dotted}::{s['authority_random'].native.hex()}::{s['pepsi'].native.hex()}"


# Alt-name key -> (encoder, decoder); the type-id OIDs are in pki.x509.fields.ALT_NAME_FIELDS.
CODECS: dict[str, tuple[Callable[[str], bytes], Callable[[bytes], str]]] = {
    "UPN": (encode_utf8, decode_string),
    "GUID": (encode_guid, decode_octets),
    "KRB5PRINCIPAL": (encode_krb5_principal, decode_krb5_principal),
    "PERMANENTIDENTIFIER": (encode_permanent_identifier, decode_permanent_identifier),
    "SUBJECTIDENTIFICATIONMETHOD": (encode_sim, decode_sim),
    "FASCN": (encode_fascn, decode_octets),
    "XMPPADDR": (encode_utf8, decode_string),
    "SRVNAME": (encode_srv_name, decode_string),
}
