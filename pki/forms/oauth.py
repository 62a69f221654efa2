"""The Trusted OAuth Provider form. The client secret is write-only: never rendered back, blank = unchanged."""

from __future__ import annotations

from typing import Any

from django import forms

from ..models.oauth import (
    DEFAULT_MAX_TOKEN_LIFETIME,
    MAX_TOKEN_LIFETIME_LIMIT,
    SUPPORTED_ALGORITHMS,
    OAuthProviderType,
    TrustedOAuthProvider,
    UserClaim,
)
from ..services.oauth import FIELDS, SKIP_AUDIENCE_WARNING
from .base import FieldsetsMixin

UNCHANGED = "(unchanged)"


class OAuthProviderForm(FieldsetsMixin, forms.Form):
    provider_type = forms.ChoiceField(label="Type", choices=OAuthProviderType.choices)
    label = forms.CharField(max_length=128, help_text="Shown on the login page's button")
    issuer = forms.CharField(label="Issuer URL", max_length=512,
                             help_text="Exactly the iss claim of the provider's tokens")
    realm = forms.CharField(label="Realm / tenant", max_length=255, required=False,
                            help_text="Keycloak realm, or Azure tenant (directory) ID")
    discovery_url = forms.CharField(label="Discovery URL", max_length=512, required=False,
                                    help_text="…/.well-known/openid-configuration; blank endpoints below are "
                                              "filled from it when saving (default: under the issuer)")
    authorization_endpoint = forms.CharField(max_length=512, required=False)
    token_endpoint = forms.CharField(max_length=512, required=False)
    userinfo_endpoint = forms.CharField(max_length=512, required=False)
    jwks_uri = forms.CharField(label="JWKS URI", max_length=512, required=False)
    end_session_endpoint = forms.CharField(label="Logout (end session) endpoint", max_length=512, required=False)
    client_id = forms.CharField(label="Client ID", max_length=255, required=False,
                                help_text="Needed for the login button")
    client_secret = forms.CharField(
        label="Client secret", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_client_secret = forms.BooleanField(label="Remove the stored client secret", required=False)
    audience = forms.CharField(max_length=512, required=False,
                               help_text="The value this CA requires in the tokens' aud claim")
    skip_audience_check = forms.BooleanField(label="Skip audience check", required=False,
                                             help_text=SKIP_AUDIENCE_WARNING)
    scopes = forms.CharField(max_length=512, initial="openid profile email")
    user_claim = forms.ChoiceField(label="User name claim", choices=UserClaim.choices, initial=UserClaim.SUB)
    allowed_algorithms = forms.MultipleChoiceField(
        choices=[(a, a) for a in SUPPORTED_ALGORITHMS], initial=list(SUPPORTED_ALGORITHMS),
        widget=forms.CheckboxSelectMultiple, help_text="never none, never HS*",
    )
    clock_skew = forms.IntegerField(label="Clock skew (seconds)", min_value=0, max_value=3600, initial=60)
    max_token_lifetime = forms.IntegerField(
        label="Maximum token lifetime (seconds)", min_value=0, max_value=MAX_TOKEN_LIFETIME_LIMIT, required=False,
        initial=DEFAULT_MAX_TOKEN_LIFETIME, help_text="Tokens valid for longer are refused; 0: no limit, "
                                                      "blank: unchanged (a day for a new provider)")

    fieldsets = [
        ("Provider", ["provider_type", "label", "issuer", "realm"]),
        ("Endpoints", ["discovery_url", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                       "end_session_endpoint"]),
        ("Client", ["client_id", "client_secret", "clear_client_secret", "scopes", "user_claim"]),
        ("Token checks", ["audience", "skip_audience_check", "allowed_algorithms", "clock_skew",
                          "max_token_lifetime"]),
    ]

    def __init__(self, *args, provider: TrustedOAuthProvider | None = None, **kwargs):
        if provider is not None and "initial" not in kwargs:
            kwargs["initial"] = {k: getattr(provider, k) for k in FIELDS}
        super().__init__(*args, **kwargs)
        if provider is not None and provider.has_client_secret:
            self.fields["client_secret"].widget.attrs["placeholder"] = UNCHANGED
            self.fields["client_secret"].help_text = "A secret is stored; leave blank to keep it"
        else:
            del self.fields["clear_client_secret"]

    def values(self) -> dict[str, Any]:
        """The provider fields for the service (the secret apart)."""
        # A blank optional number keeps the stored value (or the model's default).
        return {k: self.cleaned_data[k] for k in FIELDS
                if k in self.cleaned_data and not (k == "max_token_lifetime" and self.cleaned_data[k] is None)}

    def client_secret_value(self) -> str | None:
        """None keeps the stored secret, "" removes it, text replaces it."""
        if self.cleaned_data.get("clear_client_secret"):
            return ""
        return self.cleaned_data.get("client_secret") or None
