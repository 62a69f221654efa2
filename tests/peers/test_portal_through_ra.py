"""The RA portal at an RA node: each page is queued at the RA, carried by a connector (a thread here), answered by the
CA's own portal view as the operator's client certificate, and shown by the RA: Make New Request with a CSR and
with a keystore generated on the CA, search, revoke; the CSRF token of the RA works on forms the CA rendered;
refusals are pages, not errors; a CA that does not answer gives a page that says so."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.test import Client

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from peers.models import PeerWorkItem
from pki.models import AuditEvent, Certificate
from tests.endentities import entities_support
from tests.endentities.test_ra_portal_enroll import RA_ADMIN_RULES, _csr_pem, request_data

from .conftest import csrf_token

ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory
DB = pytest.mark.django_db(transaction=True)  # the held page waits on another connection for the carrier's answer


@pytest.fixture
def web_profile(ee_profile_factory, root_ca):
    return ee_profile_factory(
        "Web servers", ca=root_ca, subject_dn_fields=[{"type": "CN", "required": True, "modifiable": True},
                                                      {"type": "OU", "modifiable": False, "value": "Web;Mail"},
                                                      {"type": "O", "modifiable": False, "value": "Shop AB"}],
        subject_alt_name_fields=[{"type": "DNSNAME", "use_entity_cn": True}],
        available_token_types=[1, 2, 4], default_token_type=1, password_required=True)


@DB
def test_make_new_request_with_a_csr_and_the_message_on_the_next_page(ra_portal, portal_carrier, cert_operator,
                                                                      web_profile, csr_factory, tracebacks):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    page = op.get(f"/ra/enroll/?profile={web_profile.pk}")
    assert page.status_code == 200 and 'name="key-csr_pem"' in page.content.decode()
    data = request_data(web_profile, **{"key-csr_pem": _csr_pem(csr_factory), "key-certificate_format": "der"})
    token = csrf_token(page.content.decode())
    r = op.post(f"/ra/enroll/?profile={web_profile.pk}", {**data, "csrfmiddlewaretoken": token})
    assert r.status_code == 302, r.content.decode()[-2000:]
    cert = Certificate.objects.get(username="web1")
    assert r["Location"] == f"/ra/certificates/{cert.pk}/?format=der"
    assert EndEntity.objects.get(username="web1").status == EndEntityStatus.GENERATED
    # The CA queued "Certificate issued" for the next page: the RA kept it and carried it with that page.
    shown = op.get(r["Location"]).content.decode()
    assert "Certificate issued to &#x27;web1&#x27;" in shown, shown[-3000:]
    events = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__kind="portal.page")
    assert {(e.actor, e.details["requester"].split(" (")[0]) for e in events} == {("peer:dmz-ra", "ra-op")}
    assert AuditEvent.objects.get(event_type="CERT_CREATION", object_id=cert.serial).actor.startswith("ra-op (")
    assert not tracebacks.records


@DB
def test_make_new_request_with_a_keystore_generated_on_the_ca(ra_portal, portal_carrier, cert_operator, web_profile):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    token = csrf_token(op.get(f"/ra/enroll/?profile={web_profile.pk}").content.decode())
    r = op.post(f"/ra/enroll/?profile={web_profile.pk}",
                {**request_data(web_profile, **{"key-token_type": "2", "key-key_algorithm": "P-256"}),
                 "csrfmiddlewaretoken": token})
    assert r.status_code == 200 and r["Content-Type"] == "application/x-pkcs12", r.content[-2000:]
    assert 'filename="web1.p12"' in r["Content-Disposition"]
    key, cert, _ = pkcs12.load_key_and_certificates(r.content, b"foo123")
    assert cert.public_key() == key.public_key()
    assert Certificate.objects.get(username="web1").serial == format(cert.serial_number, "x")


@DB
def test_search_and_revoke(ra_portal, portal_carrier, cert_operator, entity_factory):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    anna = entity_factory("anna")
    entity_factory("otto")
    found = op.get("/ra/endentities/?text=ann")
    assert found.status_code == 200
    html = found.content.decode()
    assert "CN=anna" in html and "CN=otto" not in html
    detail = op.get(f"/ra/endentities/{anna.pk}/").content.decode()
    r = op.post(f"/ra/endentities/{anna.pk}/revoke/", {"reason": "4", "csrfmiddlewaretoken": csrf_token(detail)})
    assert r.status_code == 302
    anna.refresh_from_db()
    assert anna.status == EndEntityStatus.REVOKED


@DB
def test_an_operator_without_the_right_sees_the_cas_refusal(ra_portal, portal_carrier, cert_operator, web_profile):
    op = cert_operator("viewer", ["/ra_functionality/view_end_entity"])
    r = op.get(f"/ra/enroll/?profile={web_profile.pk}")
    assert r.status_code == 403 and "/ra_functionality/create_end_entity" in r.content.decode()


@pytest.mark.django_db
def test_a_post_without_the_ras_csrf_token_is_refused_at_the_ra(ra_portal, cert_operator, web_profile):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    r = op.post(f"/ra/enroll/?profile={web_profile.pk}", request_data(web_profile))
    assert r.status_code == 403 and not PeerWorkItem.objects.exists()


@pytest.mark.django_db
def test_no_certificate_no_carrying(ra_portal, web_profile):
    r = Client().get("/ra/enroll/")  # on to the RA portal's login (tests/peers/test_ra_login.py)
    assert r.status_code == 302 and r["Location"] == "/ra/login/?next=%2Fra%2Fenroll%2F"
    r = Client().post("/ra/enroll/", {})
    assert r.status_code == 403 and "client certificate" in r.content.decode()
    assert not PeerWorkItem.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "message"), [
    ("get", "Try again in a moment"),
    ("post", "search for it before you send it again"),
])
def test_a_ca_that_does_not_answer_gives_a_clear_page(ra_node, cert_operator, web_profile, method, message):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.3
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    op = Client(**{k: v for k, v in op.defaults.items()})  # this test is about the CA, not CSRF
    r = getattr(op, method)(f"/ra/enroll/?profile={web_profile.pk}", *([request_data(web_profile)] if
                                                                       method == "post" else []))
    assert r.status_code == 503 and r["Retry-After"]
    html = r.content.decode()
    assert "The CA did not answer in time" in html and message in html
    # Neither the operator's identity nor the RA session's CSRF secret stays in the RA's database.
    assert not {"identity", "csrf"} & set(PeerWorkItem.objects.get().payload)


@pytest.mark.django_db
@pytest.mark.parametrize(("change", "status"), [
    ({"path": "/ra/login/"}, 404),  # a portal page, but the RA's own (its login), never carried
    ({"path": "/system/peers/"}, 400),  # not the portal at all
    ({"path": "/ra/../system/peers/"}, 404),
    ({"method": "DELETE"}, 400),
    ({"body": "!!"}, 400),
    ({"identity": {"authorization": "Basic YTpi"}}, 400),  # the portal carries certificates only
    ({"revoked": True}, 403),
    ({"path": "/ra/certificates/999999/"}, 404),  # the view's own Http404, as the CA answers it
    ({"path": "/ra/certificates/1/download/exe/"}, 404),
])
def test_bad_or_refused_carried_pages_are_pages(actor, peer_ca, csr_factory, peer_role, change, status, tracebacks):
    from cryptography.hazmat.primitives.serialization import Encoding

    from peers.carried_http import run_portal
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    csr, _ = csr_factory("CN=ra-op,O=Test")
    row = issue(IssuanceRequest(ca=peer_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                csr=csr, username="ra-op")).row
    peer_role(peer_ca, row.certificate, dict.fromkeys(RA_ADMIN_RULES, True))
    if change.pop("revoked", False):
        revoke(actor, row, 1)
    good = {"method": "GET", "path": "/ra/", "body": "",
            "identity": {"certificate": row.certificate.public_bytes(Encoding.PEM).decode()}}
    result = run_portal({**good, **change})
    assert result["status"] == status and result["content_type"].startswith("text/html")
    assert not tracebacks.records
    assert run_portal(good)["status"] == (403 if status == 403 else 200)  # the same caller, a good request
