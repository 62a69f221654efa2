"""Verifying OAuth bearer tokens (JWT access tokens) and ID tokens of trusted OAuth providers.

A token is accepted when, in this order:
1. it parses as a JWS (header and payload), and its ``iss`` is exactly a trusted provider's issuer;
2. its ``alg`` is in that provider's allow-list: ``none`` and HS* are refused before any key is touched
   (HS* "signed" with the provider's public key is the classic forgery);
3. the key named by ``kid`` is in the provider's JWKS. The JWKS is cached (the Django cache, i.e. Redis
   when configured, shared by every process, plus a short in-process memo) and never fetched per
   request; an unknown ``kid`` triggers one refresh, rate limited per provider across processes so tokens
   with made-up kids cannot make us hammer the provider;
4. the signature verifies; ``exp``/``nbf``/``iat`` are integers (NumericDate without fractions; NaN,
   infinities, strings and booleans are refused) and hold within the provider's clock skew; the token
   claims no longer a lifetime (``exp - iat`` and ``exp - now``) than the provider's ``max_token_lifetime``;
   and ``aud`` contains the configured audience unless the provider skips that check.

A token that passed is remembered in this process by its SHA-256 (not the token) for up to a minute and
never past its ``exp``, so a client presenting the same token again costs a hash and a dict lookup
instead of a signature verification (``PKI_OAUTH_VERIFIED_MEMO_SECONDS``, 0 turns it off).

Every refusal is a :class:`TokenRefused` with a detailed reason for the server log and the audit summary
(:mod:`pki.auth.refusals`) and a fixed ``code``; callers get one uniform reply whatever the reason, so the
reply tells nothing about which issuers are trusted or which algorithms are allowed. The token itself is a
credential: it is never put into an exception message, a log line or an audit row.

Role members on the ``email`` claim match only tokens that say ``email_verified: true``: an e-mail address
is a mutable claim many providers let users set to anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..models.oauth import SUPPORTED_ALGORITHMS
from .access import Actor, rules_for_roles

logger = logging.getLogger("pki.auth.oauth")

_GENERATION_KEY = "pki:oauth:providers:generation"


_settings_cache: dict[str, Any] = {}


def _setting(name: str, default: Any) -> Any:
    # Read on every request: a plain dict instead of Django's lazy settings object (a few µs a lookup).
    try:
        return _settings_cache[name]
    except KeyError:
        value = _settings_cache[name] = getattr(settings, name, default)
        return value


@receiver(setting_changed, dispatch_uid="pki-oauth-settings")
def _setting_changed(setting: str, **kwargs) -> None:
    _settings_cache.pop(setting, None)


class TokenRefused(Exception):
    """A bearer or ID token was not accepted.

    ``reason`` is the detail for the server log and the audit log (it never contains the token, but may
    quote a header value such as ``alg``): never show it to the caller. ``code`` is a fixed key of the
    reason (throttling of log lines and audit summaries)."""

    def __init__(self, reason: str, provider: ProviderConfig | None = None, code: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.provider = provider
        self.code = code or reason


@dataclass(frozen=True)
class ProviderConfig:
    """What verification needs of a ``TrustedOAuthProvider`` row, kept in a per-process memo."""

    pk: int
    label: str
    issuer: str
    jwks_uri: str
    audience: str
    skip_audience_check: bool
    allowed_algorithms: frozenset[str]
    clock_skew: int
    user_claim: str
    max_token_lifetime: int = 0

    @classmethod
    def from_model(cls, row) -> ProviderConfig:
        return cls(pk=row.pk, label=row.label, issuer=row.issuer, jwks_uri=row.jwks_uri, audience=row.audience,
                   skip_audience_check=row.skip_audience_check,
                   allowed_algorithms=frozenset(row.allowed_algorithms or ()), clock_skew=int(row.clock_skew),
                   user_claim=row.user_claim or "sub", max_token_lifetime=int(row.max_token_lifetime or 0))


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check: the provider it came from and its claims."""

    provider: ProviderConfig
    claims: dict[str, Any] = field(hash=False, compare=False)

    @property
    def username(self) -> str:
        return str(self.claims.get(self.provider.user_claim, ""))


# --- trusted providers by issuer ------------------------------------------------------------------------

class _ProviderMemo:
    """Providers by issuer, reloaded from the database when another process saved a change (a generation
    number in the shared cache says so; it is looked at most every PKI_OAUTH_PROVIDER_MEMO_SECONDS)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_issuer: dict[str, ProviderConfig] | None = None
        self.generation: str | None = None
        self.checked_at = 0.0

    def get(self, issuer: str) -> ProviderConfig | None:
        now = time.monotonic()
        by_issuer = self.by_issuer
        if by_issuer is not None and now - self.checked_at < _setting("PKI_OAUTH_PROVIDER_MEMO_SECONDS", 5):
            return by_issuer.get(issuer)
        generation = cache.get(_GENERATION_KEY)
        with self.lock:
            if self.by_issuer is None or generation != self.generation:
                from ..models import TrustedOAuthProvider

                self.by_issuer = {row.issuer: ProviderConfig.from_model(row)
                                  for row in TrustedOAuthProvider.objects.all()}
                self.generation = generation
            self.checked_at = now
            return self.by_issuer.get(issuer)

    def clear(self) -> None:
        with self.lock:
            self.by_issuer = None


_providers = _ProviderMemo()


def provider_for_issuer(issuer: str) -> ProviderConfig | None:
    """The trusted provider whose issuer is exactly ``issuer``."""
    return _providers.get(issuer)


def providers_changed() -> None:
    """Tell every process that providers were added, edited or removed (call after commit)."""
    cache.set(_GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    clear_memos()


# --- the providers' signing keys --------------------------------------------------------------------------

def _jwks_cache_key(provider: ProviderConfig) -> str:
    digest = hashlib.sha256(provider.jwks_uri.encode()).hexdigest()[:16]
    return f"pki:oauth:jwks:{provider.pk}:{digest}"


def fetch_jwks(jwks_uri: str) -> dict[str, Any]:
    """GET the provider's JWKS document (the only place keys are fetched from the network)."""
    response = requests.get(jwks_uri, timeout=_setting("PKI_OAUTH_HTTP_TIMEOUT", 5),
                            headers={"Accept": "application/json"})
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    return document


def _parse_keys(document: dict[str, Any], provider: ProviderConfig) -> dict[str, jwt.PyJWK]:
    keys: dict[str, jwt.PyJWK] = {}
    for index, jwk in enumerate(document.get("keys", [])):
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct":
            continue  # encryption keys and symmetric keys never verify a signature here
        try:
            key = jwt.PyJWK(jwk)
        except jwt.PyJWTError as exc:
            logger.warning("OAuth provider %s: JWKS key %s ignored (%s)", provider.label, jwk.get("kid", index), exc)
            continue
        keys[str(jwk.get("kid", f"#{index}"))] = key
    return keys


class _JwksMemo:
    """Per-process memo in front of the shared cache: {provider pk: (valid until, jwks_uri, keys by kid)}."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[int, tuple[float, str, dict[str, jwt.PyJWK]]] = {}

    def keys(self, provider: ProviderConfig) -> dict[str, jwt.PyJWK]:
        entry = self.entries.get(provider.pk)
        if entry is not None and entry[0] > time.monotonic() and entry[1] == provider.jwks_uri:
            return entry[2]
        document = cache.get(_jwks_cache_key(provider))
        if document is None:
            document = self._download(provider)
        return self._remember(provider, document)

    def refreshed_keys(self, provider: ProviderConfig, kid: str) -> dict[str, jwt.PyJWK]:
        """Keys after an unknown kid: another process's newer copy, or one download per refresh interval."""
        document = cache.get(_jwks_cache_key(provider))
        keys = self._remember(provider, document) if document is not None else {}
        if kid in keys:
            return keys
        interval = _setting("PKI_OAUTH_JWKS_REFRESH_INTERVAL", 30)
        # cache.add is atomic: of all processes seeing unknown kids, one per interval goes to the provider.
        if cache.add(f"pki:oauth:jwks-refresh:{provider.pk}", 1, timeout=interval):
            keys = self._remember(provider, self._download(provider))
        return keys

    def _download(self, provider: ProviderConfig) -> dict[str, Any]:
        if not provider.jwks_uri:
            raise TokenRefused("the provider has no JWKS endpoint configured", provider)
        try:
            document = fetch_jwks(provider.jwks_uri)
        except (requests.RequestException, ValueError) as exc:
            logger.warning("OAuth provider %s: JWKS fetch from %s failed: %s", provider.label, provider.jwks_uri,
                           exc.__class__.__name__)
            raise TokenRefused("the provider's signing keys could not be fetched", provider) from None
        cache.set(_jwks_cache_key(provider), document, timeout=_setting("PKI_OAUTH_JWKS_CACHE_SECONDS", 3600))
        logger.info("OAuth provider %s: fetched JWKS (%d keys)", provider.label, len(document["keys"]))
        return document

    def _remember(self, provider: ProviderConfig, document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
        keys = _parse_keys(document, provider)
        until = time.monotonic() + _setting("PKI_OAUTH_JWKS_MEMO_SECONDS", 60)
        with self.lock:
            self.entries[provider.pk] = (until, provider.jwks_uri, keys)
        return keys

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_jwks = _JwksMemo()


def clear_memos() -> None:
    """Forget this process's memos, settings snapshot and refusal log limiter (the shared cache is left
    alone)."""
    from . import refusals

    refusals.clear()
    _settings_cache.clear()
    _providers.clear()
    _jwks.clear()
    _verified.clear()


def signing_key(provider: ProviderConfig, kid: str | None, alg: str) -> jwt.PyJWK:
    """The provider's key for ``kid`` (refreshing the JWKS once, rate limited, if the kid is unknown)."""
    keys = _jwks.keys(provider)
    if kid is None:
        # Providers with one key may omit kid; with several, guessing would be trying keys for the caller.
        if len(keys) == 1:
            return next(iter(keys.values()))
        raise TokenRefused("the token names no signing key (kid)", provider)
    key = keys.get(kid)
    if key is None:
        key = _jwks.refreshed_keys(provider, kid).get(kid)
    if key is None:
        raise TokenRefused("unknown signing key (kid)", provider)
    # A JWK that names its algorithm is for that algorithm only (RFC 7517 4.4).
    if getattr(key, "_jwk_data", {}).get("alg") not in (None, alg):
        raise TokenRefused("the signing key does not allow this algorithm", provider)
    return key


# --- verification ---------------------------------------------------------------------------------------
# The token is parsed once here (PyJWT's own parsing checks the base64 alphabet character by character in
# Python, which cost more than the signature check); the signature is verified by PyJWT's algorithm objects
# over the cryptography keys of the JWKS, and the registered claims are checked below.

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS = {name: jwt.get_algorithm_by_name(name) for name in SUPPORTED_ALGORITHMS}


@dataclass(frozen=True)
class _ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _b64decode(segment: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise TokenRefused("malformed token")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _parse(token: str) -> _ParsedToken:
    parts = token.split(".")
    if len(parts) != 3:  # a JWS in compact form; five parts would be an (unsupported) encrypted token
        raise TokenRefused("malformed token")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, binascii.Error):
        raise TokenRefused("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused("malformed token")
    return _ParsedToken(header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _check_algorithm(provider: ProviderConfig, header: dict[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise TokenRefused("malformed token: no alg", provider)
    if alg.lower() == "none":
        raise TokenRefused("unsigned tokens (alg none) are not accepted", provider)
    if alg.upper().startswith("HS"):
        raise TokenRefused(f"symmetric algorithm {alg[:20]!r} is not accepted", provider,
                           code="symmetric algorithm")
    if alg not in provider.allowed_algorithms or alg not in _ALGORITHMS:
        raise TokenRefused(f"algorithm {alg[:20]!r} is not allowed for this provider", provider,
                           code="algorithm not allowed")
    if "crit" in header:  # RFC 7515 4.1.11: extensions we do not understand must not be ignored
        raise TokenRefused("unsupported critical header parameters", provider)
    return alg


def _verify_signature(provider: ProviderConfig, parsed: _ParsedToken, alg: str) -> None:
    kid = parsed.header.get("kid")
    key = signing_key(provider, kid if isinstance(kid, str) else None, alg)
    try:
        valid = _ALGORITHMS[alg].verify(parsed.signing_input, key.key, parsed.signature)
    except Exception:  # a key of another type than the algorithm's (an EC key for RS256, ...)
        valid = False
    if not valid:
        raise TokenRefused("signature verification failed", provider)


# NumericDate bounds: before 1970 or after 9999 is no date a provider writes (and huge values overflow).
_MAX_NUMERIC_DATE = 253402300799


def _numeric_date(claims: dict[str, Any], name: str, provider: ProviderConfig) -> int | None:
    """``exp``/``nbf``/``iat`` as an integer, None when absent; anything else (null, a string, a boolean,
    NaN, an infinity, a fraction, a date out of range) refuses the token."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # 1700000000.0 is still a whole second
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise TokenRefused(f"invalid token ({name} is not an integer NumericDate)", provider,
                           code=f"invalid {name}")
    return value


def _check_claims(provider: ProviderConfig, claims: dict[str, Any], audience: str | None,
                  required: tuple[str, ...]) -> None:
    for name in required:
        if name not in claims:
            raise TokenRefused("token has no audience" if name == "aud" else f"token has no {name} claim", provider)
    if claims.get("iss") != provider.issuer:
        raise TokenRefused("issuer does not match", provider)
    now = time.time()
    skew = provider.clock_skew
    exp = _numeric_date(claims, "exp", provider)
    nbf = _numeric_date(claims, "nbf", provider)
    iat = _numeric_date(claims, "iat", provider)
    if exp is not None and exp <= now - skew:
        raise TokenRefused("token expired", provider)
    if (nbf is not None and nbf > now + skew) or (iat is not None and iat > now + skew):
        raise TokenRefused("token not yet valid", provider)
    limit = provider.max_token_lifetime
    if limit and exp is not None:
        # Both: exp - iat catches a long-lived token, exp - now one that leaves iat out.
        if exp - now > limit + skew or (iat is not None and exp - iat > limit):
            raise TokenRefused(f"token lifetime exceeds the provider's maximum ({limit} s)", provider,
                               code="token lifetime too long")
    if audience is not None:
        aud = claims.get("aud")
        if not aud:
            raise TokenRefused("token has no audience", provider)
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise TokenRefused("invalid token (aud is not a string or list of strings)", provider)
        if audience not in values:
            raise TokenRefused("audience does not match", provider)


class _VerifiedMemo:
    """Tokens verified lately, by SHA-256 of the token (the token itself is not kept): API clients present
    the same access token for its whole lifetime, and the RSA/EC verification is the costliest step of a
    request. An entry lasts at most PKI_OAUTH_VERIFIED_MEMO_SECONDS and never past the token's expiry,
    and counts only while its provider's settings are unchanged."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[bytes, tuple[float, VerifiedToken]] = {}

    def get(self, digest: bytes) -> VerifiedToken | None:
        entry = self.entries.get(digest)
        if entry is None:
            return None
        valid_until, verified = entry
        # ``is``: a reloaded provider is a new object, so any change of providers means verifying afresh.
        if time.time() < valid_until and provider_for_issuer(verified.provider.issuer) is verified.provider:
            return verified
        with self.lock:
            self.entries.pop(digest, None)
        return None

    def put(self, digest: bytes, verified: VerifiedToken) -> None:
        seconds = _setting("PKI_OAUTH_VERIFIED_MEMO_SECONDS", 60)
        if seconds <= 0:
            return
        valid_until = min(float(verified.claims["exp"]) + verified.provider.clock_skew, time.time() + seconds)
        with self.lock:
            if len(self.entries) >= _setting("PKI_OAUTH_VERIFIED_MEMO_SIZE", 10000):
                self.entries.pop(next(iter(self.entries)))  # the oldest
            self.entries[digest] = (valid_until, verified)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


_verified = _VerifiedMemo()


def verify_bearer(token: str) -> VerifiedToken:
    """Verify an access token presented as ``Authorization: Bearer``; raise :class:`TokenRefused`."""
    if not token or len(token) > _setting("PKI_OAUTH_MAX_TOKEN_LENGTH", 16384):
        raise TokenRefused("malformed token")
    digest = hashlib.sha256(token.encode()).digest()
    known = _verified.get(digest)
    if known is not None:
        return known
    verified = _verify_bearer(token)
    _verified.put(digest, verified)
    return verified


def _verify_bearer(token: str) -> VerifiedToken:
    parsed = _parse(token)
    issuer = parsed.claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise TokenRefused("token has no issuer")
    provider = provider_for_issuer(issuer)
    if provider is None:
        raise TokenRefused("issuer is not a trusted OAuth provider")
    alg = _check_algorithm(provider, parsed.header)
    _verify_signature(provider, parsed, alg)
    claims = parsed.claims
    _check_claims(provider, claims, None if provider.skip_audience_check else provider.audience, ("exp",))
    if not str(claims.get(provider.user_claim, "")):
        raise TokenRefused(f"token has no {provider.user_claim} claim", provider, code="no user claim")
    return VerifiedToken(provider=provider, claims=claims)


def verify_id_token(provider: ProviderConfig, token: str, client_id: str, nonce: str | None) -> dict[str, Any]:
    """Verify an OpenID Connect ID token from the code flow: same checks, audience = our client ID (never
    skipped: OIDC requires it), ``azp`` = our client ID when present and required when ``aud`` names
    other parties too (OIDC Core 3.1.3.7), and the nonce of the login attempt."""
    parsed = _parse(token)
    if parsed.claims.get("iss") != provider.issuer:
        raise TokenRefused("issuer does not match", provider)
    alg = _check_algorithm(provider, parsed.header)
    _verify_signature(provider, parsed, alg)
    _check_claims(provider, parsed.claims, client_id, ("exp", "iat", "sub", "aud"))
    aud, azp = parsed.claims.get("aud"), parsed.claims.get("azp")
    if azp is None and isinstance(aud, list) and len(set(aud)) > 1:
        raise TokenRefused("ID token for several audiences without azp", provider)
    if azp is not None and azp != client_id:
        raise TokenRefused("ID token authorized for another party (azp)", provider)
    if nonce is not None and parsed.claims.get("nonce") != nonce:
        raise TokenRefused("nonce does not match the login attempt", provider)
    return parsed.claims


# --- who the caller is -------------------------------------------------------------------------------------

def claim_matches(value: Any, wanted: str) -> bool:
    """A role member's claim value matches a string claim equal to it, or a list claim containing it
    (``groups``, ``roles``)."""
    if isinstance(value, list | tuple):
        return any(isinstance(v, str | int) and str(v) == wanted for v in value)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value) == wanted
    return False


def actor_name(provider: ProviderConfig, claims: dict[str, Any]) -> str:
    """How an OAuth caller is named in the audit log: ``<provider label>:<user claim value>``."""
    return f"{provider.label}:{claims.get(provider.user_claim, '')}"


def email_verified(claims: dict[str, Any]) -> bool:
    """Whether the provider vouches for the ``email`` claim (``email_verified: true``; some providers
    write the boolean as a string)."""
    value = claims.get("email_verified")
    return value is True or (isinstance(value, str) and value.lower() == "true")


def actor_for_oauth(provider: ProviderConfig, claims: dict[str, Any]) -> Actor:
    """The actor of a caller authenticated by ``provider``: the roles whose OAuth members match its claims
    (``RoleMember(match_type=OAUTH_CLAIM, provider=<the provider's id>, claim=<name>, match_value=<value>)``;
    a member without a claim name matches the provider's user claim). A member on ``email`` matches only a
    verified address."""
    from ..choices import MemberMatch
    from ..models import RoleMember

    members = RoleMember.objects.filter(match_type=MemberMatch.OAUTH_CLAIM, provider_id=provider.pk).values_list(
        "role_id", "claim", "match_value"
    )
    verified_email = email_verified(claims)
    role_ids = {role_id for role_id, claim, wanted in members
                if ((claim or provider.user_claim) != "email" or verified_email)
                and claim_matches(claims.get(claim or provider.user_claim), wanted)}
    return Actor(name=actor_name(provider, claims), kind="oauth",
                 role_rules=rules_for_roles(sorted(role_ids)) if role_ids else {})


# Django user names of OIDC logins: "oauth-<provider id>:<user claim>", so two providers' users (and local
# accounts, whose names cannot hold ":") never share an account.
OIDC_USERNAME_PREFIX = "oauth-"
SESSION_KEY = "pki_oauth"


def oidc_username(provider: ProviderConfig, value: str) -> str:
    name = f"{OIDC_USERNAME_PREFIX}{provider.pk}:{value}"
    if len(name) > 150:  # Django's user name limit: keep it unique with a digest
        name = name[:100] + ":" + hashlib.sha256(name.encode()).hexdigest()[:40]
    return name


def provider_by_pk(pk: int) -> ProviderConfig | None:
    """The trusted provider with this primary key (from the same memo as the issuer lookup)."""
    _providers.get("")  # refreshes the memo when due
    by_issuer = _providers.by_issuer or {}
    return next((p for p in by_issuer.values() if p.pk == pk), None)


def actor_for_oauth_request(request) -> Actor | None:
    """The actor of a bearer-token call or of an OIDC browser session; None for other callers."""
    user = getattr(request, "user", None)
    verified = getattr(user, "pki_oauth", None)
    if isinstance(verified, VerifiedToken):
        return actor_for_oauth(verified.provider, verified.claims)
    if not getattr(user, "is_authenticated", False):
        return None
    session = getattr(request, "session", None)
    data = session.get(SESSION_KEY) if session is not None else None
    if isinstance(data, dict):
        provider = provider_by_pk(int(data.get("provider_id", 0)))
        claims = data.get("claims") or {}
        if provider is None:  # the provider was removed since the login: no roles any more
            return Actor(name=user.get_username(), kind="oauth")
        return actor_for_oauth(provider, claims)
    if user.get_username().startswith(OIDC_USERNAME_PREFIX) and not user.has_usable_password():
        # An OIDC account without its login session data (it cannot match local-user role members).
        return Actor(name=user.get_username(), kind="oauth")
    return None
