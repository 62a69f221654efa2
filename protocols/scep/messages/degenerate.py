"""Degenerate certificates-only CMS SignedData (RFC 8894 section 3.4): no signers, no content, only
certificates and CRLs. It is the GetCACert chain reply, the inner content of a successful CertRep and, signed,
the GetNextCACert reply."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asn1crypto import cms
from cryptography import x509

from . import _cms
from .types import ScepError, ScepMessageError


def degenerate_certs_only(certs: Sequence[x509.Certificate],
                          crls: Iterable[x509.CertificateRevocationList] = ()) -> bytes:
    """DER ContentInfo(SignedData) with ``certs`` and ``crls`` and nothing else (signerInfos empty)."""
    return _cms.degenerate_signed_data(certs, crls)


def parse_degenerate(data: bytes) -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    """The certificates and CRLs of a (degenerate or not) SignedData; ScepMessageError when malformed."""
    try:
        info = cms.ContentInfo.load(bytes(data), strict=True)
        if info["content_type"].native != "signed_data":
            raise ScepMessageError("Not a CMS SignedData.")
        sd = info["content"]
        return _cms.load_certificates(sd["certificates"]), _cms.load_crls(sd["crls"])
    except ScepError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise ScepMessageError(f"Malformed certificates-only SignedData: {exc}") from exc


def build_signed_certs(certs: Sequence[x509.Certificate], signer_cert: x509.Certificate, signer_key, *,
                       digest: str = "sha256") -> bytes:
    """GetNextCACert reply (RFC 8894 section 4.7.1): a SignedData signed by the current CA (or RA) whose
    content is the degenerate certificates-only SignedData of the next CA certificate(s)."""
    return _cms.signed_data(content=degenerate_certs_only(certs), digest_name=digest, signer_cert=signer_cert,
                            signer_key=signer_key, attributes=(), certificates=(signer_cert,))
