"""A certificate decoded for display."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from cryptotokens.backends.base import key_spec_of

from ..x509.altnames import format_altnames
from ..x509.dn import format_dn
from ..x509.extensions import EKU_NAMES, key_usage_names


def describe(cert: x509.Certificate) -> dict:
    """The fields an operator reads on a certificate page."""
    exts = []
    san = ku = eku = ""
    basic = None
    for ext in cert.extensions:
        value = ext.value
        if isinstance(value, x509.SubjectAlternativeName):
            san = format_altnames(value)
        elif isinstance(value, x509.KeyUsage):
            ku = ", ".join(key_usage_names(value))
        elif isinstance(value, x509.ExtendedKeyUsage):
            eku = ", ".join(EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in value)
        elif isinstance(value, x509.BasicConstraints):
            basic = f"CA: {value.ca}" + (f", path length {value.path_length}" if value.path_length is not None else "")
        name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
        exts.append({"name": name, "oid": ext.oid.dotted_string, "critical": ext.critical})
    try:
        key = str(key_spec_of(cert.public_key()))
    except Exception:  # an unusual key type still gets a page
        key = "unknown"
    return {
        "subject": format_dn(cert.subject), "issuer": format_dn(cert.issuer),
        "serial": format(cert.serial_number, "X"), "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc, "san": san, "key_usage": ku, "eku": eku, "basic": basic,
        "key": key, "signature_algorithm": cert.signature_algorithm_oid._name,
        "sha256": cert.fingerprint(hashes.SHA256()).hex().upper(),
        "sha1": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 (an identifier operators compare)
        "extensions": exts, "pem": cert.public_bytes(Encoding.PEM).decode(),
    }
