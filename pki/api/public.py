"""Public downloads (no login): CRLs and CA certificates, at this CA's URLs and at EJBCA's certdist URL.

These are what relying parties and devices fetch over plain HTTP (the CRL distribution point and the
AIA caIssuers URL the CA writes into certificates), so they stay cheap and cacheable: caches may keep
a CRL until shortly before its nextUpdate, and a conditional GET (ETag, Last-Modified) answers 304.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.utils import timezone
from django.utils.cache import get_conditional_response, patch_cache_control, patch_response_headers
from django.utils.http import http_date
from django.views.decorators.http import require_safe

from ..crl import crl_pem, latest_crl
from ..errors import NotFoundError
from ..ids import parse_decimal
from ..models import CRL, CertificateAuthority
from ..x509.dn import common_name
from .lookups import resolve_ca

PEM_TYPE = "application/x-pem-file"
DER_CRL_TYPE = "application/pkix-crl"  # RFC 5280 4.2.1.13
DER_CERT_TYPE = "application/pkix-cert"  # RFC 2585
# A CRL may be replaced before its nextUpdate (a new revocation): caches keep it an hour at most.
MAX_CRL_CACHE_SECONDS = 3600
CA_CERT_CACHE_SECONDS = 3600
CERTDIST_USAGE = ("Use cmd=crl, deltacrl, cacert, nscacert, iecacert or cachain with issuer=<CA subject DN> "
                  "(or caid=<id>); cacert takes level=<0 for the CA, 1 for its issuer, ...>.\n")


def _text(response_class: type[HttpResponse], message: str) -> HttpResponse:
    return response_class(message if message.endswith("\n") else message + "\n", content_type="text/plain")


def _safe_filename(name: str) -> str:
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)


def _download(body: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{_safe_filename(filename)}"'
    return response


def _conditional(request: HttpRequest, response: HttpResponse, etag: str, last_modified: float,
                 max_age: int) -> HttpResponse:
    """Cache headers, then a 304 instead of the body when the client already has this version."""
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified)
    patch_response_headers(response, cache_timeout=max_age)
    patch_cache_control(response, public=True, no_transform=True)
    if max_age == 0:
        patch_cache_control(response, must_revalidate=True)
    return get_conditional_response(request, etag=etag, last_modified=int(last_modified), response=response)


def _wanted_format(request: HttpRequest) -> str | None:
    """``der`` (the default) or ``pem``; None for anything else."""
    value = request.GET.get("format", "der").strip().lower() or "der"
    return value if value in {"der", "pem"} else None


def _crl_response(request: HttpRequest, crl: CRL, pem: bool, filename: str) -> HttpResponse:
    if pem:
        response = _download(crl_pem(crl), PEM_TYPE, filename.rsplit(".", 1)[0] + ".pem")
    else:
        response = _download(bytes(crl.der), DER_CRL_TYPE, filename)
    remaining = int((crl.next_update - timezone.now()).total_seconds())
    max_age = max(0, min(remaining, MAX_CRL_CACHE_SECONDS))
    etag = f'"crl-{crl.ca_id}-{crl.crl_number}{"-pem" if pem else ""}"'
    return _conditional(request, response, etag, crl.this_update.timestamp(), max_age)


def _ca_cert_response(request: HttpRequest, cert: x509.Certificate, pem: bool, filename: str) -> HttpResponse:
    if pem:
        response = _download(cert.public_bytes(Encoding.PEM), PEM_TYPE, f"{filename}.pem")
    else:
        response = _download(cert.public_bytes(Encoding.DER), DER_CERT_TYPE, f"{filename}.crt")
    etag = f'"{cert.fingerprint(hashes.SHA256()).hex()[:32]}{"-pem" if pem else ""}"'
    return _conditional(request, response, etag, cert.not_valid_before_utc.timestamp(), CA_CERT_CACHE_SECONDS)


def _local_ca(name: str) -> CertificateAuthority | None:
    return CertificateAuthority.objects.local().filter(name=name).first()


@require_safe
def crl_download(request: HttpRequest, ca_name: str) -> HttpResponse:
    """``/crl/<ca-name>.crl``: the CA's latest full CRL in DER; ``?delta=true`` the delta CRL, ``?format=pem``."""
    wanted = _wanted_format(request)
    if wanted is None:
        return _text(HttpResponseBadRequest, "format must be der or pem.")
    ca = _local_ca(ca_name)
    if ca is None:
        return _text(HttpResponseNotFound, f"No CA named '{ca_name}'.")
    delta = request.GET.get("delta", "").strip().lower() in {"1", "true", "yes"}
    crl = latest_crl(ca, delta=delta)
    if crl is None:
        return _text(HttpResponseNotFound, f"CA '{ca.name}' has no {'delta CRL' if delta else 'CRL'} yet.")
    return _crl_response(request, crl, wanted == "pem", f"{ca.name}{'_delta' if delta else ''}.crl")


@require_safe
def ca_certificate_download(request: HttpRequest, ca_name: str) -> HttpResponse:
    """``/ca/<ca-name>.crt``: the CA certificate (the AIA caIssuers URL) in DER, or ``?format=pem``."""
    wanted = _wanted_format(request)
    if wanted is None:
        return _text(HttpResponseBadRequest, "format must be der or pem.")
    ca = CertificateAuthority.objects.filter(name=ca_name).first()
    if ca is None or ca.certificate is None:
        return _text(HttpResponseNotFound, f"No CA named '{ca_name}'.")
    return _ca_cert_response(request, ca.certificate, wanted == "pem", ca.name)


# --- EJBCA's /ejbca/publicweb/webdist/certdist ------------------------------------------------------


def _cn_filename(cert: x509.Certificate | None, fallback: str) -> str:
    try:
        return (common_name(cert.subject) if cert is not None else None) or fallback
    except (KeyError, ValueError):  # a subject attribute cryptography cannot read back
        return fallback


def _certdist_crl(request: HttpRequest, ca: CertificateAuthority, delta: bool) -> HttpResponse:
    crl = None if ca.is_external else latest_crl(ca, delta=delta)
    if crl is None:
        return _text(HttpResponseNotFound, "Error getting latest CRL.")
    filename = ("delta_" if delta else "") + _cn_filename(ca.certificate, ca.name) + ".crl"
    return _crl_response(request, crl, request.GET.get("format", "").upper() == "PEM", filename)


def _certdist_cacert(request: HttpRequest, ca: CertificateAuthority, cmd: str) -> HttpResponse:
    """``cacert`` answers PEM, ``nscacert`` and ``iecacert`` DER; without ``level`` all three send the chain
    as PKCS#7, as EJBCA does. Level 0 is the CA itself, 1 its issuer and so on."""
    chain = ca.chain()
    raw_level = request.GET.get("level")
    if raw_level is not None:
        level = parse_decimal(raw_level.removeprefix("-"))
        if level is not None and raw_level.startswith("-"):
            level = -level  # a level, but none that exists (404 below), as before ASCII digits were required
        if level is None:
            return _text(HttpResponseBadRequest, "Invalid level, should be a number.")
        if not 0 <= level < len(chain):
            return _text(HttpResponseNotFound, f"No CA certificate of level {level} exists.")
        cert = chain[level]
    else:
        level, cert = None, chain[0] if chain else None
    if cert is None:
        return _text(HttpResponseNotFound, "Error getting CA certificates.")
    filename = _cn_filename(cert, "ca")
    if level is None:
        encoding = Encoding.PEM if cmd == "cacert" else Encoding.DER
        body = pkcs7.serialize_certificates(chain, encoding)
        content_type = {"cacert": PEM_TYPE, "nscacert": "application/x-x509-ca-cert"}.get(
            cmd, "application/octet-stream")
        suffix = ".pem" if cmd == "cacert" else ".p7c"
        return _download(body, content_type, filename + suffix)
    if cmd == "cacert":
        return _download(cert.public_bytes(Encoding.PEM), PEM_TYPE, filename + ".pem")
    content_type = "application/x-x509-ca-cert" if cmd == "nscacert" else "application/octet-stream"
    return _download(cert.public_bytes(Encoding.DER), content_type, filename + ".crt")


def _certdist_ca(request: HttpRequest) -> CertificateAuthority | None:
    ref = request.GET.get("issuer") or request.GET.get("caid") or ""
    if not ref.strip():
        return None
    try:
        return resolve_ca(ref.strip())
    except NotFoundError:
        return None


@require_safe
def certdist(request: HttpRequest) -> HttpResponse:
    """EJBCA's public certificate distribution servlet: ``cmd=crl|deltacrl`` (``format=PEM`` for PEM),
    ``cmd=cacert|nscacert|iecacert`` (``level``), ``cmd=cachain``; the CA by ``issuer=<DN>`` or ``caid``."""
    cmd = request.GET.get("cmd", "").strip().lower()
    if cmd not in {"crl", "deltacrl", "cacert", "nscacert", "iecacert", "cachain"}:
        return _text(HttpResponseBadRequest, CERTDIST_USAGE)
    if not (request.GET.get("issuer") or request.GET.get("caid")):
        return _text(HttpResponseBadRequest, CERTDIST_USAGE)
    ca = _certdist_ca(request)
    if ca is None:
        return _text(HttpResponseNotFound, "No such CA.")
    if cmd in {"crl", "deltacrl"}:
        return _certdist_crl(request, ca, cmd == "deltacrl")
    if cmd == "cachain":
        if request.GET.get("format", "pem").lower() != "pem":
            return _text(HttpResponseBadRequest, "Only format=pem is offered for cachain.")
        chain = ca.chain()
        body = b"".join(cert.public_bytes(Encoding.PEM) for cert in chain)
        return _download(body, PEM_TYPE, _cn_filename(ca.certificate, ca.name) + "-chain.pem")
    return _certdist_cacert(request, ca, cmd)
