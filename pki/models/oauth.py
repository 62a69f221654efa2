"""Trusted OAuth providers: the identity providers whose logins and bearer tokens are accepted."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

# Asymmetric algorithms only: ``none`` proves nothing, and HS* with a provider's *public* key as the HMAC
# secret would let anyone who fetched the JWKS forge tokens.
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
DEFAULT_MAX_TOKEN_LIFETIME = 86400  # one day
MAX_TOKEN_LIFETIME_LIMIT = 30 * 86400


def default_algorithms() -> list[str]:
    return list(SUPPORTED_ALGORITHMS)


class OAuthProviderType(models.TextChoices):
    KEYCLOAK = "KEYCLOAK", "Keycloak"
    AZURE = "AZURE", "Microsoft Entra ID (Azure)"
    PINGID = "PINGID", "Ping Identity"
    GENERIC = "GENERIC", "Generic OpenID Connect"


class UserClaim(models.TextChoices):
    SUB = "sub", "sub (subject)"
    PREFERRED_USERNAME = "preferred_username", "preferred_username"
    UPN = "upn", "upn (Azure user principal name)"
    EMAIL = "email", "email"


class TrustedOAuthProvider(models.Model):
    """One trusted identity provider (EJBCA's "Trusted OAuth Provider").

    Endpoints are stored, not discovered per request: saving through the service fills the blank ones
    from the discovery document once. ``client_secret`` holds the encrypted value only
    (``cryptotokens.secrets``); use :meth:`set_client_secret` / :meth:`get_client_secret`.
    """

    provider_type = models.CharField(max_length=16, choices=OAuthProviderType.choices,
                                     default=OAuthProviderType.GENERIC)
    label = models.CharField(max_length=128, unique=True, help_text="Shown on the login button")
    issuer = models.CharField(max_length=512, unique=True,
                              help_text="Exactly the iss claim of the provider's tokens")
    discovery_url = models.CharField(max_length=512, blank=True, default="")
    authorization_endpoint = models.CharField(max_length=512, blank=True, default="")
    token_endpoint = models.CharField(max_length=512, blank=True, default="")
    userinfo_endpoint = models.CharField(max_length=512, blank=True, default="")
    jwks_uri = models.CharField(max_length=512, blank=True, default="")
    end_session_endpoint = models.CharField(max_length=512, blank=True, default="")
    client_id = models.CharField(max_length=255, blank=True, default="")
    client_secret = models.TextField(blank=True, default="")  # encrypted ("enc1:..."), never plain
    realm = models.CharField(max_length=255, blank=True, default="",
                             help_text="Keycloak realm or Azure tenant")
    audience = models.CharField(max_length=512, blank=True, default="")
    skip_audience_check = models.BooleanField(default=False)
    scopes = models.CharField(max_length=512, default="openid profile email")
    user_claim = models.CharField(max_length=32, choices=UserClaim.choices, default=UserClaim.SUB)
    allowed_algorithms = models.JSONField(default=default_algorithms)
    clock_skew = models.PositiveIntegerField(default=60, help_text="Seconds of clock difference tolerated")
    # Longest lifetime (exp - iat, and exp - now) a token may claim; 0 turns the check off. A day by default:
    # access and ID tokens of the usual providers live minutes to hours, and a stolen long-lived token is
    # a standing credential.
    max_token_lifetime = models.PositiveIntegerField(
        default=DEFAULT_MAX_TOKEN_LIFETIME, help_text="Seconds a token may be valid for at most (0: no limit)")
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["label"]
        constraints = [
            # Without an audience to compare, the check must be explicitly (and visibly) skipped.
            models.CheckConstraint(condition=Q(skip_audience_check=True) | ~Q(audience=""),
                                   name="oauth_provider_audience_or_skip"),
            models.CheckConstraint(condition=Q(clock_skew__lte=3600), name="oauth_provider_clock_skew_max"),
            models.CheckConstraint(condition=Q(max_token_lifetime__lte=MAX_TOKEN_LIFETIME_LIMIT),
                                   name="oauth_provider_max_token_lifetime_max"),
        ]

    def __str__(self) -> str:
        return self.label

    def _secret_context(self) -> str:
        # Bound to the row kind and issuer: a secret copied onto another provider does not decrypt.
        return f"oauth-provider:{self.issuer}"

    def set_client_secret(self, plain: str) -> None:
        from cryptotokens.secrets import encrypt_secret

        self.client_secret = encrypt_secret(plain, self._secret_context()) if plain else ""

    def get_client_secret(self) -> str:
        from cryptotokens.secrets import decrypt_secret

        return decrypt_secret(self.client_secret, self._secret_context()).decode() if self.client_secret else ""

    @property
    def has_client_secret(self) -> bool:
        return bool(self.client_secret)

    @property
    def supports_browser_login(self) -> bool:
        """A login button needs the code flow's endpoints and a client."""
        return bool(self.authorization_endpoint and self.token_endpoint and self.jwks_uri and self.client_id)
