"""What a PKCS#11 slot holds: its private keys with their labels, ids, types and public keys.

Read from the slot itself, so keys made by other tools (``pkcs11-tool``, ``softhsm2-util``, another CA such as
EJBCA) are listed as well as the ones made here. A key's public half comes from the public key object with the
same CKA_ID (or, without an id, the same label), from the RSA private key's own modulus and exponent, or from a
certificate object with the same CKA_ID; a key without any of them is listed but cannot be used.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from asn1crypto.keys import ECDomainParameters
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11

from ..base import DeviceKey, key_spec_of
from .mechanisms import CURVE_OIDS, EDWARDS_OIDS, public_key_of

_CURVE_BY_OID = {oid: name for name, oid in CURVE_OIDS.items()}
_EDWARDS_BY_OID = {oid: name for name, oid in EDWARDS_OIDS.items()}
_EDWARDS_BY_NAME = {"edwards25519": "Ed25519", "edwards448": "Ed448"}


def _attribute(obj: Any, attribute: Attribute, default: Any = None) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, p11.FunctionFailed, KeyError):
        return default


def curve_of(params: bytes | None) -> tuple[str, str | None]:
    """(algorithm, curve) of CKA_EC_PARAMS: a named curve's OID, or an Edwards curve by OID or by name."""
    if not params:
        return "EC", None
    try:
        parsed = ECDomainParameters.load(params)
        if parsed.name == "named":
            oid = parsed.chosen.dotted
            if oid in _EDWARDS_BY_OID:
                return _EDWARDS_BY_OID[oid], None
            return "EC", _CURVE_BY_OID.get(oid)
    except ValueError:
        pass
    if params[:1] == b"\x13":  # PrintableString: PKCS#11 3.0 names Edwards curves this way too
        name = params[2:].decode("ascii", "replace")
        if name in _EDWARDS_BY_NAME:
            return _EDWARDS_BY_NAME[name], None
    return "EC", None


def _public_object(session: Any, cls: ObjectClass, key_id: bytes, label: str) -> Any:
    template: dict[Attribute, Any] = {Attribute.CLASS: cls}
    if key_id:
        template[Attribute.ID] = key_id
    elif label:
        template[Attribute.LABEL] = label
    else:
        return None
    found = list(session.get_objects(template))
    return found[0] if len(found) == 1 else None


def _public_key(session: Any, private: Any, algorithm: str, curve: str | None, key_id: bytes,
                label: str) -> PublicKeyTypes | None:
    public = _public_object(session, ObjectClass.PUBLIC_KEY, key_id, label)
    if public is not None:
        try:
            return public_key_of(public, algorithm, curve)
        except (p11.PKCS11Error, KeyError, ValueError):
            pass
    if algorithm == "RSA" and _attribute(private, Attribute.MODULUS):
        return public_key_of(private, "RSA")
    if key_id:
        cert = _public_object(session, ObjectClass.CERTIFICATE, key_id, "")
        der = _attribute(cert, Attribute.VALUE) if cert is not None else None
        if der:
            try:
                return x509.load_der_x509_certificate(der).public_key()
            except ValueError:
                return None
    return None


def device_keys(session: Any) -> list[DeviceKey]:
    """Every private key object of the slot, as :class:`DeviceKey` (alias = CKA_LABEL, reference = CKA_ID)."""
    keys: list[DeviceKey] = []
    # The whole list first: a module runs one object search per session at a time (the lookups below are searches).
    for private in list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
        label = _attribute(private, Attribute.LABEL, "") or ""
        key_id = bytes(_attribute(private, Attribute.ID, b"") or b"")
        key_type = _attribute(private, Attribute.KEY_TYPE)
        problem = ""
        if key_type == KeyType.RSA:
            algorithm, curve = "RSA", None
        elif key_type in (KeyType.EC, KeyType.EC_EDWARDS):
            algorithm, curve = curve_of(_attribute(private, Attribute.EC_PARAMS))
            if algorithm == "EC" and curve is None:
                problem = "its curve is not one this CA software signs with"
        else:
            keys.append(DeviceKey(alias=label, key_algorithm=str(getattr(key_type, "name", key_type)), key_spec="",
                                  reference=key_id or None, problem="its key type is not supported"))
            continue
        public = None if problem else _public_key(session, private, algorithm, curve, key_id, label)
        if public is not None:
            spec = key_spec_of(public)
            algorithm, spec_value = spec.algorithm, spec.spec_value
        else:
            spec_value = curve or algorithm
        if not label and not problem:
            problem = "it has no label (CKA_LABEL) to use as its alias"
        keys.append(DeviceKey(alias=label, key_algorithm=algorithm, key_spec=spec_value, public_key=public,
                              reference=key_id or None, problem=problem))
    counts = Counter(k.alias for k in keys if k.alias)
    return sorted(
        (DeviceKey(k.alias, k.key_algorithm, k.key_spec, k.public_key, k.reference,
                   f"{counts[k.alias]} private keys share the label '{k.alias}'")
         if counts[k.alias] > 1 and not k.problem else k for k in keys),
        key=lambda k: (k.alias, k.reference or b""),
    )
