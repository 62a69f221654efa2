"""Public downloads (no login): CRLs and CA certificates, at our URLs and at EJBCA's certdist URLs.

These are what relying parties and devices fetch over plain HTTP (the CRL distribution point and the
AIA caIssuers URL put into certificates), so they must stay cheap and cacheable.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotFound
from django.utils import timezone
from django.utils.http import http_date
from django.views.decorators.http import require_safe

from ..choices import CAStatus
from ..crl import crl_pem, latest_crl
from ..errors import NotFoundError
from ..models import CertificateAuthority
from ..services.cas import get_ca

PEM_TYPE = "application/x-pem-file"


def _wants_pem(request: HttpRequest) -> bool:
    return request.GET.get("format", "").lower() == "pem"


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "").lower() in {"1", "true", "yes"}


def _ca_or_404(ref: str) -> CertificateAuthority | None:
    try:
        return get_ca(ref)
    except NotFoundError:
        return None


def _crl_response(request: HttpRequest, ca: CertificateAuthority, delta: bool) -> HttpResponse:
    crl = latest_crl(ca, delta=delta)
    if crl is None:
        kind = "delta CRL" if delta else "CRL"
        return HttpResponseNotFound(f"CA '{ca.name}' has no {kind} yet.\n", content_type="text/plain")
    if _wants_pem(request):
        response = HttpResponse(crl_pem(crl), content_type=PEM_TYPE)
        suffix = ".pem"
    else:
        response = HttpResponse(bytes(crl.der), content_type="application/pkix-crl")
        suffix = ".crl"
    name = f"{ca.name}{'_delta' if delta else ''}{suffix}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    # Caches may keep it until the next update; after that a fresh one is expected.
    remaining = max(0, int((crl.next_update - timezone.now()).total_seconds()))
    response["Cache-Control"] = f"public, max-age={min(remaining, 3600)}"
    response["Expires"] = http_date(crl.next_update.timestamp())
    response["Last-Modified"] = http_date(crl.this_update.timestamp())
    return response


def _cacert_response(request: HttpRequest, ca: CertificateAuthority, level: int = 0) -> HttpResponse:
    chain = ca.chain()
    if not chain or level >= len(chain):
        return HttpResponseNotFound("No such CA certificate.\n", content_type="text/plain")
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = chain[level]
    if _wants_pem(request):
        response = HttpResponse(cert.public_bytes(Encoding.PEM), content_type=PEM_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{ca.name}.pem"'
    else:
        response = HttpResponse(cert.public_bytes(Encoding.DER), content_type="application/pkix-cert")
        response["Content-Disposition"] = f'attachment; filename="{ca.name}.crt"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_safe
def crl_download(request: HttpRequest, ca_name: str) -> HttpResponse:
    """``/crl/<ca-name>.crl``: the latest full CRL (``?delta=true`` for the delta, ``?format=pem``)."""
    ca = CertificateAuthority.objects.filter(name=ca_name).exclude(status=CAStatus.EXTERNAL).first()
    if ca is None:
        return HttpResponseNotFound(f"No CA named '{ca_name}'.\n", content_type="text/plain")
    return _crl_response(request, ca, _flag(request, "delta"))


@require_safe
def ca_certificate_download(request: HttpRequest, ca_name: str) -> HttpResponse:
    """``/ca/<ca-name>.crt``: the CA certificate (the AIA caIssuers URL), DER or ``?format=pem``."""
    ca = CertificateAuthority.objects.filter(name=ca_name).first()
    if ca is None or ca.certificate is None:
        return HttpResponseNotFound(f"No CA named '{ca_name}'.\n", content_type="text/plain")
    return _cacert_response(request, ca)


@require_safe
def certdist(request: HttpRequest) -> HttpResponse:
    """EJBCA's ``/ejbca/publicweb/webdist/certdist``: ``cmd=crl|deltacrl|cacert`` with ``issuer=<DN>``
    (``caid`` or the CA name also work), ``level`` for cacert and ``format=PEM``."""
    cmd = request.GET.get("cmd", "").lower()
    ref = request.GET.get("issuer") or request.GET.get("caid") or request.GET.get("ca")
    if cmd not in {"crl", "deltacrl", "cacert", "nscacert", "iecacert"} or not ref:
        return HttpResponseBadRequest("Use cmd=crl, deltacrl or cacert with issuer=<CA subject DN>.\n",
                                      content_type="text/plain")
    ca = _ca_or_404(ref)
    if ca is None:
        return HttpResponseNotFound("No such CA.\n", content_type="text/plain")
    if cmd in {"crl", "deltacrl"}:
        if ca.is_external:
            return HttpResponseNotFound("External CAs publish no CRLs here.\n", content_type="text/plain")
        return _crl_response(request, ca, cmd == "deltacrl")
    try:
        level = int(request.GET.get("level", "0"))
    except ValueError:
        return HttpResponseBadRequest("level must be a number.\n", content_type="text/plain")
    return _cacert_response(request, ca, max(level, 0))
