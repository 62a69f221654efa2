"""Trusted OAuth providers: validating, saving (with discovery), removing. Rule:
``/system_functionality/edit_systemconfiguration``; every change is audited; the client secret is
encrypted at rest and never returned, logged or audited.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction

from .. import audit
from ..auth.access import Actor
from ..auth.oauth import providers_changed
from ..choices import MemberMatch
from ..errors import ConflictError, NotFoundError, ValidationError
from ..ids import parse_db_id
from ..models import RoleMember, TrustedOAuthProvider
from ..models.oauth import SUPPORTED_ALGORITHMS, OAuthProviderType, UserClaim

RULE = "/system_functionality/edit_systemconfiguration"

# Fields callers may set (the client secret goes separately, so it is never part of a values dict).
FIELDS = ("provider_type", "label", "issuer", "discovery_url", "authorization_endpoint", "token_endpoint",
          "userinfo_endpoint", "jwks_uri", "end_session_endpoint", "client_id", "realm", "audience",
          "skip_audience_check", "scopes", "user_claim", "allowed_algorithms", "clock_skew")
URL_FIELDS = ("issuer", "discovery_url", "authorization_endpoint", "token_endpoint", "userinfo_endpoint",
              "jwks_uri", "end_session_endpoint")
# What the discovery document (OpenID Connect Discovery 1.0) fills in when left blank.
DISCOVERED = {"authorization_endpoint": "authorization_endpoint", "token_endpoint": "token_endpoint",
              "userinfo_endpoint": "userinfo_endpoint", "jwks_uri": "jwks_uri",
              "end_session_endpoint": "end_session_endpoint"}

SKIP_AUDIENCE_WARNING = (
    "Without an audience check this provider's tokens are accepted whatever application they were issued "
    "for: any other application that signs in users through the same identity provider receives tokens it "
    "could present here, and so could act as those users in this CA. Turn it on only for providers that do "
    "not set the aud claim (Ping Identity, for instance)."
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(name: str, value: str) -> str:
    value = (value or "").strip()
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError(f"{name} must be an https:// URL.", field=name)
    # Plain http only to this machine (a provider on the same host, the test suite): elsewhere tokens,
    # codes and keys would cross the network unprotected.
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValidationError(f"{name} must use https (http is accepted only for localhost).", field=name)
    return value


def validate_values(values: dict[str, Any]) -> dict[str, Any]:
    """Normalized field values, or ValidationError naming the field."""
    out = {k: values[k] for k in FIELDS if k in values}
    for name in ("label", "client_id", "realm", "audience", "scopes"):
        if name in out:
            out[name] = str(out[name] or "").strip()
    if not out.get("label"):
        raise ValidationError("A label is required (it is shown on the login button).", field="label")
    if out.get("provider_type", OAuthProviderType.GENERIC) not in OAuthProviderType.values:
        raise ValidationError(f"Unknown provider type {out.get('provider_type')!r}.", field="provider_type")
    for name in URL_FIELDS:
        if name in out:
            out[name] = _check_url(name, out[name])
    if not out.get("issuer"):
        raise ValidationError("The issuer URL is required: it must equal the iss claim of the tokens.",
                              field="issuer")
    kind = out.get("provider_type", OAuthProviderType.GENERIC)
    realm = out.get("realm", "")
    if kind == OAuthProviderType.KEYCLOAK:
        if not realm:
            raise ValidationError("A Keycloak provider needs its realm.", field="realm")
        if not out["issuer"].rstrip("/").endswith(f"/realms/{realm}"):
            raise ValidationError(f"A Keycloak issuer ends with /realms/{realm}.", field="issuer")
    if kind == OAuthProviderType.AZURE:
        if not realm:
            raise ValidationError("An Azure provider needs its tenant (directory) ID.", field="realm")
        if f"/{realm}/" not in out["issuer"] + "/":
            raise ValidationError("The Azure issuer must contain the tenant ID.", field="issuer")
    out["skip_audience_check"] = bool(out.get("skip_audience_check", False))
    if not out["skip_audience_check"] and not out.get("audience"):
        raise ValidationError("Set the audience this CA expects in the aud claim, or explicitly skip the "
                              "audience check.", field="audience")
    if out.get("user_claim", UserClaim.SUB) not in UserClaim.values:
        raise ValidationError(f"The user claim must be one of {', '.join(UserClaim.values)}.", field="user_claim")
    if "allowed_algorithms" in out:
        algs = out["allowed_algorithms"]
        if isinstance(algs, str):
            algs = [a for a in algs.replace(",", " ").split() if a]
        bad = [a for a in algs if a not in SUPPORTED_ALGORITHMS]
        if bad or not algs:
            raise ValidationError(f"Allowed algorithms must be some of {', '.join(SUPPORTED_ALGORITHMS)} "
                                  f"(never none or HS*); refused: {', '.join(bad) or 'empty list'}.",
                                  field="allowed_algorithms")
        out["allowed_algorithms"] = list(dict.fromkeys(algs))
    if "clock_skew" in out:
        try:
            out["clock_skew"] = int(out["clock_skew"])
        except (TypeError, ValueError):
            raise ValidationError("The clock skew is a number of seconds.", field="clock_skew") from None
        if not 0 <= out["clock_skew"] <= 3600:
            raise ValidationError("The clock skew must be between 0 and 3600 seconds.", field="clock_skew")
    if out.get("scopes") is not None and "openid" not in out.get("scopes", "openid").split():
        raise ValidationError("The scopes must include openid.", field="scopes")
    return out


def discover(discovery_url: str, issuer: str) -> dict[str, str]:
    """Read the provider's discovery document; its issuer must be exactly the configured one."""
    try:
        response = requests.get(discovery_url, timeout=getattr(settings, "PKI_OAUTH_HTTP_TIMEOUT", 5),
                                headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ValidationError(f"Could not read the discovery document ({exc.__class__.__name__}).",
                              field="discovery_url") from None
    if not isinstance(document, dict):
        raise ValidationError("The discovery document is not a JSON object.", field="discovery_url")
    if document.get("issuer") != issuer:
        raise ValidationError(f"The discovery document names issuer {str(document.get('issuer'))[:200]!r}, "
                              f"not {issuer!r}.", field="issuer")
    found = {}
    for field_name, key in DISCOVERED.items():
        value = document.get(key)
        if isinstance(value, str) and value:
            found[field_name] = _check_url(field_name, value)
    return found


def _fill_from_discovery(values: dict[str, Any]) -> None:
    # Without keys nothing verifies: a provider whose JWKS URI is not given is discovered.
    if not values.get("discovery_url") and not values.get("jwks_uri"):
        values["discovery_url"] = values["issuer"].rstrip("/") + "/.well-known/openid-configuration"
    if values.get("discovery_url"):
        for name, value in discover(values["discovery_url"], values["issuer"]).items():
            if not values.get(name):  # explicit endpoints win over discovered ones
                values[name] = value
    if not values.get("jwks_uri"):
        raise ValidationError("The provider's JWKS endpoint is needed to verify its tokens (give it, or a "
                              "discovery URL).", field="jwks_uri")


def _audit_details(provider: TrustedOAuthProvider, changed: list[str]) -> dict[str, Any]:
    return {"label": provider.label, "issuer": provider.issuer, "type": provider.provider_type,
            "audience": provider.audience, "skip_audience_check": provider.skip_audience_check,
            "changed": changed}


def save_provider(actor: Actor, values: dict[str, Any], provider: TrustedOAuthProvider | None = None,
                  client_secret: str | None = None) -> TrustedOAuthProvider:
    """Create (``provider`` None) or edit a provider. ``client_secret`` None keeps the stored one, "" clears it.

    ``values`` may be partial on edit (the CLI's ``edit``); blank endpoints are filled from discovery.
    """
    actor.require(RULE)
    current = {k: getattr(provider, k) for k in FIELDS} if provider is not None else {}
    values = validate_values({**current, **values})
    _fill_from_discovery(values)
    try:
        with transaction.atomic():
            if provider is None:
                row = TrustedOAuthProvider(**values)
                old_label, old_secret = None, None
            else:
                row = TrustedOAuthProvider.objects.select_for_update().get(pk=provider.pk)
                old_label = row.label
                old_secret = row.get_client_secret() if row.client_secret else ""
                for k, v in values.items():
                    setattr(row, k, v)
            # The secret is bound to the issuer: re-encrypt when the issuer changes.
            secret = client_secret if client_secret is not None else old_secret
            row.set_client_secret(secret or "")
            row.save()
            changed = sorted(k for k in values if current.get(k) != values[k]) if provider is not None else []
            if client_secret is not None and provider is not None:
                changed.append("client_secret")
            if old_label is not None and old_label != row.label:
                # Role members name the provider by label: keep them pointing at it.
                RoleMember.objects.filter(match_type=MemberMatch.OAUTH_CLAIM, provider=old_label).update(
                    provider=row.label)
            audit.record("OAUTH_PROVIDER_ADDED" if provider is None else "OAUTH_PROVIDER_EDITED", actor.name,
                         object_type="oauth_provider", object_id=row.pk, details=_audit_details(row, changed),
                         in_transaction=True)
            transaction.on_commit(providers_changed)
    except IntegrityError:
        taken = "label" if TrustedOAuthProvider.objects.filter(label=values["label"]).exclude(
            pk=getattr(provider, "pk", None)).exists() else "issuer"
        raise ConflictError(f"Another trusted OAuth provider has this {taken}.", field=taken) from None
    return row


def delete_provider(actor: Actor, provider: TrustedOAuthProvider) -> None:
    """Remove a provider: its tokens and logins stop being accepted (sessions lose their roles)."""
    actor.require(RULE)
    with transaction.atomic():
        row = TrustedOAuthProvider.objects.select_for_update().filter(pk=provider.pk).first()
        if row is None:
            raise NotFoundError(f"Trusted OAuth provider {provider.pk} does not exist.")
        audit.record("OAUTH_PROVIDER_REMOVED", actor.name, object_type="oauth_provider", object_id=row.pk,
                     details=_audit_details(row, []), in_transaction=True)
        row.delete()
        transaction.on_commit(providers_changed)


def list_providers(actor: Actor):
    actor.require(RULE)
    return TrustedOAuthProvider.objects.all()


def get_provider(actor: Actor, key: str | int) -> TrustedOAuthProvider:
    """A provider by id or label."""
    actor.require(RULE)
    row = None
    pk = parse_db_id(key)
    if pk is not None:
        row = TrustedOAuthProvider.objects.filter(pk=pk).first()
    if row is None:
        row = TrustedOAuthProvider.objects.filter(label=str(key)).first()
    if row is None:
        raise NotFoundError(f"Trusted OAuth provider '{key}' does not exist.")
    return row
