"""RA portal forms (issue 16): every error at once with the typed values kept, the CSR pre-fill endpoint (who may
call it, what it refuses, what it fills), editing an end entity and re-enrollment in one step (through the
"Add/Edit End Entity" approval where it applies), and a download that names what was issued."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from django.test import Client

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models.approvals import ApprovalAction, ApprovalRequest
from pki.services import approvals
from pki.x509.dn import parse_dn
from tests.endentities import entities_support
from tests.endentities import test_ra_portal_enroll as enroll_tests
from tests.pki.test_forms_errors import summary_links
from tests.pki.test_views_auth import ui_client

ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory
# The RA portal tests' RA Administrator client and "Web servers" certificate type.
ra, web_profile, request_data = enroll_tests.ra, enroll_tests.web_profile, enroll_tests.request_data
AUDITOR_RULES = enroll_tests.AUDITOR_RULES
CSR_URL = "/ra/enroll/csr-subject/"


def csr_pem(dn: str, dns: tuple[str, ...] = ()) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(parse_dn(dn))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_make_new_request_lists_every_error_and_keeps_what_was_typed(ra, web_profile):
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}",
                request_data(web_profile, username="kept-name", dn_0="", password_confirm="other",
                             **{"key-csr_pem": "not a request"}))
    html = r.content.decode()
    assert r.status_code == 400
    links = summary_links(html)
    assert {"id_dn_0", "id_key-csr_pem"} <= set(links), links
    assert 'value="kept-name"' in html and "not a request" in html
    assert "foo123" not in html  # passwords are never sent back
    assert not EndEntity.objects.filter(username="kept-name").exists()


def test_csr_prefill_fills_the_inputs_of_the_certificate_type(ra, web_profile):
    pem = csr_pem("CN=web9.shop.example,OU=Mail,O=Shop AB", dns=("web9.shop.example",))
    r = ra.post(CSR_URL, {"profile": web_profile.pk, "csr": pem})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["fields"]["dn_0"] == "web9.shop.example" and body["fields"]["dn_1"] == "Mail"
    assert "CN=web9.shop.example" in body["subject_dn"] and "web9.shop.example" in body["alt_names"]


@pytest.mark.parametrize(("csr", "message"), [
    ("", "Paste or upload"),
    ("garbage", "not a valid PKCS#10"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----", "not a valid PKCS#10"),
    ("A" * 70000, "too large"),
])
def test_csr_prefill_refuses_what_is_not_a_request(ra, web_profile, csr, message):
    r = ra.post(CSR_URL, {"profile": web_profile.pk, "csr": csr})
    assert r.status_code == 400 and message in r.json()["error"]


def test_csr_prefill_refuses_callers_without_the_right(db, ra, web_profile):
    pem = csr_pem("CN=x")
    assert Client().post(CSR_URL, {"profile": web_profile.pk, "csr": pem}).status_code == 302  # to the login
    auditor = ui_client("csr-auditor", AUDITOR_RULES)
    assert auditor.post(CSR_URL, {"profile": web_profile.pk, "csr": pem}).status_code == 403
    # the rule to make requests, but not with this certificate type (or none named)
    other = ui_client("csr-other", ["/ra_functionality/create_end_entity", "/ca_functionality/create_certificate"])
    assert other.post(CSR_URL, {"profile": web_profile.pk, "csr": pem}).status_code == 403
    assert ra.post(CSR_URL, {"profile": "x", "csr": pem}).status_code == 403
    assert ra.get(CSR_URL).status_code == 405


def test_ra_staff_edit_an_end_entity_their_role_allows(ra, entity_factory, ee_profile):
    ee = entity_factory("editme", subject_dn="CN=editme,O=Test,C=SE")
    page = ra.get(f"/ra/endentities/{ee.pk}/").content.decode()
    assert f"/ra/endentities/{ee.pk}/edit/" in page and f"/ra/endentities/{ee.pk}/reenroll/" in page
    form = ra.get(f"/ra/endentities/{ee.pk}/edit/")
    assert form.status_code == 200 and 'value="editme"' in form.content.decode()
    data = {k: v for k, v in form.context["form"].initial.items() if v is not None}
    data.update({"email": "editme@example.com"} if "email" in form.context["form"].fields else {})
    data["dn_0"] = "editme-renamed"
    r = ra.post(f"/ra/endentities/{ee.pk}/edit/", data)
    assert r.status_code == 302, r.content.decode()[:2000]
    assert "CN=editme-renamed" in EndEntity.objects.get(pk=ee.pk).subject_dn
    viewer = ui_client("ra-viewer", ["/ra_functionality/view_end_entity", "/endentityprofilesrules", "/ca"])
    assert viewer.get(f"/ra/endentities/{ee.pk}/edit/").status_code == 403
    assert f"/ra/endentities/{ee.pk}/edit/" not in viewer.get(f"/ra/endentities/{ee.pk}/").content.decode()


def test_reenroll_is_one_step_new_code_and_status_new(ra, entity_factory):
    from endentities import services

    ee = entity_factory("again", subject_dn="CN=again,O=Test,C=SE")
    EndEntity.objects.filter(pk=ee.pk).update(status=EndEntityStatus.GENERATED)
    bad = ra.post(f"/ra/endentities/{ee.pk}/reenroll/", {"password": "new-code-1", "password_confirm": "x"})
    assert bad.status_code == 400 and summary_links(bad.content.decode()) == ["id_password_confirm"]
    r = ra.post(f"/ra/endentities/{ee.pk}/reenroll/", {"password": "new-code-1", "password_confirm": "new-code-1"})
    assert r.status_code == 302
    assert EndEntity.objects.get(pk=ee.pk).status == EndEntityStatus.NEW
    csr = x509.load_pem_x509_csr(csr_pem("CN=again,O=Test,C=SE").encode())
    issued = services.enroll("again", "new-code-1", csr=csr, interface="ra")
    assert issued.row.username == "again"


def test_reenroll_waits_for_approval_where_it_applies(ra, actor, entity_factory, root_ca):
    ee = entity_factory("waits", subject_dn="CN=waits,O=Test,C=SE")
    EndEntity.objects.filter(pk=ee.pk).update(status=EndEntityStatus.GENERATED)
    profile = approvals.save_profile(actor, name="One", approvals_required=1, request_expiration=3600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=root_ca)
    r = ra.post(f"/ra/endentities/{ee.pk}/reenroll/", {"password": "mine-now-123", "password_confirm": "mine-now-123"},
                follow=True)
    assert "approv" in r.content.decode().lower()
    req = ApprovalRequest.objects.get(operation="set_status")
    assert "mine-now-123" not in str(req.data)
    assert EndEntity.objects.get(pk=ee.pk).status == EndEntityStatus.GENERATED  # nothing changed yet


def test_keystore_download_names_the_issued_certificate(ra, web_profile):
    r = ra.post(f"/ra/enroll/?profile={web_profile.pk}",
                request_data(web_profile, username="p12user", **{"key-token_type": "2"}))
    assert r.status_code == 200 and r["Content-Disposition"].startswith("attachment")
    from pki.models import Certificate

    assert r["X-Issued-Serial"] == Certificate.objects.get(username="p12user").serial.upper()


def test_every_broken_profile_rule_is_named_at_once(ra, ee_profile_factory, root_ca):
    """Rules the services check (password strength, DN validation regex, alt-name rules) all show on one submit."""
    profile = ee_profile_factory(
        "Strict", ca=root_ca, password_min_strength_bits=80,
        subject_dn_fields=[{"type": "CN", "required": True, "modifiable": True, "validation": "^[a-z]+$"}],
        subject_alt_name_fields=[{"type": "DNSNAME", "required": False, "modifiable": True,
                                  "validation": "^[a-z.]+\\\\.example$"}])
    data = {"username": "strict1", "password": "short1", "password_confirm": "short1", "dn_0": "UPPER",
            "san_0": "www.other.test", "ca": str(root_ca.pk),
            "certificate_profile": str(profile.default_certificate_profile_id), "key-token_type": "1",
            "key-key_algorithm": "P-256", "key-certificate_format": "pem",
            "key-csr_pem": csr_pem("CN=x")}
    r = ra.post(f"/ra/enroll/?profile={profile.pk}", data)
    assert r.status_code == 400
    assert set(summary_links(r.content.decode())) == {"id_password", "id_dn_0", "id_san_0"}
    assert not EndEntity.objects.filter(username="strict1").exists()
