"""A certificate decoded for display."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from cryptotokens.backends.base import key_spec_of

from ..x509.altnames import format_altnames
from ..x509.dn import format_issuer_of, format_subject_of
from ..x509.extensions import EKU_NAMES, key_usage_names


def _urls(names) -> str:
    return ", ".join(n.value for n in names or [] if isinstance(n, x509.UniformResourceIdentifier))


def extension_value(value: x509.ExtensionType) -> str:
    """A one-line reading of the extensions operators check; other extensions show no value."""
    if isinstance(value, x509.SubjectAlternativeName):
        return format_altnames(value)
    if isinstance(value, x509.KeyUsage):
        return ", ".join(key_usage_names(value))
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(EKU_NAMES.get(o.dotted_string, o.dotted_string) for o in value)
    if isinstance(value, x509.BasicConstraints):
        return f"CA: {value.ca}" + (f", path length {value.path_length}" if value.path_length is not None else "")
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest.hex(":").upper()
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier.hex(":").upper() if value.key_identifier else ""
    if isinstance(value, x509.CRLDistributionPoints | x509.FreshestCRL):
        return ", ".join(_urls(dp.full_name) for dp in value)
    if isinstance(value, x509.AuthorityInformationAccess):
        return ", ".join(f"{d.access_method._name}: {_urls([d.access_location])}" for d in value)
    return ""


def describe(cert: x509.Certificate) -> dict:
    """The fields an operator reads on a certificate page."""
    exts = []
    found: dict[type, str] = {}
    for ext in cert.extensions:
        text = extension_value(ext.value)
        found[type(ext.value)] = text
        name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
        exts.append({"name": name, "oid": ext.oid.dotted_string, "critical": ext.critical, "value": text})
    try:
        key = str(key_spec_of(cert.public_key()))
    except Exception:  # an unusual key type still gets a page
        key = "unknown"
    return {
        "subject": format_subject_of(cert), "issuer": format_issuer_of(cert),
        "serial": format(cert.serial_number, "X"), "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc, "san": found.get(x509.SubjectAlternativeName, ""),
        "key_usage": found.get(x509.KeyUsage, ""), "eku": found.get(x509.ExtendedKeyUsage, ""),
        "basic": found.get(x509.BasicConstraints), "key": key,
        "signature_algorithm": getattr(cert.signature_algorithm_oid, "_name", None)
        or cert.signature_algorithm_oid.dotted_string,
        "sha256": cert.fingerprint(hashes.SHA256()).hex().upper(),
        "sha1": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 (an identifier operators compare)
        "extensions": exts, "pem": cert.public_bytes(Encoding.PEM).decode(),
    }
