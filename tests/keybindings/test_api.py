"""REST under /api/v1/keybindings/: the whole life of a binding, refusals in the API's error shape, rules."""

from __future__ import annotations

import pytest
from cryptography import x509

from keybindings.models import InternalKeyBinding
from tests.pki.test_api_auth import fast_password_hashing, make_client, superadmin_client  # noqa: F401

API = "/api/v1/keybindings/"


@pytest.fixture
def api(db):
    return superadmin_client()


def test_create_issue_activate_renew_certificate_delete(api, kb_token, root_ca):
    r = api.post(API, {"name": "peer", "type": "AuthenticationKeyBinding", "crypto_token": kb_token.name,
                       "key_spec": "P-256", "trusted_certificates": [{"ca": root_ca.name, "serial": ""}],
                       "protocol_and_cipher_suites": ["TLSv1.2;TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]},
                 format="json")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] == "DISABLED" and body["certificate"]["state"] == "NONE"
    assert body["trusted_certificates"] == [{"ca_id": root_ca.pk, "serial": ""}]

    r = api.post(f"{API}peer/issue", {"ca": root_ca.name, "certificate_profile": "SERVER"}, format="json")
    assert r.status_code == 400 and "clientAuth" in r.json()["error_message"]
    assert set(r.json()) == {"error_code", "error_message"}
    r = api.put(f"{API}peer/status", {"status": "ACTIVE"}, format="json")
    assert r.status_code == 400 and "no certificate" in r.json()["error_message"]

    r = api.post(f"{API}peer/issue", {"ca": root_ca.name, "certificate_profile": "ENDUSER"}, format="json")
    assert r.status_code == 200 and r.json()["certificate"]["state"] == "VALID"
    first = r.json()["certificate"]["serial"]
    assert api.put(f"{API}peer/status", {"status": "ACTIVE"}, format="json").json()["status"] == "ACTIVE"

    r = api.post(f"{API}peer/renew", {}, format="json")
    assert r.status_code == 200 and r.json()["certificate"]["serial"] != first
    assert r.json()["next_key_pair_alias"] == ""

    pem = api.get(f"{API}peer/certificate").json()["certificate"]
    assert format(x509.load_pem_x509_certificate(pem.encode()).serial_number, "x") == r.json()["certificate"]["serial"]
    csr = api.post(f"{API}peer/csr", {"subject_dn": "CN=peer"}, format="json").json()["csr"]
    assert x509.load_pem_x509_csr(csr.encode()).is_signature_valid

    assert [b["name"] for b in api.get(API, {"type": "AuthenticationKeyBinding"}).json()] == ["peer"]
    assert api.get(API, {"type": "OcspKeyBinding"}).json() == []
    assert api.delete(f"{API}peer/").status_code == 204
    assert api.get(f"{API}peer/").status_code == 404


def test_import_through_the_api(api, actor, kb_token, root_ca, cert_for):
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtendedKeyUsageOID

    api.post(API, {"name": "resp", "type": "OcspKeyBinding", "crypto_token": kb_token.name, "key_spec": "P-256"},
             format="json")
    binding = InternalKeyBinding.objects.get(name="resp")
    wrong = cert_for(binding, root_ca, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)).public_bytes(Encoding.PEM).decode()
    r = api.post(f"{API}resp/import", {"certificate": wrong}, format="json")
    assert r.status_code == 400 and "OCSPSigning" in r.json()["error_message"]
    right = cert_for(binding, root_ca, eku=(ExtendedKeyUsageOID.OCSP_SIGNING,)).public_bytes(Encoding.PEM).decode()
    r = api.post(f"{API}resp/import", {"certificate": right}, format="json")
    assert r.status_code == 200 and r.json()["certificate"]["state"] == "VALID"


@pytest.mark.parametrize(("rules", "method", "path", "status"), [
    ([], "get", API, 403),
    (["/internalkeybinding/view"], "post", API, 403),
    (["/internalkeybinding/view"], "delete", f"{API}guarded/", 403),
    (["/internalkeybinding/view", "/internalkeybinding/modify"], "delete", f"{API}guarded/", 403),
    (["/internalkeybinding/view"], "put", f"{API}guarded/status", 403),
    (["/internalkeybinding/view"], "get", f"{API}guarded/", 200),
])
def test_access_rules(db, actor, kb_token, rules, method, path, status):
    from keybindings import services

    services.create_binding(actor, name="guarded", binding_type="AuthenticationKeyBinding", crypto_token=kb_token,
                            key_spec="P-256")
    client = make_client("limited", rules)
    body = {"name": "x", "type": "AuthenticationKeyBinding", "crypto_token": kb_token.name, "key_spec": "P-256",
            "status": "DISABLED"}
    call = getattr(client, method)
    r = call(path, body, format="json") if method in ("post", "put") else call(path)
    assert r.status_code == status
    assert InternalKeyBinding.objects.filter(name="guarded").exists()
    assert not InternalKeyBinding.objects.filter(name="x").exists()


@pytest.mark.parametrize("body", [
    {"name": "", "type": "AuthenticationKeyBinding", "crypto_token": "KbToken", "key_spec": "P-256"},
    {"name": "y", "type": "Peer", "crypto_token": "KbToken", "key_spec": "P-256"},
    {"name": "y", "type": "AuthenticationKeyBinding", "crypto_token": "KbToken", "key_spec": "X9"},
    {"name": "y", "type": "AuthenticationKeyBinding", "crypto_token": "KbToken", "key_spec": "P-256",
     "protocol_and_cipher_suites": ["SSLv3;TLS_RSA_WITH_RC4_128_SHA"]},
    {"name": "y", "type": "AuthenticationKeyBinding", "crypto_token": "KbToken", "key_spec": "P-256",
     "trusted_certificates": [{"ca": "Nope"}]},
])
def test_bad_input_is_a_400_and_changes_nothing(api, kb_token, body):
    r = api.post(API, body, format="json")
    assert r.status_code == 400, r.json()
    assert set(r.json()) == {"error_code", "error_message"}
    assert not InternalKeyBinding.objects.exists()
    assert not kb_token.key_pairs.exists()


def test_list_costs_the_same_queries_for_one_or_many_bindings(api, actor, kb_token, root_ca):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from keybindings import services
    from pki.models import CertificateProfile

    def make(name):
        b = services.create_binding(actor, name=name, binding_type="AuthenticationKeyBinding", crypto_token=kb_token,
                                    key_spec="P-256")
        services.issue_certificate(actor, b, ca=root_ca, profile=CertificateProfile.objects.get(name="ENDUSER"))

    make("one")
    api.get(API)  # warm caches (roles, prepared statements)
    with CaptureQueriesContext(connection) as one:
        assert len(api.get(API).json()) == 1
    for i in range(4):
        make(f"more{i}")
    with CaptureQueriesContext(connection) as five:
        assert len(api.get(API).json()) == 5
    assert len(five) == len(one)
