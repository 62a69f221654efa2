"""Every operation of EJBCA CE's REST interface (``ejbca_operations.OPERATIONS``), replayed as a real request
against the live Django test client: a superadmin caller (HTTP Basic), CAs, profiles, an end entity, a crypto
token, built by fixtures. Each answer must carry the documented status and the documented JSON field names (no
more, none missing), or, for the operations this project answers otherwise on purpose, that documented answer.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from django.urls import get_resolver

from tests.endentities.entities_support import *  # noqa: F403  (ee_profile, entity_factory)
from tests.pki.test_api_auth import (
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    issue_cert,
    make_client,
    superadmin_client,
)

from .ejbca_operations import BINARY, EMPTY, OPERATIONS, Operation

BASE = "/ejbca/ejbca-rest-api"
# Operations being built in this session that were not committed when this table was: op key -> the URL name
# the route will have. Until that route exists, the operation is asserted to answer what a client gets today (a
# JSON 404 or 405); once routed it is replayed and checked like every other operation. Never skipped.
PENDING: dict[str, str] = {}


@dataclass
class Call:
    method: str
    url: str
    body: object = None
    format: str | None = "json"
    content_type: str | None = None


@dataclass
class World:
    """What the replays use."""

    api: object
    root_ca: object
    sub_ca: object
    ee_profile: object
    token: object
    actor: object
    csr_factory: Callable
    entity_factory: Callable

    def dn(self, ca=None) -> str:
        return quote((ca or self.root_ca).subject_dn, safe="")

    def pem_csr(self, dn: str) -> str:
        csr, _ = self.csr_factory(dn)
        return csr.public_bytes(Encoding.PEM).decode()

    def leaf(self, username: str = "bob"):
        return issue_cert(self.sub_ca, self.actor, self.csr_factory, f"CN={username},O=Test", username=username)


@pytest.fixture
def world(db, root_ca, sub_ca, ee_profile, soft_token_factory, actor, csr_factory, entity_factory) -> World:
    token = soft_token_factory("CompatToken", auth_code="compat-code")
    return World(superadmin_client(), root_ca, sub_ca, ee_profile, token, actor, csr_factory, entity_factory)


def _external_ca_and_crl(w: World) -> tuple[object, bytes]:
    """An external CA (imported for trust; its key is held here) and a CRL it signed."""
    from pki.services.cas import import_ca

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Compat External CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    ca = import_ca(w.actor, "CompatExternal", cert.public_bytes(Encoding.PEM))
    crl = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
           .next_update(now + dt.timedelta(days=1)).add_extension(x509.CRLNumber(7), critical=False)
           .sign(key, hashes.SHA256()))
    return ca, crl.public_bytes(Encoding.DER)


def _import_crl(w: World) -> Call:
    from django.test.client import encode_multipart

    ca, der = _external_ca_and_crl(w)
    boundary = "compatboundary"
    crl_file = io.BytesIO(der)
    crl_file.name = "ca.crl"
    body = encode_multipart(boundary, {"crlFile": crl_file, "crlPartitionIndex": "0"})
    return Call("POST", f"/v1/ca/{quote(ca.subject_dn, safe='')}/importcrl", body, format=None,
                content_type=f"multipart/form-data; boundary={boundary}")


def _finalize(w: World) -> Call:
    """An enrollment that waits for approval (202 with its request id), approved by a second administrator."""
    from pki.models.approvals import ApprovalAction
    from pki.services import approvals

    profile = approvals.save_profile(w.actor, name="CompatOne", approvals_required=1, request_expiration=3600)
    approvals.set_approval(w.actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=w.root_ca)
    r = w.api.post(f"{BASE}/v1/certificate/pkcs10enroll", {
        "certificate_request": w.pem_csr("CN=nina,O=Test,C=SE"), "certificate_profile_name": "ENDUSER",
        "end_entity_profile_name": "TestEEP", "certificate_authority_name": "TestRoot", "username": "nina",
        "password": "foo123"}, format="json")
    assert r.status_code == 202, r.content
    request_id = r.json()["request_id"]
    approver = make_client("approver", ["/ra_functionality/approve_end_entity", f"/ca/{w.root_ca.pk}"])
    assert approver.post(f"/api/v1/approvals/{request_id}/approve", {}, format="json").status_code == 200
    return Call("POST", f"/v1/certificate/{request_id}/finalize", {"response_format": "DER"})


def _configdump_import(w: World) -> Call:
    dump = w.api.get(f"{BASE}/v1/configdump").json()
    return Call("POST", "/v1/configdump?overwrite=skip", dump)


def _configdump_import_zip(w: World) -> Call:
    from django.test.client import encode_multipart

    data = w.api.get(f"{BASE}/v1/configdump/configdump.zip").content
    assert zipfile.is_zipfile(io.BytesIO(data))
    upload = io.BytesIO(data)
    upload.name = "configdump.zip"
    boundary = "compatboundary"
    body = encode_multipart(boundary, {"zipfile": upload, "overwrite": "skip"})
    return Call("POST", "/v1/configdump/configdump.zip", body, format=None,
                content_type=f"multipart/form-data; boundary={boundary}")


def _generated_key(w: World, alias: str = "compat-key") -> str:
    r = w.api.post(f"{BASE}/v1/cryptotoken/CompatToken/generatekeys",
                   {"key_pair_alias": alias, "key_alg": "EC", "key_spec": "P-256"}, format="json")
    assert r.status_code == 200, r.content
    return alias


def _deactivated_ca(w: World) -> str:
    assert w.api.put(f"{BASE}/v1/ca_management/{w.sub_ca.name}/deactivate").status_code == 200
    return w.sub_ca.name


def _setting_of_dump(w: World) -> tuple[str, str]:
    dump = w.api.get(f"{BASE}/v1/configdump").json()
    items = dump.get("certification-authorities") or []
    names = [item["name"] for item in items if isinstance(item, dict) and item.get("name")]
    assert names, f"the configuration dump names no CA: {list(dump)}"
    return "certification-authorities", names[0]


def _ee_body(**kw) -> dict:
    body = {"username": "carol", "password": "foo123", "subject_dn": "CN=carol,O=Test,C=SE", "email": "",
            "ca_name": "TestRoot", "certificate_profile_name": "ENDUSER", "end_entity_profile_name": "TestEEP",
            "token": "USERGENERATED"}
    body.update(kw)
    return body


REPLAYS: dict[str, Callable[[World], Call]] = {
    "ca_status": lambda w: Call("GET", "/v1/ca/status"),
    "ca_list": lambda w: Call("GET", "/v1/ca"),
    "ca_certificate_download": lambda w: Call("GET", f"/v1/ca/{w.dn(w.sub_ca)}/certificate/download"),
    "ca_latest_crl": lambda w: Call("GET", f"/v1/ca/{w.dn()}/getLatestCrl?deltaCrl=false"),
    "ca_create_crl": lambda w: Call("POST", f"/v1/ca/{w.dn()}/createcrl?deltacrl=false"),
    "ca_import_crl": _import_crl,
    "ca_management_status": lambda w: Call("GET", "/v1/ca_management/status"),
    "ca_management_activate": lambda w: Call("PUT", f"/v1/ca_management/{_deactivated_ca(w)}/activate"),
    "ca_management_deactivate": lambda w: Call("PUT", f"/v1/ca_management/{w.sub_ca.name}/deactivate"),
    "certificate_status": lambda w: Call("GET", "/v1/certificate/status"),
    "certificate_request": lambda w: (
        w.entity_factory("dora", password="foo123"),
        Call("POST", "/v1/certificate/certificaterequest", {
            "certificate_request": w.pem_csr("CN=dora,O=Test,C=SE"), "username": "dora", "password": "foo123",
            "include_chain": True, "certificate_authority_name": "TestRoot"}))[1],
    "certificate_finalize": _finalize,
    "certificate_enrollkeystore": lambda w: (
        w.entity_factory("kim", password="foo123", token_type="P12"),
        Call("POST", "/v1/certificate/enrollkeystore", {"username": "kim", "password": "foo123",
                                                        "key_alg": "EC", "key_spec": "secp256r1"}))[1],
    "certificate_pkcs10enroll": lambda w: Call("POST", "/v1/certificate/pkcs10enroll", {
        "certificate_request": w.pem_csr("CN=erin,O=Test,C=SE"), "certificate_profile_name": "ENDUSER",
        "end_entity_profile_name": "TestEEP", "certificate_authority_name": "TestRoot", "username": "erin",
        "password": "foo123", "include_chain": True}),
    "certificate_revoke": lambda w: Call(
        "PUT", f"/v1/certificate/{w.dn(w.sub_ca)}/{w.leaf().serial}/revoke?reason=KEY_COMPROMISE"),
    "certificate_revocation_status": lambda w: Call(
        "GET", f"/v1/certificate/{w.dn(w.sub_ca)}/{w.leaf().serial}/revocationstatus"),
    "certificate_expire": lambda w: (w.leaf(), Call("GET", "/v1/certificate/expire?days=3650&offset=0"
                                                    "&maxNumberOfResults=10"))[1],
    "certificate_search": lambda w: (w.leaf(), Call("POST", "/v1/certificate/search", {
        "max_number_of_results": 10, "criteria": [{"property": "QUERY", "value": "bob", "operation": "EQUAL"}]}))[1],
    "configdump_status": lambda w: Call("GET", "/v1/configdump/status"),
    "configdump_export": lambda w: Call("GET", "/v1/configdump"),
    "configdump_export_type": lambda w: Call("GET", f"/v1/configdump/{_setting_of_dump(w)[0]}"),
    "configdump_export_setting": lambda w: Call("GET", "/v1/configdump/{}/{}".format(
        *(quote(part, safe="") for part in _setting_of_dump(w)))),
    "configdump_export_zip": lambda w: Call("GET", "/v1/configdump/configdump.zip"),
    "configdump_import": _configdump_import,
    "configdump_import_zip": _configdump_import_zip,
    "cryptotoken_status": lambda w: Call("GET", "/v1/cryptotoken/status"),
    "cryptotoken_activate": lambda w: Call("PUT", "/v1/cryptotoken/CompatToken/activate",
                                           {"activation_code": "compat-code"}),
    "cryptotoken_deactivate": lambda w: Call("PUT", "/v1/cryptotoken/CompatToken/deactivate"),
    "cryptotoken_generatekeys": lambda w: Call("POST", "/v1/cryptotoken/CompatToken/generatekeys", {
        "key_pair_alias": "new-key", "key_alg": "RSA", "key_spec": "2048"}),
    "cryptotoken_removekeys": lambda w: Call("POST", f"/v1/cryptotoken/CompatToken/{_generated_key(w)}/removekeys"),
    "endentity_status": lambda w: Call("GET", "/v1/endentity/status"),
    "endentity_add": lambda w: Call("POST", "/v1/endentity", _ee_body()),
    "endentity_edit": lambda w: (w.entity_factory("frank"), Call("POST", "/v1/endentity/edit", _ee_body(
        username="frank", subject_dn="CN=frank,O=Edited,C=SE")))[1],
    "endentity_search": lambda w: (w.entity_factory("gina"), Call("POST", "/v1/endentity/search", {
        "max_number_of_results": 10, "criteria": [{"property": "QUERY", "value": "gina", "operation": "EQUAL"}]}))[1],
    "endentity_setstatus": lambda w: (w.entity_factory("hank"), Call("POST", "/v1/endentity/hank/setstatus", {
        "password": "foo456", "token": "USERGENERATED", "status": "NEW"}))[1],
    "endentity_revoke": lambda w: (w.entity_factory("ivy"), Call("PUT", "/v1/endentity/ivy/revoke",
                                                                 {"reason_code": 1, "delete": False}))[1],
    "endentity_delete": lambda w: (w.entity_factory("jack"), Call("DELETE", "/v1/endentity/jack"))[1],
    "ssh_status": lambda w: Call("GET", "/v1/ssh/status"),
    "ssh_pubkey": lambda w: Call("GET", "/v1/ssh/TestRoot/pubkey"),
    "etsi_validate": lambda w: Call("POST", "/etsi/v1/certificate/1/validate", {}),
    "system_service_run": lambda w: Call("PUT", "/v1/system/service/regenerate-crls/run"),
    "certificate_v2_status": lambda w: Call("GET", "/v2/certificate/status"),
    "certificate_v2_count": lambda w: Call("GET", "/v2/certificate/count?isActive=true"),
    "certificate_v2_search": lambda w: (w.leaf(), Call("POST", "/v2/certificate/search", {
        "pagination": {"page_size": 10, "current_page": 1}, "sort": {"property": "USERNAME", "operation": "ASC"},
        "criteria": [{"property": "QUERY", "value": "bob", "operation": "LIKE"}]}))[1],
    "certificate_v2_profile": lambda w: Call("GET", "/v2/certificate/profile/ENDUSER"),
    "certificate_v2_keyrecover": lambda w: Call(
        "PUT", f"/v2/certificate/{w.dn(w.sub_ca)}/{w.leaf().serial}/keyrecover"),
    "endentity_v2_status": lambda w: Call("GET", "/v2/endentity/status"),
    "endentity_v2_profiles_authorized": lambda w: Call("GET", "/v2/endentity/profiles/authorized"),
    "endentity_v2_profile": lambda w: Call("GET", "/v2/endentity/profile/TestEEP"),
    "endentity_v2_search": lambda w: (w.entity_factory("lena"), Call("POST", "/v2/endentity/search", {
        "max_number_of_results": 10, "current_page": 1, "sort_operation": {"property": "USERNAME", "operation": "ASC"},
        "criteria": [{"property": "QUERY", "value": "lena", "operation": "EQUAL"}]}))[1],
}


def _send(client, call: Call):
    url = BASE + call.url
    method = getattr(client, call.method.lower())
    if call.content_type:
        return method(url, call.body, content_type=call.content_type)
    if call.body is None:
        return method(url)
    return method(url, call.body, format=call.format)


def _check_shape(op: Operation, response) -> None:
    if op.body == EMPTY:
        assert not response.content.strip(), response.content[:200]
    elif op.body == BINARY:
        assert response.content, "an empty file"
    elif isinstance(op.body, frozenset) and not op.body and not response.content.strip():
        pass  # EJBCA's definition declares no response model here: an empty body is one of its answers
    elif op.body == "json":
        json.loads(response.content)  # EJBCA's dump is free-form JSON
    else:
        body = response.json()
        assert isinstance(body, dict), body
        missing = op.body - set(body)
        extra = set(body) - op.body - op.optional
        assert not missing and not extra, f"missing {sorted(missing)}, not in EJBCA's definition {sorted(extra)}"


def test_the_table_covers_every_operation_once():
    assert len(OPERATIONS) == len({op.key for op in OPERATIONS}) == len({(op.method, op.path) for op in OPERATIONS})
    assert set(REPLAYS) == {op.key for op in OPERATIONS} and set(PENDING) <= set(REPLAYS)


def _routed(url_name: str) -> bool:
    return url_name in get_resolver().reverse_dict


def _unbuilt_call(op: Operation) -> Call:
    return Call(op.method, re.sub(r"\{[a-z_]+\}", "x", op.path))


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.key)
def test_operation_answers_as_ejbca(world, tracebacks, op: Operation):
    if op.key in PENDING and not _routed(PENDING[op.key]):
        response = _send(world.api, _unbuilt_call(op))
        assert response.status_code in (404, 405), response.content[:300]
        assert set(response.json()) == {"error_code", "error_message"}
        return
    call = REPLAYS[op.key](world)
    assert call.method == op.method
    response = _send(world.api, call)
    assert response.status_code == op.status, (op.reason or op.path, response.content[:500])
    _check_shape(op, response)
    assert not tracebacks.records, [r.getMessage() for r in tracebacks.records]
