"""Revocation and CRLs: full and delta, numbering, openssl acceptance, the regeneration task."""

from datetime import timedelta

import pytest
from cryptography import x509
from django.utils import timezone

from pki.choices import CertificateStatus, RevocationReason
from pki.crl import create_crl, due_crls
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import CRL, AuditEvent, CertificateProfile
from pki.revocation import find_certificate, revoke, unrevoke
from pki.tasks import regenerate_due_crls
from tests.conftest import pem


@pytest.fixture
def issue_cert(actor, csr_factory):
    def make(ca, cn="leaf"):
        csr, _ = csr_factory(f"CN={cn}")
        return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                     csr=csr)).row

    return make


def _load(crl: CRL) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(bytes(crl.der))


@pytest.mark.parametrize("reason", list(RevocationReason))
def test_revoke_with_every_reason(root_ca, actor, issue_cert, reason):
    row = issue_cert(root_ca)
    if reason == RevocationReason.REMOVE_FROM_CRL:
        with pytest.raises(ConflictError, match="not on hold"):
            revoke(actor, row, reason)
        return
    revoked = revoke(actor, row, reason)
    expected = CertificateStatus.ON_HOLD if reason == RevocationReason.CERTIFICATE_HOLD else CertificateStatus.REVOKED
    assert revoked.status == expected and revoked.revocation_reason == reason
    crl = _load(create_crl(actor, root_ca))
    entry = crl.get_revoked_certificate_by_serial_number(row.serial_int)
    assert entry is not None
    if reason == RevocationReason.UNSPECIFIED:
        assert len(entry.extensions) == 0  # RFC 5280: omit the reason code for unspecified
    else:
        assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name == {
            "keyCompromise": "key_compromise", "cACompromise": "ca_compromise",
            "affiliationChanged": "affiliation_changed", "superseded": "superseded",
            "cessationOfOperation": "cessation_of_operation", "certificateHold": "certificate_hold",
            "privilegeWithdrawn": "privilege_withdrawn", "aACompromise": "aa_compromise",
        }[reason.label]


def test_revoke_twice_and_hold_rules(root_ca, actor, issue_cert):
    row = issue_cert(root_ca)
    revoke(actor, row, "keyCompromise")
    with pytest.raises(ConflictError, match="already revoked"):
        revoke(actor, row, "superseded")
    held = revoke(actor, issue_cert(root_ca, "held"), RevocationReason.CERTIFICATE_HOLD)
    with pytest.raises(ConflictError, match="already on hold"):
        revoke(actor, held, RevocationReason.CERTIFICATE_HOLD)
    back = unrevoke(actor, held)
    assert back.status == CertificateStatus.ACTIVE and back.unrevoked_at is not None
    # on hold, then revoked for good
    again = revoke(actor, back, RevocationReason.CERTIFICATE_HOLD)
    final = revoke(actor, again, RevocationReason.KEY_COMPROMISE)
    assert final.status == CertificateStatus.REVOKED


@pytest.mark.parametrize("bad", ["nonsense", "7", "99"])
def test_unknown_reason(root_ca, actor, issue_cert, bad):
    with pytest.raises(ValidationError):
        revoke(actor, issue_cert(root_ca), bad)


def test_find_certificate_by_issuer_dn_and_serial(root_ca, issue_cert):
    row = issue_cert(root_ca)
    assert find_certificate(root_ca.subject_dn, row.serial.upper()).pk == row.pk
    assert find_certificate(root_ca.name, "00" + row.serial).pk == row.pk
    with pytest.raises(ValidationError):
        find_certificate(root_ca.name, "xyz")
    with pytest.raises(NotFoundError):
        find_certificate(root_ca.name, "abc")


def test_crl_verifies_with_openssl_and_rejects_revoked(sub_ca, root_ca, actor, issue_cert, openssl):
    good, bad = issue_cert(sub_ca, "good"), issue_cert(sub_ca, "bad")
    revoke(actor, bad, "keyCompromise")
    crl = create_crl(actor, sub_ca)
    parsed = _load(crl)
    assert parsed.is_signature_valid(sub_ca.certificate.public_key())
    assert parsed.issuer == sub_ca.certificate.subject
    assert parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == crl.crl_number
    assert parsed.next_update_utc - parsed.last_update_utc == sub_ca.crl_period
    assert len(parsed) == 1 and crl.entries == 1
    openssl.write("crl.der", bytes(crl.der))
    openssl.write("sub.pem", pem(sub_ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", "sub.pem")
    assert "verify OK" in (out.stdout + out.stderr)
    openssl("crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem")
    root_crl = create_crl(actor, root_ca)
    openssl.write("rootcrl.der", bytes(root_crl.der))
    openssl("crl", "-inform", "DER", "-in", "rootcrl.der", "-out", "rootcrl.pem")
    trust = pem(root_ca.certificate, sub_ca.certificate) + (openssl.workdir / "crl.pem").read_bytes() + (
        openssl.workdir / "rootcrl.pem").read_bytes()
    openssl.write("trust.pem", trust)
    openssl.write("good.pem", pem(good.certificate))
    openssl.write("bad.pem", pem(bad.certificate))
    assert "OK" in openssl("verify", "-crl_check_all", "-CAfile", "trust.pem", "good.pem").stdout
    refused = openssl("verify", "-crl_check_all", "-CAfile", "trust.pem", "bad.pem", check=False)
    assert refused.returncode != 0 and "certificate revoked" in (refused.stdout + refused.stderr)


def test_crl_numbers_increase_and_are_shared_with_deltas(ca_factory, actor, issue_cert, openssl):
    ca = ca_factory("DeltaCA", delta_crl_period=timedelta(hours=1), crl_distribution_point="http://x/crl/DeltaCA.crl")
    # The CA was created with its first full CRL (#1) and first delta (#2).
    assert list(CRL.objects.filter(ca=ca).order_by("crl_number").values_list("crl_number", "is_delta")) == [
        (1, False), (2, True)]
    old = issue_cert(ca, "old")
    revoke(actor, old, "superseded")
    base = create_crl(actor, ca)
    assert base.crl_number == 3
    freshest = _load(base).extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == "http://x/crl/DeltaCA.crl?delta=true"
    held = issue_cert(ca, "held")
    revoke(actor, held, "certificateHold")
    new = issue_cert(ca, "new")
    revoke(actor, new, "keyCompromise")
    delta = create_crl(actor, ca, delta=True)
    assert delta.crl_number == 4 and delta.is_delta and delta.base_crl_number == 3
    parsed = _load(delta)
    indicator = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == 3
    serials = {e.serial_number for e in parsed}
    assert {held.serial_int, new.serial_int} <= serials
    assert parsed.next_update_utc - parsed.last_update_utc == timedelta(hours=1)
    unrevoke(actor, held)
    delta2 = _load(create_crl(actor, ca, delta=True))
    entry = delta2.get_revoked_certificate_by_serial_number(held.serial_int)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.remove_from_crl
    openssl.write("delta.der", bytes(CRL.objects.filter(ca=ca).latest("crl_number").der))
    openssl.write("ca.pem", pem(ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "delta.der", "-noout", "-verify", "-CAfile", "ca.pem", "-text")
    assert "Delta CRL Indicator" in out.stdout


def test_delta_needs_a_base(root_ca, actor):
    CRL.objects.filter(ca=root_ca).delete()  # a CA gets its first CRL when created: take it away
    with pytest.raises(ValidationError, match="no full CRL"):
        create_crl(actor, root_ca, delta=True)
    assert AuditEvent.objects.filter(event_type="CRL_CREATION", outcome="FAILURE").exists()


def test_expired_revoked_certificates_leave_the_crl(root_ca, actor, issue_cert):
    row = issue_cert(root_ca)
    revoke(actor, row, "superseded")
    type(row).objects.filter(pk=row.pk).update(not_after=timezone.now() - timedelta(days=1))
    assert len(_load(create_crl(actor, root_ca))) == 0


def test_regeneration_task_renews_due_crls(ca_factory, actor):
    ca = ca_factory("AutoCA", crl_period=timedelta(hours=2), crl_overlap=timedelta(minutes=30),
                    delta_crl_period=timedelta(minutes=20))
    # Created with its first full CRL and delta: nothing is due until they near their next update.
    assert (ca, False) not in due_crls() and (ca, True) not in due_crls()
    CRL.objects.filter(ca=ca).delete()
    assert (ca, False) in due_crls()  # no CRL
    done = regenerate_due_crls()
    assert any(d.startswith("AutoCA#") for d in done)
    full = CRL.objects.filter(ca=ca, is_delta=False).get()
    assert (ca, False) not in due_crls()
    # a delta is due right after the full CRL (none exists yet)
    assert (ca, True) in due_crls()
    regenerate_due_crls()
    assert CRL.objects.filter(ca=ca, is_delta=True, base_crl_number=full.crl_number).exists()
    # within the overlap of the full CRL's next update, it is due again
    later = full.next_update - timedelta(minutes=29)
    assert (ca, False) in due_crls(now=later)
    audit = AuditEvent.objects.filter(event_type="CRL_CREATION", actor="crl-updater")
    assert audit.count() == 2


def test_delta_lists_a_revocation_backdated_before_its_base(ca_factory, actor, issue_cert, openssl):
    """Issue 12 item 6: the delta selects on when a revocation was recorded, not on the date it states."""
    ca = ca_factory("BackdateCA", delta_crl_period=timedelta(hours=1))
    earlier = issue_cert(ca, "earlier")
    revoke(actor, earlier, "superseded")
    # Recorded well before the base: it is on the base and must not be repeated by the delta.
    type(earlier).objects.filter(pk=earlier.pk).update(
        revoked_at=timezone.now() - timedelta(hours=3), revocation_recorded_at=timezone.now() - timedelta(hours=2))
    backdated = issue_cert(ca, "backdated")
    base = create_crl(actor, ca)
    assert _load(base).get_revoked_certificate_by_serial_number(backdated.serial_int) is None
    stated = base.this_update - timedelta(days=2)
    revoke(actor, backdated, "keyCompromise", revoked_at=stated)
    delta = create_crl(actor, ca, delta=True)
    parsed = _load(delta)
    entry = parsed.get_revoked_certificate_by_serial_number(backdated.serial_int)
    assert entry is not None and entry.revocation_date_utc == stated.replace(microsecond=0)
    assert parsed.get_revoked_certificate_by_serial_number(earlier.serial_int) is None
    openssl.write("delta.der", bytes(delta.der))
    openssl.write("ca.pem", pem(ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "delta.der", "-noout", "-verify", "-CAfile", "ca.pem", "-text")
    assert f"Serial Number: {backdated.serial.upper().zfill(len(backdated.serial) + len(backdated.serial) % 2)}" \
        in out.stdout
    assert "Key Compromise" in out.stdout
