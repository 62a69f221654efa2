"""intuneAadUseKeyBinding/intuneAadKeyBinding are used: the Intune validator logs in to Azure AD with a JWT client
assertion signed by the authentication binding's key (checked by a local token endpoint against the binding's
certificate), instead of the application key; a disabled or missing binding is a refusal."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from keybindings import services
from pki.models import CertificateProfile


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenEndpoint(ThreadingHTTPServer):
    """Azure AD's token endpoint, accepting only a client assertion signed by ``certificate``'s key."""

    daemon_threads = True

    def __init__(self, certificate: x509.Certificate):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.certificate = certificate
        self.forms: list[dict] = []
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: TokenEndpoint

    def log_message(self, *args):
        pass

    def do_POST(self):
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode(),
                                            keep_blank_values=True))
        self.server.forms.append(form)
        ok = False
        try:
            head, claims, sig = form["client_assertion"].split(".")
            header, payload = json.loads(_b64d(head)), json.loads(_b64d(claims))
            cert = self.server.certificate
            cert.public_key().verify(_b64d(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
            ok = (header["alg"] == "RS256" and _b64d(header["x5t"]) == cert.fingerprint(hashes.SHA1())
                  and payload["aud"] == f"{self.server.base}{self.path}" and payload["iss"] == "app-id"
                  and payload["sub"] == "app-id"
                  and form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        except Exception:  # noqa: BLE001 - any malformed assertion is simply refused
            ok = False
        body = json.dumps({"access_token": "token-ok", "expires_in": 3600} if ok else {"error": "invalid_client"})
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())


@pytest.fixture
def login_binding(actor, binding_factory, root_ca):
    binding = binding_factory("intune-login", key_spec="RSA2048")
    services.issue_certificate(actor, binding, ca=root_ca, profile=CertificateProfile.objects.get(name="ENDUSER"))
    services.set_status(actor, binding, "ACTIVE")
    binding.refresh_from_db()
    return binding


@pytest.fixture
def endpoint(login_binding):
    server = TokenEndpoint(login_binding.certificate.certificate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _validator(endpoint, **settings):
    from protocols.scep import intune
    from protocols.scep.models import ScepAlias

    intune._tokens.clear()
    alias = ScepAlias(name="mdm", use_intune=True, intune_settings={
        "tenant": "contoso", "app_id": "app-id", "authority": endpoint.base, **settings})
    return intune.IntuneValidator(alias)


def test_intune_logs_in_with_the_key_binding(endpoint):
    validator = _validator(endpoint, use_key_binding="true", key_binding="intune-login")
    assert validator._token("https://graph.example/.default") == "token-ok"
    assert "client_secret" not in endpoint.forms[0] and "client_assertion" in endpoint.forms[0]


def test_a_disabled_binding_or_none_named_is_a_refusal(actor, endpoint, login_binding):
    from protocols.scep.intune import ChallengeRefused  # wherever SCEP defines it, intune.py imports it

    with pytest.raises(ChallengeRefused, match="names none"):
        _validator(endpoint, use_key_binding="true")
    services.set_status(actor, login_binding, "DISABLED")
    validator = _validator(endpoint, use_key_binding="true", key_binding="intune-login")
    with pytest.raises(ChallengeRefused, match="not active"):
        validator._token("https://graph.example/.default")
    assert endpoint.forms == []  # nothing was sent


def test_without_the_setting_the_application_key_is_sent(endpoint):
    validator = _validator(endpoint, use_key_binding="false", key_binding="intune-login")
    with pytest.raises(Exception, match="401"):
        validator._token("https://graph.example/.default")
    assert "client_secret" in endpoint.forms[0] and "client_assertion" not in endpoint.forms[0]
