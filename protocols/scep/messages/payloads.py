"""The decrypted payloads of SCEP requests (RFC 8894 section 3.3): the PKCS#10 request of PKCSReq and
RenewalReq, IssuerAndSubject of CertPoll (GetCertInitial), IssuerAndSerialNumber of GetCert and GetCRL."""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.name import _ASN1Type  # the string type of a name attribute; no public spelling
from cryptography.x509.oid import NameOID

from . import _cms
from .pkimessage import PkiMessage
from .types import BadAlg, BadMessageCheck, BadRequest, ScepFailure


@dataclass(frozen=True)
class IssuerAndSubject:
    """CertPoll/GetCertInitial payload: the CA's name and the subject of the pending request."""

    issuer: x509.Name
    subject: x509.Name


@dataclass(frozen=True)
class IssuerAndSerial:
    """GetCert/GetCRL payload: a certificate's issuer and serial number."""

    issuer: x509.Name
    serial_number: int


@dataclass(frozen=True)
class CsrInfo:
    """A PKCSReq/RenewalReq payload: the request, its challengePassword, and the username SCEP derives from it:
    the CN, or, when the subject has no CN, its serialNumber (Cisco IOS sends ``serialNumber=...`` only)."""

    csr: x509.CertificateSigningRequest
    der: bytes
    subject: x509.Name
    challenge_password: str | None
    username: str | None


class _IssuerAndSubjectAsn1(core.Sequence):
    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


_TAG_TO_TYPE = {
    12: _ASN1Type.UTF8String, 19: _ASN1Type.PrintableString, 20: _ASN1Type.T61String,
    22: _ASN1Type.IA5String, 28: _ASN1Type.UniversalString, 30: _ASN1Type.BMPString,
    18: _ASN1Type.NumericString, 26: _ASN1Type.VisibleString,
}


def name_from_asn1(name: asn1_x509.Name) -> x509.Name:
    """``cryptography``'s Name for an asn1crypto Name, keeping each value's string type so the Name encodes
    back to the same bytes (issuers are matched byte for byte)."""
    rdns = []
    for rdn in name.chosen:
        attrs = []
        for atv in rdn:
            value = core.Asn1Value.load(atv["value"].dump())
            if not isinstance(value, core.AbstractString):
                raise BadRequest(f"Name attribute {atv['type'].dotted} is not a string.")
            attrs.append(x509.NameAttribute(x509.ObjectIdentifier(atv["type"].dotted), value.native,
                                            _TAG_TO_TYPE.get(value.tag, _ASN1Type.UTF8String)))
        rdns.append(x509.RelativeDistinguishedName(attrs))
    return x509.Name(rdns)


def _wrap(what: str):
    """Turn any parse error of a payload into BadRequest (BadAlg for an algorithm cryptography does not know),
    attaching the request the payload came from so the failure can be answered with a CertRep."""
    def decorator(func):
        def inner(content: bytes, *, message: PkiMessage | None = None):
            try:
                return func(bytes(content))
            except ScepFailure as exc:
                exc.message = exc.message or message
                raise
            except UnsupportedAlgorithm as exc:
                raise BadAlg(f"The {what} uses an unsupported algorithm: {exc}", message) from exc
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
                    x509.InvalidVersion) as exc:
                raise BadRequest(f"The {what} in the envelope is malformed: {exc}", message) from exc
        inner.__name__, inner.__qualname__, inner.__doc__ = func.__name__, func.__qualname__, func.__doc__
        return inner
    return decorator


@_wrap("IssuerAndSubject")
def parse_issuer_and_subject(content: bytes) -> IssuerAndSubject:
    """Parse a CertPoll/GetCertInitial payload; BadRequest when malformed. Pass ``message=`` (the request) so a
    failure carries it."""
    parsed = _IssuerAndSubjectAsn1.load(content, strict=True)
    return IssuerAndSubject(issuer=name_from_asn1(parsed["issuer"]), subject=name_from_asn1(parsed["subject"]))


@_wrap("IssuerAndSerialNumber")
def parse_issuer_and_serial(content: bytes) -> IssuerAndSerial:
    """Parse a GetCert/GetCRL payload; BadRequest when malformed. Pass ``message=`` (the request) so a failure
    carries it."""
    parsed = cms.IssuerAndSerialNumber.load(content, strict=True)
    return IssuerAndSerial(issuer=name_from_asn1(parsed["issuer"]), serial_number=parsed["serial_number"].native)


def encode_issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    """DER IssuerAndSubject (the CertPoll payload)."""
    return _IssuerAndSubjectAsn1({"issuer": _cms.to_asn1_name(issuer), "subject": _cms.to_asn1_name(subject)}).dump()


def encode_issuer_and_serial(issuer: x509.Name, serial_number: int) -> bytes:
    """DER IssuerAndSerialNumber (the GetCert and GetCRL payload)."""
    return cms.IssuerAndSerialNumber({"issuer": _cms.to_asn1_name(issuer), "serial_number": serial_number}).dump()


@_wrap("PKCS#10 request")
def parse_csr(content: bytes) -> CsrInfo:
    """Parse a PKCSReq/RenewalReq payload.

    Raises BadRequest when it is not a PKCS#10 request, BadMessageCheck when the request's own signature
    (its proof of possession) does not verify, BadAlg when its algorithms are unknown. Pass ``message=`` (the
    request) so a failure carries it."""
    csr = x509.load_der_x509_csr(content)
    if not csr.is_signature_valid:
        raise BadMessageCheck("The PKCS#10 request's signature does not verify.")
    try:  # parsed lazily by cryptography: read them now, so no later use fails unexpectedly
        csr.extensions  # noqa: B018
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise BadRequest(f"The PKCS#10 request's extensions cannot be read: {exc}") from exc
    return CsrInfo(csr=csr, der=content, subject=csr.subject, challenge_password=challenge_password(content),
                   username=scep_username(csr.subject))


def challenge_password(csr_der: bytes) -> str | None:
    """The challengePassword attribute (a DirectoryString of any kind), or None."""
    request = asn1_csr.CertificationRequest.load(csr_der)
    for attr in request["certification_request_info"]["attributes"]:
        if attr["type"].dotted == "1.2.840.113549.1.9.7":
            values = attr["values"]
            if len(values) != 1:
                raise BadRequest("challengePassword must have exactly one value.")
            value = values[0]
            native = value.native if not isinstance(value, core.Any) else core.Asn1Value.load(value.dump()).native
            if not isinstance(native, str):
                raise BadRequest("challengePassword is not a string.")
            return native
    return None


def scep_username(subject: x509.Name) -> str | None:
    """The username a SCEP CA-mode request names: the subject's CN, else its serialNumber."""
    for oid in (NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER):
        values = subject.get_attributes_for_oid(oid)
        if values:
            value = values[0].value
            return value if isinstance(value, str) else value.decode()
    return None
