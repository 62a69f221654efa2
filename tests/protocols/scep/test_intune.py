"""The Intune challenge validator against a local server that speaks Intune's documented API (Azure AD token,
Graph service discovery, ScepActions/validateRequest, success and failure notifications); and the
pluggable validator hook."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.models import EndEntity
from protocols.scep.messages import FailInfo, PkiStatus
from protocols.scep.validators import ChallengeRefused

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, own

pytestmark = pytest.mark.django_db


class FakeIntune(ThreadingHTTPServer):
    """Azure AD, Graph and the Intune SCEP validation service on one local port. ``allowed`` holds the
    transaction ids Intune handed out challenges for; ``calls`` records (path, headers, body)."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.allowed: set[str] = set()
        self.calls: list[tuple[str, dict, dict]] = []
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeIntune

    def log_message(self, *args):  # quiet
        pass

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return dict(urllib.parse.parse_qsl(raw.decode()))
        return json.loads(raw or b"{}")

    def _bearer_ok(self) -> bool:
        return self.headers.get("Authorization", "").startswith("Bearer token-")

    def do_GET(self):
        self.server.calls.append((self.path, dict(self.headers), {}))
        if self.path == "/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints" \
                and self._bearer_ok():
            return self._reply(200, {"value": [
                {"providerName": "SomethingElse", "uri": f"{self.server.base}/other"},
                {"providerName": "ScepRequestValidationFEService", "uri": f"{self.server.base}/scepsvc/"},
            ]})
        return self._reply(404, {})

    def do_POST(self):
        body = self._body()
        self.server.calls.append((self.path, dict(self.headers), body))
        if self.path == "/contoso.onmicrosoft.com/oauth2/v2.0/token":
            if body.get("client_secret") != "app-key" or body.get("grant_type") != "client_credentials":
                return self._reply(401, {"error": "invalid_client"})
            return self._reply(200, {"access_token": f"token-{body['scope']}", "expires_in": 3600})
        if not self.path.startswith("/scepsvc/ScepActions/") or not self._bearer_ok() \
                or self.headers.get("api-version") != "2018-02-20" or not self.headers.get("client-request-id"):
            return self._reply(400, {})
        action = self.path.rsplit("/", 1)[1]
        if action == "validateRequest":
            ok = body["request"]["transactionId"] in self.server.allowed
            return self._reply(200, {"code": "Success" if ok else "ChallengeDeniedError",
                                     "errorDescription": "" if ok else "unknown transaction"})
        return self._reply(200, {"code": "Success"})


@pytest.fixture
def intune():
    server = FakeIntune()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def intune_alias(alias_factory, scep_ca, intune):
    from protocols.scep import intune as intune_module

    intune_module._tokens.clear()
    return alias_factory(operation_mode="ra", ra_default_ca=scep_ca, use_intune=True, intune_app_key="app-key",
                         intune_settings={"tenant": "contoso.onmicrosoft.com", "app_id": "app-id",
                                          "authority": intune.base, "graph_resource_url": intune.base})


def test_intune_accepts_and_is_notified(scep, scep_ca, intune, intune_alias):
    key = client_key(70)
    csr = make_csr(key, "CN=intune-device", "challenge-from-intune")
    from protocols.scep.messages.client import transaction_id_for

    intune.allowed.add(transaction_id_for(key.public_key()))
    result = scep.enroll(csr, key, scep_ca.certificate)
    assert result.status == PkiStatus.SUCCESS
    cert = own(result, key)
    paths = [c[0] for c in intune.calls]
    assert "/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints" in paths
    validate = next(c for c in intune.calls if c[0].endswith("/validateRequest"))
    assert validate[2]["request"]["transactionId"] == result.transaction_id
    assert base64.b64decode(validate[2]["request"]["certificateRequest"]) == csr.public_bytes(Encoding.DER)
    notified = next(c for c in intune.calls if c[0].endswith("/successNotification"))[2]["notification"]
    assert notified["certificateSerialNumber"] == format(cert.serial_number, "X")
    scopes = {c[2].get("scope") for c in intune.calls if c[0].endswith("/token")}
    assert scopes == {f"{intune.base}/.default", "https://api.manage.microsoft.com//.default"}
    assert EndEntity.objects.filter(username="intune-device").exists()


def test_intune_refuses_unknown_transaction(scep, scep_ca, intune, intune_alias):
    key = client_key(71)
    result = scep.enroll(make_csr(key, "CN=rogue", "made-up"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert not EndEntity.objects.filter(username="rogue").exists()
    assert not any(c[0].endswith("/successNotification") for c in intune.calls)


def test_intune_unreachable_or_misconfigured_is_a_refusal(scep, scep_ca, intune, intune_alias, actor):
    from protocols.scep import services

    services.edit_alias(actor, "scep", intune_app_key="wrong-key")
    key = client_key(72)
    result = scep.enroll(make_csr(key, "CN=dev", "x"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    services.edit_alias(actor, "scep", intune_settings={"tenant": ""})
    result = scep.enroll(make_csr(key, "CN=dev", "x"), key, scep_ca.certificate)
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)


class OnlyEvenChallenges:
    """A plugged-in validator: accepts challenges that are even numbers."""

    seen: list[str] = []

    def __init__(self, alias):
        self.alias = alias

    def validate(self, ctx):
        OnlyEvenChallenges.seen.append(ctx.challenge_password)
        if not ctx.challenge_password.isdigit() or int(ctx.challenge_password) % 2:
            raise ChallengeRefused("odd")

    def notify_success(self, ctx, certificate_der):
        pass

    def notify_failure(self, ctx, reason):
        pass


def test_pluggable_validator(scep, scep_ca, alias_factory):
    alias_factory(operation_mode="ra", ra_default_ca=scep_ca, ra_auth_password="ignored",
                  challenge_validator=f"{__name__}.OnlyEvenChallenges")
    key = client_key(73)
    assert scep.enroll(make_csr(key, "CN=even", "42"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    assert scep.enroll(make_csr(key, "CN=odd", "41"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert OnlyEvenChallenges.seen[-2:] == ["42", "41"]
