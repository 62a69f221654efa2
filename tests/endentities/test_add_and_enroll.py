"""``add_and_enroll_with_ra`` (the SCEP RA path): the same end entity, audit events and refusals as
``add_end_entity`` followed by ``enroll_with_ra``, with the row written once, and a taken username refused
before anything is written so the caller's transaction can go on."""

from __future__ import annotations

import pytest
from django.db import transaction

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from endentities.services import (
    EndEntityExists,
    add_and_enroll_with_ra,
    add_end_entity,
    enroll_with_ra,
)
from endentities.validation import EndEntityInput
from pki import audit
from pki.auth.access import Actor
from pki.errors import AuthorizationDenied, ConflictError, PkiError
from pki.models import AuditEvent, Certificate

from .entities_support import *  # noqa: F403  (the shared fixtures)
from .entities_support import csr_for

pytestmark = pytest.mark.django_db

FIELDS = ("status", "request_counter", "allowed_requests", "failed_login_count", "subject_dn", "subject_alt_name",
          "email", "ca_id", "certificate_profile_id", "end_entity_profile_id", "token_type", "clear_password",
          "extended_information", "max_failed_logins", "key_recoverable", "send_notification")


def _input(username: str) -> EndEntityInput:
    return EndEntityInput(username=username, password="foo123", subject_dn=f"CN={username},O=Test,C=SE",
                          subject_alt_name=f"DNSNAME={username}.example")


def _combined(actor, ee_profile, username: str, both_steps: bool):
    before = AuditEvent.objects.count()
    with transaction.atomic(), audit.combined("CERT_CREATION"):
        if both_steps:
            ee = add_end_entity(actor, _input(username), profile=ee_profile)
            issued = enroll_with_ra(actor, username, csr=csr_for(f"CN={username}"), interface="scep", entity=ee)
        else:
            issued = add_and_enroll_with_ra(actor, _input(username), profile=ee_profile,
                                            csr=csr_for(f"CN={username}"), interface="scep")
    (event,) = AuditEvent.objects.order_by("sequence")[before:]
    return issued, event


def test_the_same_end_entity_and_events_as_add_then_enroll(actor, ee_profile):
    _, two_steps = _combined(actor, ee_profile, "kim", both_steps=True)
    issued, one_step = _combined(actor, ee_profile, "lee", both_steps=False)
    kim, lee = EndEntity.objects.get(username="kim"), EndEntity.objects.get(username="lee")
    assert {f: getattr(lee, f) for f in FIELDS if f not in ("subject_dn", "subject_alt_name")} \
        == {f: getattr(kim, f) for f in FIELDS if f not in ("subject_dn", "subject_alt_name")}
    assert lee.status == EndEntityStatus.GENERATED and lee.password_hash and lee.request_counter == 0
    assert issued.row.username == "lee" and Certificate.objects.filter(username="lee").count() == 1

    def shape(event):
        return [(w["event_type"], {k: v for k, v in w["details"].items() if k not in ("subject", "subject_alt_name",
                                                                                      "certificate")})
                for w in event.details["with"]]

    assert one_step.event_type == two_steps.event_type == "CERT_CREATION"
    assert shape(one_step) == shape(two_steps)
    assert [w["event_type"] for w in one_step.details["with"]] == ["RA_ADDENDENTITY", "RA_EDITENDENTITY"]
    assert one_step.details["with"][0]["details"]["status"] == "NEW"
    assert one_step.details["with"][1]["details"]["certificate"] == issued.row.serial
    assert audit.verify_chain().ok


def test_a_taken_username_is_refused_before_anything_is_written(actor, ee_profile, entity_factory):
    entity_factory("max", password="foo123")
    before = AuditEvent.objects.count()
    with transaction.atomic():
        with pytest.raises(EndEntityExists) as exc:
            add_and_enroll_with_ra(actor, _input("max"), profile=ee_profile, csr=csr_for("CN=max"))
        # The same refusal as add_end_entity's, and the transaction is still usable.
        assert isinstance(exc.value, ConflictError) and exc.value.field == "username"
        with pytest.raises(ConflictError) as plain:
            add_end_entity(actor, _input("max"), profile=ee_profile)
        assert plain.value.message == exc.value.message == "End entity 'max' already exists."
        assert EndEntity.objects.filter(username="max").count() == 1
    assert AuditEvent.objects.count() == before
    assert not Certificate.objects.filter(username="max").exists()


def test_a_refused_issuance_takes_the_new_row_with_it(actor, ee_profile, csr_factory):
    csr, _ = csr_factory("CN=ned")
    with transaction.atomic():
        add_and_enroll_with_ra(actor, _input("ned"), profile=ee_profile, csr=csr)
    # The same key for another end entity: the CA's unique-key rule refuses it, and the new row goes too.
    with pytest.raises(PkiError), transaction.atomic():
        add_and_enroll_with_ra(actor, _input("oli"), profile=ee_profile, csr=csr)
    assert not EndEntity.objects.filter(username="oli").exists()


def test_rules_are_checked_before_anything_is_written(ee_profile, root_ca):
    rules = [f"/ca/{root_ca.pk}", "/ca_functionality/create_certificate", "/ra_functionality/create_end_entity",
             f"/endentityprofilesrules/{ee_profile.pk}/create_end_entity"]
    for missing in range(len(rules)):
        partial = Actor(name="op", role_rules={"RA": [(r, True) for i, r in enumerate(rules) if i != missing]})
        with pytest.raises(AuthorizationDenied), transaction.atomic():
            add_and_enroll_with_ra(partial, _input("pat"), profile=ee_profile, csr=csr_for("CN=pat"))
        assert not EndEntity.objects.filter(username="pat").exists()
    op = Actor(name="op", role_rules={"RA": [(r, True) for r in rules]})
    with transaction.atomic():
        add_and_enroll_with_ra(op, _input("pat"), profile=ee_profile, csr=csr_for("CN=pat"))
    assert EndEntity.objects.get(username="pat").status == EndEntityStatus.GENERATED


@pytest.mark.django_db(transaction=True)
def test_it_needs_the_callers_transaction(actor, ee_profile):
    with pytest.raises(transaction.TransactionManagementError):
        add_and_enroll_with_ra(actor, _input("quin"), profile=ee_profile, csr=csr_for("CN=quin"))
    assert not EndEntity.objects.filter(username="quin").exists()
