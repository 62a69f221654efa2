"""Trusted OAuth providers: validating, saving (with discovery), removing. Rule:
``/system_functionality/edit_systemconfiguration``; every change is audited; the client secret is
encrypted at rest and never returned, logged or audited.

A provider is as powerful as the roles that have members on it: whoever can repoint its keys, issuer or
claim handling can log in as those members. So changing a trust-relevant field (:data:`TRUST_FIELDS`) of a
provider with role members, or removing such a provider, also needs what editing each of those roles needs
(the roles service's covers check: every rule of the role, which ``/`` covers). Members belong to a
provider by id; removing the provider removes them in the same transaction.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction

from .. import audit
from ..auth.access import Actor
from ..auth.oauth import providers_changed
from ..errors import AuthorizationDenied, ConflictError, NotFoundError, ValidationError
from ..ids import parse_db_id
from ..models import RoleMember, TrustedOAuthProvider
from ..models.oauth import MAX_TOKEN_LIFETIME_LIMIT, SUPPORTED_ALGORITHMS, OAuthProviderType, UserClaim
from .roles import _KeepSuperadmin, _require_covers  # the roles service's guards: one covers check, not two

logger = logging.getLogger("pki.services.oauth")

RULE = "/system_functionality/edit_systemconfiguration"

# Fields callers may set (the client secret goes separately, so it is never part of a values dict).
FIELDS = ("provider_type", "label", "issuer", "discovery_url", "authorization_endpoint", "token_endpoint",
          "userinfo_endpoint", "jwks_uri", "end_session_endpoint", "client_id", "realm", "audience",
          "skip_audience_check", "scopes", "user_claim", "allowed_algorithms", "clock_skew", "max_token_lifetime")
# Fields that decide whose tokens and claims are believed: the keys (issuer, JWKS, discovery), where the
# login flow sends the client secret and reads claims (token, userinfo, authorization endpoints), which
# audience/client the tokens must be for, how the user is named, and the algorithm and time checks.
# Changing one of them can make someone else a member of the provider's roles.
TRUST_FIELDS = ("issuer", "discovery_url", "jwks_uri", "authorization_endpoint", "token_endpoint",
                "userinfo_endpoint", "client_id", "audience", "skip_audience_check", "user_claim",
                "allowed_algorithms", "clock_skew", "max_token_lifetime")
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
    if "max_token_lifetime" in out:
        try:
            out["max_token_lifetime"] = int(out["max_token_lifetime"])
        except (TypeError, ValueError):
            raise ValidationError("The maximum token lifetime is a number of seconds.",
                                  field="max_token_lifetime") from None
        if not 0 <= out["max_token_lifetime"] <= MAX_TOKEN_LIFETIME_LIMIT:
            raise ValidationError(f"The maximum token lifetime must be between 0 (no limit) and "
                                  f"{MAX_TOKEN_LIFETIME_LIMIT} seconds.", field="max_token_lifetime")
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


def _members_of(provider: TrustedOAuthProvider):
    return RoleMember.objects.filter(provider=provider).select_related("role").order_by("role__name", "pk")


def _trust_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(old.get(k) != new[k] for k in TRUST_FIELDS if k in new)


def _require_roles_covered(actor: Actor, provider: TrustedOAuthProvider, what: str) -> None:
    """Refuse unless ``actor`` may edit every role that has members on ``provider`` (the roles service's
    covers check, which also locks the role rows for the rest of the transaction)."""
    roles = {m.role_id: m.role for m in _members_of(provider)}
    for role in sorted(roles.values(), key=lambda r: r.name):
        try:
            _require_covers(actor, role)
        except AuthorizationDenied as exc:
            logger.warning("%s %s of trusted OAuth provider %s refused: role %r has members on it and %s "
                           "lacks %s", actor.name, what, provider.pk, role.name, actor.name, exc.resource)
            raise


def save_provider(actor: Actor, values: dict[str, Any], provider: TrustedOAuthProvider | None = None,
                  client_secret: str | None = None) -> TrustedOAuthProvider:
    """Create (``provider`` None) or edit a provider. ``client_secret`` None keeps the stored one, "" clears it.

    ``values`` may be partial on edit (the CLI's ``edit``); blank endpoints are filled from discovery.
    Changing a :data:`TRUST_FIELDS` field of a provider with role members also needs the rights to edit
    each of those roles. The audit event names the changed fields with their old and new values (the
    client secret only by name).
    """
    actor.require(RULE)
    current = {k: getattr(provider, k) for k in FIELDS} if provider is not None else {}
    values = validate_values({**current, **values})
    if provider is not None and _trust_changed(current, values):
        # Before discovery: a refused caller must not make this server fetch URLs of its choosing. Checked
        # again in the transaction below, on the locked row.
        with transaction.atomic():
            _require_roles_covered(actor, provider, "edit")
    _fill_from_discovery(values)
    try:
        with transaction.atomic():
            if provider is None:
                row = TrustedOAuthProvider(**values)
                old, old_secret = {}, None
            else:
                row = TrustedOAuthProvider.objects.select_for_update().get(pk=provider.pk)
                old = {k: getattr(row, k) for k in FIELDS}
                old_secret = row.get_client_secret() if row.client_secret else ""
                if _trust_changed(old, values):
                    _require_roles_covered(actor, row, "edit")
                for k, v in values.items():
                    setattr(row, k, v)
            # The secret is bound to the issuer: re-encrypt when the issuer changes.
            secret = client_secret if client_secret is not None else old_secret
            row.set_client_secret(secret or "")
            row.save()
            details = _audit_details(row, [])
            if provider is not None:
                changed = sorted(k for k in values if old.get(k) != values[k])
                details["old"] = {k: old.get(k) for k in changed}
                details["new"] = {k: values[k] for k in changed}
                if client_secret is not None:
                    changed.append("client_secret")
                details["changed"] = changed
            audit.record("OAUTH_PROVIDER_ADDED" if provider is None else "OAUTH_PROVIDER_EDITED", actor.name,
                         object_type="oauth_provider", object_id=row.pk, details=details, in_transaction=True)
            transaction.on_commit(providers_changed)
    except IntegrityError:
        taken = "label" if TrustedOAuthProvider.objects.filter(label=values["label"]).exclude(
            pk=getattr(provider, "pk", None)).exists() else "issuer"
        raise ConflictError(f"Another trusted OAuth provider has this {taken}.", field=taken) from None
    return row


def delete_provider(actor: Actor, provider: TrustedOAuthProvider) -> int:
    """Remove a provider with its role members, in one transaction: its tokens and logins stop being
    accepted (sessions lose their roles), and no provider added later under the same name inherits the
    members. With members, this also needs the rights to edit their roles, and it must not remove the
    last member of the last super administrator role. Returns the number of role members removed."""
    actor.require(RULE)
    with transaction.atomic():
        row = TrustedOAuthProvider.objects.select_for_update().filter(pk=provider.pk).first()
        if row is None:
            raise NotFoundError(f"Trusted OAuth provider {provider.pk} does not exist.")
        members = list(_members_of(row))
        details = _audit_details(row, [])
        if members:
            _require_roles_covered(actor, row, "removal")
            details["removed_members"] = [
                {"role": m.role.name, "claim": m.claim, "value": m.match_value} for m in members]
        with _KeepSuperadmin():
            RoleMember.objects.filter(provider=row).delete()
            row.delete()
        audit.record("OAUTH_PROVIDER_REMOVED", actor.name, object_type="oauth_provider", object_id=provider.pk,
                     details=details, in_transaction=True)
        transaction.on_commit(providers_changed)
    return len(members)


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
