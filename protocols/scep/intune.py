"""Microsoft Intune SCEP challenge validation (RA mode), against Intune's documented REST API.

Intune hands devices a one-time challenge; the SCEP server asks Intune whether a PKCSReq is one it issued a
challenge for, then tells Intune the outcome. The flow (Microsoft's "SCEP validation" API, version
2018-02-20):

1. An Azure AD application token (client credentials: ``{authority}/{tenant}/oauth2/v2.0/token``) for Microsoft
   Graph and one for the Intune resource.
2. Service discovery: ``GET {graph}/{version}/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/
   endpoints``; the entry whose ``providerName`` is ``ScepRequestValidationFEService`` gives the service URI.
3. ``POST {service}/ScepActions/validateRequest`` ``{"request": {"transactionId", "certificateRequest" (base64
   PKCS#10), "callerInfo"}}`` → ``{"code": "Success"}`` accepts; any other code refuses.
4. After issuance ``ScepActions/successNotification`` (thumbprint, serial, expiry, issuing CA), after a refusal
   ``ScepActions/failureNotification`` (hResult, errorDescription).
Every call carries ``api-version`` and a fresh ``client-request-id``.

Alias settings (``intune_settings``; EJBCA's property names in brackets): ``tenant`` [intuneTenant], ``app_id``
[intuneAadAppId], the application key (encrypted) [intuneAadAppKey], ``authority`` [intuneAuthority, default
https://login.microsoftonline.com], ``resource_url`` [intuneResourceUrl, default https://api.manage.microsoft.com/],
``graph_resource_url`` [intuneGraphResourceUrl, default https://graph.microsoft.com], ``graph_api_version``
[intuneGraphApiVersion, default v1.0], ``proxy_host``/``proxy_port``/``proxy_user`` and the proxy password.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .challenge import ChallengeContext, ChallengeRefused, secret

if TYPE_CHECKING:
    from .models import ScepAlias

logger = logging.getLogger("protocols.scep.intune")

API_VERSION = "2018-02-20"
INTUNE_APP_ID = "0000000a-0000-0000-c000-000000000000"
SERVICE_NAME = "ScepRequestValidationFEService"
CALLER_INFO = "pki-scep/1"
TIMEOUT = 30
DEFAULTS = {
    "authority": "https://login.microsoftonline.com",
    "resource_url": "https://api.manage.microsoft.com/",
    "graph_resource_url": "https://graph.microsoft.com",
    "graph_api_version": "v1.0",
}
# Access tokens per (authority, tenant, app, scope), reused until shortly before they expire.
_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}


class IntuneValidator:
    """A :class:`~protocols.scep.challenge.ChallengeValidator` that asks Intune."""

    def __init__(self, alias: ScepAlias) -> None:
        self.settings = {**DEFAULTS, **{k: v for k, v in (alias.intune_settings or {}).items() if v}}
        self.app_key = secret(alias, "intune_app_key")
        self.proxy_pass = secret(alias, "intune_proxy_pass")
        for required in ("tenant", "app_id"):
            if not self.settings.get(required):
                raise ChallengeRefused(f"Intune is not configured on alias '{alias.name}' ({required} missing)")
        # intuneAadUseKeyBinding: log in with the certificate of an authentication key binding, not the app key.
        use_binding = str(self.settings.get("use_key_binding", "")).strip().lower() in ("true", "1", "yes", "on")
        self.key_binding = str(self.settings.get("key_binding") or "").strip() if use_binding else ""
        if use_binding and not self.key_binding:
            raise ChallengeRefused(f"Alias '{alias.name}' uses a key binding for Intune but names none")
        self._service: str | None = None

    # --- HTTP ---

    def _opener(self) -> urllib.request.OpenerDirector:
        host = self.settings.get("proxy_host")
        if not host:
            return urllib.request.build_opener(urllib.request.ProxyHandler({}))
        port = self.settings.get("proxy_port") or "8080"
        user = self.settings.get("proxy_user")
        auth = f"{urllib.parse.quote(user)}:{urllib.parse.quote(self.proxy_pass)}@" if user else ""
        proxy = f"http://{auth}{host}:{port}"
        return urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy, "https": proxy}))

    def _call(self, method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
              ) -> dict[str, Any]:
        if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
            raise ChallengeRefused(f"Not an HTTP(S) URL: {url}")
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
        try:
            with self._opener().open(request, timeout=TIMEOUT) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise ChallengeRefused(f"Intune answered HTTP {exc.code} to {urllib.parse.urlsplit(url).path}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ChallengeRefused(f"Intune is unreachable: {exc}") from None

    def _token(self, scope: str) -> str:
        key = (self.settings["authority"], self.settings["tenant"], self.settings["app_id"], scope)
        cached = _tokens.get(key)
        if cached and cached[1] > time.time() + 60:
            return cached[0]
        url = f"{self.settings['authority'].rstrip('/')}/{self.settings['tenant']}/oauth2/v2.0/token"
        form = {"grant_type": "client_credentials", "client_id": self.settings["app_id"], "scope": scope}
        if self.key_binding:
            form.update(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        client_assertion=self._assertion(url))
        else:
            form["client_secret"] = self.app_key
        body = urllib.parse.urlencode(form).encode()
        answer = self._call("POST", url, data=body,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        token = answer.get("access_token")
        if not token:
            raise ChallengeRefused("Azure AD returned no access token")
        _tokens[key] = (token, time.time() + float(answer.get("expires_in", 3600)))
        return token

    def _assertion(self, audience: str) -> str:
        """A JWT signed by the key binding's key (any token type: only a signature is needed)."""
        from keybindings.services import client_assertion
        from pki.errors import PkiError

        try:
            return client_assertion(self.key_binding, audience=audience, client_id=self.settings["app_id"])
        except PkiError as exc:
            raise ChallengeRefused(f"Intune key binding: {exc.message}") from None

    def service_uri(self) -> str:
        """The ScepRequestValidationFEService URI from Graph's service discovery."""
        if self._service:
            return self._service
        graph = self.settings["graph_resource_url"].rstrip("/")
        token = self._token(f"{graph}/.default")
        url = f"{graph}/{self.settings['graph_api_version']}/servicePrincipals/appId={INTUNE_APP_ID}/endpoints"
        answer = self._call("GET", url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        for endpoint in answer.get("value", []):
            if endpoint.get("providerName") == SERVICE_NAME and endpoint.get("uri"):
                self._service = endpoint["uri"].rstrip("/")
                return self._service
        raise ChallengeRefused(f"Graph lists no {SERVICE_NAME} endpoint")

    def _action(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        token = self._token(self.settings["resource_url"].rstrip("/") + "//.default")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8",
                   "api-version": API_VERSION, "client-request-id": str(uuid.uuid4()), "UserAgent": CALLER_INFO}
        return self._call("POST", f"{self.service_uri()}/ScepActions/{action}", data=json.dumps(payload).encode(),
                          headers=headers)

    # --- ChallengeValidator ---

    @staticmethod
    def _csr(ctx: ChallengeContext) -> str:
        return base64.b64encode(ctx.csr_der).decode()

    def validate(self, ctx: ChallengeContext) -> None:
        answer = self._action("validateRequest", {"request": {
            "transactionId": ctx.transaction_id, "certificateRequest": self._csr(ctx), "callerInfo": CALLER_INFO}})
        if str(answer.get("code", "")).lower() != "success":
            raise ChallengeRefused(
                f"Intune refused the request: {answer.get('code')} {answer.get('errorDescription', '')}")

    def notify_success(self, ctx: ChallengeContext, certificate_der: bytes) -> None:
        cert = x509.load_der_x509_certificate(certificate_der)
        try:
            self._action("successNotification", {"notification": {
                "transactionId": ctx.transaction_id, "certificateRequest": self._csr(ctx),
                "certificateThumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Intune's format
                "certificateSerialNumber": format(cert.serial_number, "X"),
                "certificateExpirationDateUtc": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "issuingCertificateAuthority": cert.issuer.rfc4514_string(),
                "caConfiguration": "", "certificateAuthority": cert.issuer.rfc4514_string(),
            }})
        except ChallengeRefused as exc:  # the certificate is issued: a lost notification is logged, not fatal
            logger.warning("Intune success notification for %s failed: %s", ctx.transaction_id, exc)

    def notify_failure(self, ctx: ChallengeContext, reason: str) -> None:
        try:
            self._action("failureNotification", {"notification": {
                "transactionId": ctx.transaction_id, "certificateRequest": self._csr(ctx),
                "hResult": -2147024809, "errorDescription": reason[:500]}})  # E_INVALIDARG, as 32-bit signed
        except ChallengeRefused as exc:
            logger.warning("Intune failure notification for %s failed: %s", ctx.transaction_id, exc)
