"""EJBCA's v1 certificate resource (revoke, revocation status) and the native reads of one certificate."""

from urllib.parse import quote

import pytest
from cryptography import x509

from pki.choices import RevocationReason
from pki.models import AuditEvent, Certificate
from tests.pki.test_api_auth import (
    V1,
    dn,
    fast_password_hashing,  # noqa: F401 (autouse fixture)
    make_client,
    server_leaf,
    superadmin_client,
)

# EJBCA's RevokeStatusRestResponse fields
REVOKE_STATUS_FIELDS = {"issuer_dn", "serial_number", "revocation_reason", "revocation_date", "message", "revoked"}


@pytest.fixture
def api(db):
    return superadmin_client()


@pytest.fixture
def leaf(sub_ca, actor, csr_factory):
    return server_leaf(sub_ca, actor, csr_factory)


def test_status(api):
    assert api.get(f"{V1}/certificate/status").json()["status"] == "OK"


def test_revocation_status_of_a_valid_certificate(api, sub_ca, leaf):
    serial = leaf.serial.upper()
    r = api.get(f"{V1}/certificate/{dn(sub_ca)}/{serial}/revocationstatus")
    assert r.status_code == 200
    # EJBCA repeats the path values and leaves out the date (and a message) when there is none
    assert r.json() == {"issuer_dn": sub_ca.subject_dn, "serial_number": serial,
                        "revocation_reason": "NOT_REVOKED", "revoked": False}


@pytest.mark.parametrize(
    ("reason", "stored", "ejbca_name", "status"),
    [
        ("UNSPECIFIED", RevocationReason.UNSPECIFIED, "UNSPECIFIED", "REVOKED"),
        ("KEY_COMPROMISE", RevocationReason.KEY_COMPROMISE, "KEY_COMPROMISE", "REVOKED"),
        ("CA_COMPROMISE", RevocationReason.CA_COMPROMISE, "CA_COMPROMISE", "REVOKED"),
        ("AFFILIATION_CHANGED", RevocationReason.AFFILIATION_CHANGED, "AFFILIATION_CHANGED", "REVOKED"),
        ("SUPERSEDED", RevocationReason.SUPERSEDED, "SUPERSEDED", "REVOKED"),
        ("CESSATION_OF_OPERATION", RevocationReason.CESSATION_OF_OPERATION, "CESSATION_OF_OPERATION", "REVOKED"),
        ("CERTIFICATE_HOLD", RevocationReason.CERTIFICATE_HOLD, "CERTIFICATE_HOLD", "ON_HOLD"),
        ("PRIVILEGES_WITHDRAWN", RevocationReason.PRIVILEGE_WITHDRAWN, "PRIVILEGES_WITHDRAWN", "REVOKED"),
        ("privilegeWithdrawn", RevocationReason.PRIVILEGE_WITHDRAWN, "PRIVILEGES_WITHDRAWN", "REVOKED"),
        ("AA_COMPROMISE", RevocationReason.AA_COMPROMISE, "AA_COMPROMISE", "REVOKED"),
        ("keyCompromise", RevocationReason.KEY_COMPROMISE, "KEY_COMPROMISE", "REVOKED"),
        ("", RevocationReason.UNSPECIFIED, "UNSPECIFIED", "REVOKED"),
    ],
)
def test_revoke_with_each_reason(api, sub_ca, leaf, reason, stored, ejbca_name, status):
    serial = leaf.serial.upper()
    r = api.put(f"{V1}/certificate/{dn(sub_ca)}/{serial}/revoke?reason={reason}&date=2026-01-01T00:00:00Z")
    assert r.status_code == 200, r.content
    assert set(r.json()) == REVOKE_STATUS_FIELDS
    assert r.json() == {"issuer_dn": sub_ca.subject_dn, "serial_number": serial, "revocation_reason": ejbca_name,
                        "revocation_date": "2026-01-01T00:00:00Z", "message": "Successfully revoked",
                        "revoked": True}
    row = Certificate.objects.get(pk=leaf.pk)
    assert (row.status, row.revocation_reason) == (status, int(stored))
    after = api.get(f"{V1}/certificate/{dn(sub_ca)}/{serial}/revocationstatus").json()
    assert (after["revoked"], after["revocation_reason"], after["revocation_date"]) == (
        True, ejbca_name, "2026-01-01T00:00:00Z")
    assert AuditEvent.objects.filter(event_type="CERT_REVOKED", actor="apiadmin", object_id=leaf.serial).count() == 1


def test_revoke_twice_is_409(api, sub_ca, leaf):
    url = f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke"
    assert api.put(url + "?reason=KEY_COMPROMISE").status_code == 200
    again = api.put(url + "?reason=KEY_COMPROMISE")
    assert again.status_code == 409
    assert again.json() == {"error_code": 409, "error_message": again.json()["error_message"]}
    assert "already revoked" in again.json()["error_message"]


def test_hold_then_release_then_revoke(api, sub_ca, leaf):
    base = f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}"
    assert api.put(f"{base}/revoke?reason=CERTIFICATE_HOLD").json()["revocation_reason"] == "CERTIFICATE_HOLD"
    assert api.put(f"{base}/revoke?reason=CERTIFICATE_HOLD").status_code == 409
    released = api.put(f"{base}/revoke?reason=REMOVE_FROM_CRL").json()
    assert (released["revoked"], released["revocation_reason"], released["message"]) == (
        False, "NOT_REVOKED", "Successfully reactivated")
    assert Certificate.objects.get(pk=leaf.pk).status == "ACTIVE"
    # EJBCA's NOT_REVOKED also lifts a hold; on a certificate that is not on hold it conflicts
    assert api.put(f"{base}/revoke?reason=NOT_REVOKED").status_code == 409
    assert api.put(f"{base}/revoke?reason=CERTIFICATE_HOLD").status_code == 200
    assert api.put(f"{base}/revoke?reason=NOT_REVOKED").json()["revoked"] is False
    final = api.put(f"{base}/revoke?reason=KEY_COMPROMISE").json()
    assert (final["revoked"], final["revocation_reason"]) == (True, "KEY_COMPROMISE")


@pytest.mark.parametrize("serial_form", ["upper", "lower", "0x", "leading-zeros", "colons"])
def test_serial_number_forms(api, sub_ca, leaf, serial_form):
    serial = {
        "upper": leaf.serial.upper(), "lower": leaf.serial, "0x": "0x" + leaf.serial,
        "leading-zeros": "00" + leaf.serial,
        "colons": ":".join(leaf.serial.zfill(len(leaf.serial) + len(leaf.serial) % 2)[i:i + 2]
                           for i in range(0, len(leaf.serial) + len(leaf.serial) % 2, 2)),
    }[serial_form]
    r = api.get(f"{V1}/certificate/{dn(sub_ca)}/{serial}/revocationstatus")
    assert r.status_code == 200 and r.json()["serial_number"] == serial


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("put", "/certificate/{ca}/zz-not-hex/revoke", 400, "Invalid serial number"),
        ("get", "/certificate/{ca}/-1f/revocationstatus", 400, "Invalid serial number"),
        ("put", "/certificate/{ca}/abcdef/revoke", 404, "No certificate"),
        ("get", "/certificate/{ca}/abcdef/revocationstatus", 404, "No certificate"),
        ("put", "/certificate/{ca}/{serial}/revoke?reason=BORED", 400, "Invalid revocation reason 'BORED'"),
        ("put", "/certificate/{ca}/{serial}/revoke?reason=7", 400, "Invalid revocation reason"),
        ("put", "/certificate/{ca}/{serial}/revoke?date=yesterday", 400, "ISO 8601"),
        ("put", "/certificate/{ca}/{serial}/revoke?date=2026-13-45T00:00:00Z", 400, "ISO 8601"),
        ("put", "/certificate/{ca}/{serial}/revoke?date=2999-01-01T00:00:00Z", 400, "future"),
        ("put", "/certificate/{ca}/{serial}/revoke?invalidity_date=soon", 400, "ISO 8601"),
        ("get", "/certificate/{nobody}/{serial}/revocationstatus", 404, "does not exist"),
        ("put", "/certificate/{nobody}/{serial}/revoke", 404, "does not exist"),
        ("get", "/certificate/{malformed}/{serial}/revocationstatus", 404, "does not exist"),
        ("get", "/certificate/%C2%B2/{serial}/revocationstatus", 404, "does not exist"),
        ("get", "/certificate/99999999999999999999/{serial}/revocationstatus", 404, "does not exist"),
        ("post", "/certificate/{ca}/{serial}/revoke", 405, "not allowed"),
    ],
)
def test_certificate_errors_are_json(api, sub_ca, leaf, method, path, status, message):
    url = V1 + path.format(ca=dn(sub_ca), serial=leaf.serial, nobody=quote("CN=Nobody", safe=""),
                           malformed=quote("CN=x,,", safe=""))
    r = getattr(api, method)(url)
    assert r.status_code == status, r.content
    body = r.json()
    assert set(body) == {"error_code", "error_message"} and body["error_code"] == status
    assert message in body["error_message"]
    assert Certificate.objects.get(pk=leaf.pk).status == "ACTIVE"


def test_revoke_without_date_is_now_and_by_name(api, sub_ca, leaf):
    r = api.put(f"{V1}/certificate/TestSub/{leaf.serial}/revoke?reason=SUPERSEDED&invalidity_date=2026-01-01T00:00Z")
    assert r.status_code == 200
    body = r.json()
    assert body["issuer_dn"] == "TestSub" and body["revocation_date"].endswith("Z")
    row = Certificate.objects.get(pk=leaf.pk)
    assert body["revocation_date"] == row.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- native reads ----------------------------------------------------------------------------------


def test_read_by_fingerprint(api, sub_ca, leaf):
    r = api.get(f"/api/v1/certificates/{leaf.fingerprint_sha256}/")
    assert r.status_code == 200
    body = r.json()
    assert body["subject_dn"] == "CN=api-leaf,O=Test" and body["ca"] == "TestSub" and body["ca_id"] == sub_ca.pk
    assert (body["status"], body["revoked"], body["revocation_reason"]) == ("ACTIVE", False, "NOT_REVOKED")
    assert body["serial_number"] == leaf.serial.upper() and body["certificate_profile"] == "SERVER"
    assert body["username"] == "apiuser" and body["issuer_dn"] == sub_ca.subject_dn and body["is_ca"] is False
    parsed = x509.load_pem_x509_certificate(body["pem"].encode())
    assert parsed.serial_number == leaf.serial_int
    assert body["not_after"] == parsed.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    colons = ":".join(leaf.fingerprint_sha256[i:i + 2] for i in range(0, 64, 2)).upper()
    assert api.get(f"/api/v1/certificates/{colons}/").json()["fingerprint_sha256"] == leaf.fingerprint_sha256


def test_read_by_ca_and_serial_shows_revocation(api, sub_ca, leaf):
    api.put(f"{V1}/certificate/{dn(sub_ca)}/{leaf.serial}/revoke?reason=KEY_COMPROMISE")
    for ca_ref in ("TestSub", dn(sub_ca), str(sub_ca.pk)):
        body = api.get(f"/api/v1/cas/{ca_ref}/certificates/0x{leaf.serial.upper()}/").json()
        assert body["fingerprint_sha256"] == leaf.fingerprint_sha256
        assert (body["status"], body["revoked"], body["revocation_reason"]) == ("REVOKED", True, "KEY_COMPROMISE")
        assert body["revocation_date"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/certificates/00ff/", 400),
        ("/api/v1/certificates/" + "0" * 64 + "/", 404),
        ("/api/v1/cas/TestSub/certificates/xyz/", 400),
        ("/api/v1/cas/TestSub/certificates/abcdef/", 404),
        ("/api/v1/cas/Nobody/certificates/abcdef/", 404),
    ],
)
def test_native_read_errors(api, sub_ca, path, status):
    r = api.get(path)
    assert r.status_code == status and r.json()["error_code"] == status


def test_native_read_of_a_certificate_of_a_hidden_ca_answers_as_a_missing_one(db, root_ca, sub_ca, leaf):
    rootonly = make_client("rootonly", ["/ca_functionality/view_certificate", f"/ca/{root_ca.pk}"])
    r = rootonly.get(f"/api/v1/certificates/{leaf.fingerprint_sha256}/")
    missing = rootonly.get(f"/api/v1/certificates/{'0' * 64}/")
    assert r.status_code == missing.status_code == 404
    assert r.json()["error_message"].replace(leaf.fingerprint_sha256, "x") == \
        missing.json()["error_message"].replace("0" * 64, "x")
    assert rootonly.get(f"/api/v1/cas/TestSub/certificates/{leaf.serial}/").status_code == 403
    viewer_without_rule = make_client("nocert", [f"/ca/{sub_ca.pk}"])
    r = viewer_without_rule.get(f"/api/v1/certificates/{leaf.fingerprint_sha256}/")
    assert r.status_code == 403 and "/ca_functionality/view_certificate" in r.json()["error_message"]

