"""Extension building blocks: key usage and extended key usage names, custom extension encoding."""

from __future__ import annotations

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

KEY_USAGES = (
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
    "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly",
)
_KU_ARGS = {
    "digitalSignature": "digital_signature", "nonRepudiation": "content_commitment",
    "keyEncipherment": "key_encipherment", "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement", "keyCertSign": "key_cert_sign", "cRLSign": "crl_sign",
    "encipherOnly": "encipher_only", "decipherOnly": "decipher_only",
}

# The common extended key usages, by the names operators know.
EXTENDED_KEY_USAGES: dict[str, str] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING.dotted_string,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION.dotted_string,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING.dotted_string,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string,
    "ipsecIKE": "1.3.6.1.5.5.7.3.17",
    "smartcardLogon": ExtendedKeyUsageOID.SMARTCARD_LOGON.dotted_string,
    "kerberosPKINITKDC": ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC.dotted_string,
    "anyExtendedKeyUsage": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string,
    "documentSigning": "1.3.6.1.4.1.311.10.3.12",
    "msEFS": "1.3.6.1.4.1.311.10.3.4",
    "scepRA": "1.3.6.1.5.5.7.3.28",
}
EKU_NAMES = {oid: name for name, oid in EXTENDED_KEY_USAGES.items()}

CUSTOM_ENCODINGS = ("UTF8String", "PrintableString", "IA5String", "INTEGER", "BOOLEAN", "OCTETSTRING", "RAW")


def key_usage(names: list[str]) -> x509.KeyUsage:
    unknown = set(names) - set(KEY_USAGES)
    if unknown:
        raise ValueError(f"Unknown key usage {', '.join(sorted(unknown))}")
    args = {arg: (name in names) for name, arg in _KU_ARGS.items()}
    if not args["key_agreement"]:
        args["encipher_only"] = args["decipher_only"] = False
    return x509.KeyUsage(**args)


def key_usage_names(ku: x509.KeyUsage) -> list[str]:
    out = []
    for name, arg in _KU_ARGS.items():
        try:
            if getattr(ku, arg):
                out.append(name)
        except ValueError:  # encipher_only/decipher_only without keyAgreement
            continue
    return out


def eku_oid(value: str) -> str:
    """An EKU given by name or dotted OID, as a dotted OID."""
    if value in EXTENDED_KEY_USAGES:
        return EXTENDED_KEY_USAGES[value]
    ObjectIdentifier(value)  # validates
    return value


def encode_custom_value(encoding: str, value: str) -> bytes:
    """DER of a custom extension's value in the chosen encoding (RAW takes hex DER as is)."""
    if encoding == "UTF8String":
        return core.UTF8String(value).dump()
    if encoding == "PrintableString":
        return core.PrintableString(value).dump()
    if encoding == "IA5String":
        return core.IA5String(value).dump()
    if encoding == "INTEGER":
        return core.Integer(int(value, 0)).dump()
    if encoding == "BOOLEAN":
        return core.Boolean(value.strip().lower() in {"true", "1", "yes"}).dump()
    if encoding == "OCTETSTRING":
        return core.OctetString(bytes.fromhex(value)).dump()
    if encoding == "RAW":
        raw = bytes.fromhex(value)
        core.load(raw)  # must be one valid DER value
        return raw
    raise ValueError(f"Unknown custom extension encoding {encoding}")
