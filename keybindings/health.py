"""Key bindings' part of the installation's health (pki.services.health): registered at start-up, since the core
does not import this app. An active binding whose certificate is missing, expired, revoked or about to expire, or
whose crypto token is offline, is a problem: an OCSP binding then signs nothing (the responder falls back or
fails) and an authentication binding cannot log in."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.urls import reverse

from pki.services.health import ERROR, WARNING, Health, Problem, renewal_window

from .choices import BindingType, CertificateState
from .models import InternalKeyBinding

BINDING_EXPIRED = "binding_certificate_expired"
BINDING_EXPIRING = "binding_certificate_expiring"
BINDING_NO_CERTIFICATE = "binding_no_valid_certificate"
BINDING_TOKEN_OFFLINE = "binding_token_offline"


def _problems(binding: InternalKeyBinding, now: datetime) -> list[Problem]:
    kind = "OCSP responder" if binding.binding_type == BindingType.OCSP else "Remote authenticator"
    renew = f"Renew the binding ({kind}s → {binding.name} → Renew) or import a new certificate."
    out: list[Problem] = []
    token = binding.crypto_token
    if not token.is_active:
        out.append(Problem(BINDING_TOKEN_OFFLINE, ERROR, f"Crypto token '{token.name}' of the binding is offline.",
                           f"Activate crypto token '{token.name}'."))
    state = binding.certificate_state(now)
    cert = binding.certificate
    if state == CertificateState.EXPIRED:
        out.append(Problem(BINDING_EXPIRED, ERROR, f"The certificate expired on {cert.not_after:%Y-%m-%d} UTC.", renew))
    elif state != CertificateState.VALID:
        out.append(Problem(BINDING_NO_CERTIFICATE, ERROR,
                           f"The binding has no valid certificate ({CertificateState(state).label.lower()}).", renew))
    elif cert.not_after - now <= renewal_window(cert.not_before, cert.not_after,
                                                settings.PKI_KEYBINDING_RENEWAL_WINDOW_DAYS):
        out.append(Problem(BINDING_EXPIRING, WARNING, f"The certificate expires on {cert.not_after:%Y-%m-%d} UTC.",
                           renew))
    return out


def binding_health(now: datetime) -> list[Health]:
    """Every active key binding with its problems (two queries: the bindings with token and certificate)."""
    result = []
    for binding in InternalKeyBinding.objects.active().select_related("crypto_token", "certificate"):
        kind = "OCSP responder" if binding.binding_type == BindingType.OCSP else "remote authenticator"
        health = Health(kind, binding.name, binding.pk, url=reverse("keybinding-detail", args=[binding.pk]))
        for problem in _problems(binding, now):
            health.add(problem)
        result.append(health)
    return result
