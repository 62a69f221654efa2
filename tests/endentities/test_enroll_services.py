"""Enrollment with username + enrollment code (and by an RA operator) through the issuance pipeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from endentities.services import EnrollmentDenied, enroll, enroll_with_ra, set_status
from pki.auth.access import Actor
from pki.choices import CertificateStatus
from pki.errors import AuthorizationDenied, ValidationError
from pki.models import AuditEvent, Certificate
from pki.x509.dn import format_dn

from .entities_support import *  # noqa: F403  (the shared fixtures)


def _ee(username: str) -> EndEntity:
    return EndEntity.objects.get(username=username)


def test_enroll_issues_registered_names_and_sets_generated(entity_factory, csr_factory):
    entity_factory("alice", password="foo123", subject_dn="CN=Alice,O=Test,C=SE",
                   subject_alt_name="DNSNAME=alice.example")
    # The CSR asks for other names: the registered ones win (the certificate profile allows no DN override).
    csr, _ = csr_factory("CN=Mallory,O=Evil", san=["evil.example"])
    issued = enroll("alice", "foo123", csr=csr, interface="rest")
    cert = issued.certificate
    assert format_dn(cert.subject) == "CN=Alice,O=Test,C=SE"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["alice.example"]
    ee = _ee("alice")
    assert (ee.status, ee.request_counter, ee.failed_login_count) == (EndEntityStatus.GENERATED, 0, 0)
    assert issued.row.username == "alice"
    creation = AuditEvent.objects.get(event_type="CERT_CREATION", object_id=issued.row.serial)
    assert creation.details["interface"] == "rest" and creation.details["end_entity_profile"] == "TestEEP"
    # One-time: the code is dead now.
    with pytest.raises(EnrollmentDenied):
        enroll("alice", "foo123", csr=csr, interface="rest")
    assert Certificate.objects.filter(username="alice").count() == 1


def test_unknown_user_and_wrong_code_say_the_same(entity_factory, csr_factory):
    entity_factory("bob", password="foo123")
    csr, _ = csr_factory("CN=bob")
    with pytest.raises(EnrollmentDenied) as unknown:
        enroll("nobody", "foo123", csr=csr, interface="rest")
    with pytest.raises(EnrollmentDenied) as wrong:
        enroll("bob", "bar456", csr=csr, interface="rest")
    assert unknown.value.message == wrong.value.message == "Wrong username or enrollment code."
    assert wrong.value.http_status == 403


@pytest.mark.django_db(transaction=True)
def test_wrong_codes_count_and_lock_at_maximum(ee_profile_factory, root_ca, entity_factory, csr_factory):
    """The failed-login counter commits although the enrollment fails; at the maximum the status is GENERATED."""
    strict = ee_profile_factory("Strict", ca=root_ca, max_failed_logins_use=True, max_failed_logins=3)
    entity_factory("carol", password="foo123", profile=strict)
    csr, _ = csr_factory("CN=carol")
    with pytest.raises(EnrollmentDenied):
        enroll("carol", "wrong1", csr=csr, interface="scep")
    assert (_ee("carol").failed_login_count, _ee("carol").status) == (1, EndEntityStatus.NEW)
    # A right code resets the counter.
    set_status(Actor.system_actor("t"), "carol", "NEW")
    EndEntity.objects.filter(username="carol").update(failed_login_count=1)
    for n in (1, 2):
        with pytest.raises(EnrollmentDenied):
            enroll("carol", f"wrong{n}", csr=csr, interface="scep")
    ee = _ee("carol")
    assert (ee.failed_login_count, ee.status) == (3, EndEntityStatus.GENERATED)
    with pytest.raises(EnrollmentDenied) as exc:
        enroll("carol", "foo123", csr=csr, interface="scep")
    assert "GENERATED" in exc.value.message
    assert not Certificate.objects.filter(username="carol").exists()
    assert AuditEvent.objects.filter(event_type="RA_AUTHENTICATION", object_id="carol", outcome="FAILURE").count() == 4


def test_success_resets_failed_logins(ee_profile_factory, root_ca, entity_factory, csr_factory):
    strict = ee_profile_factory("Strict", ca=root_ca, max_failed_logins_use=True, max_failed_logins=5)
    entity_factory("dave", password="foo123", profile=strict)
    EndEntity.objects.filter(username="dave").update(failed_login_count=4)
    csr, _ = csr_factory("CN=dave")
    enroll("dave", "foo123", csr=csr, interface="rest")
    assert _ee("dave").failed_login_count == 0


def test_allowed_requests(ee_profile_factory, root_ca, entity_factory, csr_factory, actor):
    multi = ee_profile_factory("Multi", ca=root_ca, allowed_requests_use=True, allowed_requests_default=2,
                               allowed_requests_max=3)
    entity_factory("erin", password="foo123", profile=multi)
    csr, _ = csr_factory("CN=erin")
    enroll("erin", "foo123", csr=csr, interface="rest")
    assert (_ee("erin").status, _ee("erin").request_counter) == (EndEntityStatus.NEW, 1)
    enroll("erin", "foo123", csr=csr, interface="rest")
    assert (_ee("erin").status, _ee("erin").request_counter) == (EndEntityStatus.GENERATED, 0)
    with pytest.raises(EnrollmentDenied):
        enroll("erin", "foo123", csr=csr, interface="rest")
    set_status(actor, "erin", "NEW")  # counter back to the profile default
    assert _ee("erin").request_counter == 2
    enroll("erin", "foo123", csr=csr, interface="rest")
    assert Certificate.objects.filter(username="erin").count() == 3


@pytest.mark.parametrize("status, ok", [("NEW", True), ("FAILED", True), ("INPROCESS", True), ("INITIALIZED", False),
                                        ("GENERATED", False), ("REVOKED", False), ("HISTORICAL", False),
                                        ("KEYRECOVERY", False)])
def test_statuses_that_may_enroll(entity_factory, csr_factory, status, ok):
    entity_factory("frank", password="foo123", status=status)
    csr, _ = csr_factory("CN=frank")
    if ok:
        enroll("frank", "foo123", csr=csr, interface="rest")
        assert _ee("frank").status == EndEntityStatus.GENERATED
    else:
        with pytest.raises(EnrollmentDenied):
            enroll("frank", "foo123", csr=csr, interface="rest")
        assert _ee("frank").failed_login_count == 0  # a dead code is not even checked


@pytest.mark.parametrize("validity, days_before, allowed", [("10d", 10, True), ("10d", 5, False), ("100d", 30, False)])
def test_renewal_before_expiration(ee_profile_factory, root_ca, entity_factory, csr_factory, profile, validity,
                                   days_before, allowed):
    """GENERATED may renew with the password within N 24-hour periods before the newest certificate expires."""
    profile.validity = validity
    profile.save()
    renewing = ee_profile_factory("Renew", ca=root_ca, renewal_before_expiration_use=True,
                                  renewal_days_before_expiration=days_before)
    entity_factory("gina", password="foo123", profile=renewing)
    csr, _ = csr_factory("CN=gina")
    first = enroll("gina", "foo123", csr=csr, interface="rest")
    assert _ee("gina").status == EndEntityStatus.GENERATED
    if allowed:
        second = enroll("gina", "foo123", csr=csr, interface="rest")
        assert second.row.serial != first.row.serial and _ee("gina").status == EndEntityStatus.GENERATED
        with pytest.raises(EnrollmentDenied):
            enroll("gina", "wrong", csr=csr, interface="rest")
    else:
        with pytest.raises(EnrollmentDenied):
            enroll("gina", "foo123", csr=csr, interface="rest")


def test_revocation_reason_after_issuance(ee_profile_factory, root_ca, entity_factory, csr_factory):
    onhold = ee_profile_factory("OnHold", ca=root_ca, revocation_reason_use=True, revocation_reason_default=6)
    entity_factory("henry", password="foo123", profile=onhold)
    csr, _ = csr_factory("CN=henry")
    issued = enroll("henry", "foo123", csr=csr, interface="rest")
    row = Certificate.objects.get(pk=issued.row.pk)
    assert row.status == CertificateStatus.ON_HOLD and row.revocation_reason == 6


def test_bad_csr_changes_nothing(entity_factory):
    entity_factory("ivan", password="foo123")
    with pytest.raises(ValidationError) as exc:
        enroll("ivan", "foo123", csr=b"not a csr", interface="rest")
    assert exc.value.field == "csr"
    ee = _ee("ivan")
    assert (ee.status, ee.request_counter) == (EndEntityStatus.NEW, 1)
    assert not Certificate.objects.filter(username="ivan").exists()


def test_key_refused_by_certificate_profile_changes_nothing(entity_factory, csr_factory, profile):
    profile.allowed_key_algorithms = ["RSA"]
    profile.save()
    entity_factory("jane", password="foo123")
    csr, _ = csr_factory("CN=jane", key_spec="P-256")
    with pytest.raises(ValidationError) as exc:
        enroll("jane", "foo123", csr=csr, interface="rest")
    assert exc.value.field == "public_key"
    assert _ee("jane").status == EndEntityStatus.NEW


def test_redacted_profile_hides_subject_in_issuance_audit(ee_profile_factory, root_ca, entity_factory, csr_factory):
    secret = ee_profile_factory("Secret", ca=root_ca, redact_subject=True)
    entity_factory("kate", password="foo123", profile=secret, subject_dn="CN=Kate Secret")
    csr, _ = csr_factory("CN=kate")
    issued = enroll("kate", "foo123", csr=csr, interface="rest")
    event = AuditEvent.objects.get(event_type="CERT_CREATION", object_id=issued.row.serial)
    assert "Kate" not in str(event.details)


def test_redacted_profile_hides_subject_when_the_ca_core_revokes(ee_profile_factory, root_ca, entity_factory,
                                                                  csr_factory, actor):
    # Revocation through pki (REST certificate revoke, admin UI) knows no profiles: the check registered by
    # endentities tells it. A profile without redaction keeps the subject.
    from pki.revocation import revoke, unrevoke

    secret = ee_profile_factory("Secret", ca=root_ca, redact_subject=True)
    entity_factory("kate", password="foo123", profile=secret, subject_dn="CN=Kate Secret")
    entity_factory("open", password="foo123", subject_dn="CN=Open Person")
    hidden = enroll("kate", "foo123", csr=csr_factory("CN=kate")[0], interface="rest").row
    shown = enroll("open", "foo123", csr=csr_factory("CN=open")[0], interface="rest").row
    revoke(actor, hidden, "certificateHold")
    unrevoke(actor, hidden)
    revoke(actor, shown, "keyCompromise")
    for event_type in ("CERT_REVOKED", "CERT_UNREVOKED"):
        event = AuditEvent.objects.get(event_type=event_type, object_id=hidden.serial)
        assert event.details["subject"] == "<redacted>" and "Kate" not in str(event.details)
    assert AuditEvent.objects.get(event_type="CERT_REVOKED", object_id=shown.serial).details["subject"] == (
        "CN=Open Person")


def test_each_profile_has_its_rules_in_the_roles_editor(ee_profile_factory, root_ca):
    from pki.auth.resources import is_known, label_for

    p = ee_profile_factory("Branch", ca=root_ca)
    assert is_known(f"/endentityprofilesrules/{p.pk}")
    assert is_known(f"/endentityprofilesrules/{p.pk}/revoke_end_entity")
    assert "Branch" in label_for(f"/endentityprofilesrules/{p.pk}/revoke_end_entity")


def test_enroll_with_ra_needs_rules_not_code(entity_factory, csr_factory, ee_profile, root_ca):
    entity_factory("liam", password="foo123")
    csr, _ = csr_factory("CN=liam")
    rules = [f"/ca/{root_ca.pk}", "/ca_functionality/create_certificate",
             f"/endentityprofilesrules/{ee_profile.pk}/create_end_entity"]
    for missing in range(3):
        partial = Actor(name="op", role_rules={"RA": [(r, True) for i, r in enumerate(rules) if i != missing]})
        with pytest.raises(AuthorizationDenied):
            enroll_with_ra(partial, "liam", csr=csr)
    op = Actor(name="op", role_rules={"RA": [(r, True) for r in rules]})
    issued = enroll_with_ra(op, "liam", csr=csr)
    assert _ee("liam").status == EndEntityStatus.GENERATED
    assert AuditEvent.objects.get(event_type="CERT_CREATION", object_id=issued.row.serial).actor == "op"
    with pytest.raises(EnrollmentDenied):
        enroll_with_ra(op, "liam", csr=csr)


def test_validity_from_end_entity_when_profile_allows_override(ee_profile_factory, root_ca, entity_factory,
                                                                csr_factory, profile):
    profile.allow_validity_override = True
    profile.save()
    timed = ee_profile_factory("Timed", ca=root_ca, validity_end_use=True, validity_end_default="3:0:0")
    entity_factory("mia", password="foo123", profile=timed)
    csr, _ = csr_factory("CN=mia")
    cert = enroll("mia", "foo123", csr=csr, interface="rest").certificate
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert timedelta(days=3) <= lifetime <= timedelta(days=3, minutes=11)


def test_csr_for_server_generated_token_refused(entity_factory, csr_factory):
    """EJBCA's WrongTokenTypeException: a P12/JKS/PEM/BCFKS end entity gets its key from the server."""
    entity_factory("nina", password="foo123", token_type="P12")
    csr, _ = csr_factory("CN=nina")
    with pytest.raises(ValidationError) as exc:
        enroll("nina", "foo123", csr=csr, interface="rest")
    assert exc.value.field == "token" and "P12" in exc.value.message
    ee = _ee("nina")
    assert (ee.status, ee.request_counter) == (EndEntityStatus.NEW, 1)
    assert not Certificate.objects.filter(username="nina").exists()
