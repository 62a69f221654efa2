"""The RA-mode hot path: one combined audit event per enrollment, and the per-process alias cache seeing every
change of the alias, its CA, its profiles and approval requirements at the next request (also inside one
transaction, as a test runs)."""

from __future__ import annotations

import pytest

from endentities.models import EndEntity
from pki import audit
from pki.choices import CAStatus
from pki.models import AuditEvent, Certificate
from protocols.scep.messages import PkiStatus
from protocols.scep.messages import client as scep_client

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, self_signed

pytestmark = pytest.mark.django_db


def test_one_audit_event_describes_creation_and_issuance(scep, scep_ca, ra):
    before = AuditEvent.objects.count()
    key = client_key(60)
    assert scep.enroll(make_csr(key, "CN=fast1,O=Test", "s3cret"), key, scep_ca.certificate).status \
        == PkiStatus.SUCCESS
    events = list(AuditEvent.objects.order_by("sequence")[before:])
    assert [e.event_type for e in events] == ["CERT_CREATION"]
    event = events[0]
    cert = Certificate.objects.get(username="fast1")
    assert event.object_id == cert.serial and event.actor == "scep:scep"
    folded = {item["event_type"]: item for item in event.details["with"]}
    assert folded["RA_ADDENDENTITY"]["object_id"] == "fast1"
    assert folded["RA_ADDENDENTITY"]["details"]["status"] == "NEW"
    assert folded["RA_EDITENDENTITY"]["details"]["status"] == "GENERATED"
    assert audit.verify_chain().ok


def test_second_enrollment_of_the_same_device_records_the_edit(scep, scep_ca, ra):
    key1, key2 = client_key(61), client_key(62)
    assert scep.enroll(make_csr(key1, "CN=fast2", "s3cret"), key1, scep_ca.certificate).status == PkiStatus.SUCCESS
    before = AuditEvent.objects.count()
    assert scep.enroll(make_csr(key2, "CN=fast2", "s3cret"), key2, scep_ca.certificate).status == PkiStatus.SUCCESS
    (event,) = AuditEvent.objects.order_by("sequence")[before:]
    assert event.event_type == "CERT_CREATION"
    assert [item["event_type"] for item in event.details["with"]] == ["RA_EDITENDENTITY", "RA_EDITENDENTITY"]
    assert Certificate.objects.filter(username="fast2").count() == 2


@pytest.fixture(params=["postgresql", "sqlite"])
def vendor(request, monkeypatch):
    """The alias cache's check on PostgreSQL (row versions) and on other databases (the rows themselves, as on
    make run's SQLite; run here on PostgreSQL, with which its statements also work)."""
    from django.db import connection

    if request.param != connection.vendor:
        monkeypatch.setattr(connection, "vendor", request.param)
    return request.param


def test_alias_changes_are_seen_by_the_next_request(scep, scep_ca, ra, actor, client, vendor):
    from protocols.scep import approvals, services

    key = client_key(63)
    assert scep.enroll(make_csr(key, "CN=fast3", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # A new shared secret (same transaction as the request before: the row version still differs).
    services.edit_alias(actor, "scep", ra_auth_password="changed")
    key = client_key(64)
    assert scep.enroll(make_csr(key, "CN=fast4", "s3cret"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert scep.enroll(make_csr(key, "CN=fast4", "changed"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # An approval requirement on the RA CA: PENDING from now on.
    approvals.set_required(actor, ca=scep_ca, required=True)
    key = client_key(65)
    assert scep.enroll(make_csr(key, "CN=fast5", "changed"), key, scep_ca.certificate).status == PkiStatus.PENDING
    assert not EndEntity.objects.filter(username="fast5").exists()
    approvals.set_required(actor, ca=scep_ca, required=False)
    # The CA going offline is a refusal, not an issuance with the cached row.
    scep_ca.status = CAStatus.OFFLINE
    scep_ca.save(update_fields=["status"])
    key = client_key(66)
    assert scep.enroll(make_csr(key, "CN=fast6", "changed"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert not Certificate.objects.filter(username="fast6").exists()
    # A disabled alias answers 404.
    services.edit_alias(actor, "scep", enabled=False)
    assert client.get("/ejbca/publicweb/apply/scep/pkiclient.exe", {"operation": "GetCACaps"}).status_code == 404


def _statements(queries) -> list[str]:
    """The statements of a captured request, without transaction control (the test's own transaction turns
    BEGIN/COMMIT into savepoints)."""
    control = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(control)]


def test_a_new_device_costs_one_alias_statement_and_one_end_entity_write(scep, scep_ca, ra):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    key = client_key(67)
    assert scep.enroll(make_csr(key, "CN=fast7", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    key = client_key(68)
    with CaptureQueriesContext(connection) as queries:
        assert scep.enroll(make_csr(key, "CN=fast8", "s3cret"), key, scep_ca.certificate).status \
            == PkiStatus.SUCCESS
    sql = _statements(queries)
    # Savepoints: the enrollment's transaction (one here, as the test's transaction holds it) only; creating the
    # end entity and storing the certificate open none (a refusal after them rolls the whole transaction back).
    assert len([q for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]) == 1
    # The alias, its CAs, profiles, approval rules and the CA token's version: one prepared statement.
    alias_reads = [s for s in sql if "scep_scepalias" in s or "pki_scep_alias_stamp" in s]
    assert len(alias_reads) == 1 and alias_reads[0].startswith("EXECUTE pki_scep_alias_stamp_") \
        and alias_reads[0].endswith("('scep')")
    # The end entity is written once, already GENERATED (no insert-then-update, no savepoint for a taken name).
    writes = [s for s in sql if "endentities_endentity" in s]
    assert len(writes) == 1 and writes[0].startswith("EXECUTE pki_insert_endentities_endentity_")
    name = writes[0].split()[1].split("(")[0]
    with connection.cursor() as cur:  # the prepared statement behind it
        cur.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [name])
        assert "ON CONFLICT" in cur.fetchone()[0]
    # The responder's key needs no token read of its own (the version statement covers the token's row);
    # issuance may still check the token before it signs.
    assert len([s for s in sql if "cryptotokens_cryptotoken" in s or "pki_token_state_" in s]) <= 1
    ee = EndEntity.objects.get(username="fast8")
    assert (ee.status, ee.request_counter, ee.failed_login_count) == (40, 0, 0)


def _ra_alias_on_a_manual_token(name, scep, soft_token_factory, ca_factory, alias_factory, actor, key, subject):
    """An RSA CA on a token activated by hand (``<name>Token``, PIN foo123), the RA-mode alias ``scep`` on it, and
    one enrollment through it that succeeds: (token, ca)."""
    from cryptotokens import services as tokens

    token = soft_token_factory(f"{name}Token", auto_activate=False)
    tokens.activate(actor, token, "foo123")
    ca = ca_factory(f"{name}CA", key_spec="RSA2048", token=token)
    alias_factory("scep", operation_mode="ra", ra_default_ca=ca, ra_auth_password="s3cret",
                  ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY")
    assert scep.enroll(make_csr(key, subject, "s3cret"), key, ca.certificate).status == PkiStatus.SUCCESS
    return token, ca


def test_a_deactivated_token_is_seen_by_the_next_request(scep, soft_token_factory, ca_factory, alias_factory,
                                                         actor, vendor):
    from cryptotokens import services as tokens

    token, ca = _ra_alias_on_a_manual_token("ScepManual", scep, soft_token_factory, ca_factory, alias_factory,
                                            actor, client_key(69), "CN=fast9")
    tokens.deactivate(actor, token)
    key = client_key(70)
    request = scep_client.build_pkcs_req(make_csr(key, "CN=fast10", "s3cret"), self_signed(key, "c"), key,
                                         ca.certificate)
    resp = scep.post(request.data)
    assert resp.status_code == 503 and b"not available" in resp.content
    assert not EndEntity.objects.filter(username="fast10").exists()
    tokens.activate(actor, token, "foo123")
    assert scep.enroll(make_csr(key, "CN=fast10", "s3cret"), key, ca.certificate).status == PkiStatus.SUCCESS


def test_without_row_versions_an_unchanged_alias_is_used_again(scep, scep_ca, ra, actor, monkeypatch):
    """On other databases than PostgreSQL (make run's SQLite) the kept alias is used again while its rows read the
    same: two plain statements, no instances built, no token statement for the responder's key."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from cryptotokens.services import get_private_key_by_id
    from protocols.scep import aliascache, services

    monkeypatch.setattr(connection, "vendor", "sqlite")
    first = aliascache.get_alias("scep")
    key = aliascache.responder_key(first, scep_ca.crypto_token_id, scep_ca.key_alias, get_private_key_by_id)
    with CaptureQueriesContext(connection) as queries:
        again = aliascache.get_alias("scep")
        kept = aliascache.responder_key(again, scep_ca.crypto_token_id, scep_ca.key_alias,
                                        lambda *a: pytest.fail(f"read again: {a}"))
    assert again is first and kept is key and len(queries.captured_queries) == 2
    services.edit_alias(actor, "scep", ra_auth_password="changed")
    edited = aliascache.get_alias("scep")
    assert edited is not first and edited.ra_auth_password != first.ra_auth_password
    services.edit_alias(actor, "scep", enabled=False)
    assert aliascache.get_alias("scep") is None


def test_the_version_statement_is_prepared_again_when_the_session_lost_it(scep, scep_ca, ra):
    from django.db import connection

    from pki import db

    for n, (deallocate, forget) in enumerate([(True, True), (False, True)]):
        if deallocate:
            with connection.cursor() as cur:
                cur.execute("DEALLOCATE ALL")
        if forget:
            db.forget()
        key = client_key(71 + n)
        assert scep.enroll(make_csr(key, f"CN=fast{11 + n}", "s3cret"), key, scep_ca.certificate).status \
            == PkiStatus.SUCCESS


def test_an_ra_mode_end_entity_gets_no_enrollment_code_even_where_the_profile_requires_one(
        scep, scep_ca, ra):
    """EMPTY requires a password; the RA secret already authenticated the request, so the server stores no code
    (no PBKDF2 round inside the write transaction) and the shared secret does not become the device's code."""
    from endentities.models import EndEntityProfile
    from endentities.services import passwords

    assert EndEntityProfile.objects.get(name="EMPTY").password_required
    calls = []
    original = passwords._hasher.encode
    passwords._hasher.encode = lambda *a, **k: calls.append(a) or original(*a, **k)
    try:
        key = client_key(65)
        assert scep.enroll(make_csr(key, "CN=nocode1", "s3cret"), key, scep_ca.certificate).status \
            == PkiStatus.SUCCESS
        key = client_key(66)  # the same device again: the edit path
        assert scep.enroll(make_csr(key, "CN=nocode1", "s3cret"), key, scep_ca.certificate).status \
            == PkiStatus.SUCCESS
    finally:
        passwords._hasher.encode = original
    assert calls == []
    ee = EndEntity.objects.get(username="nocode1")
    assert ee.password_hash == "" and not passwords.check_password("s3cret", ee.password_hash)
    assert Certificate.objects.filter(username="nocode1").count() == 2


class DepthRecordingValidator:
    """The RA shared secret's check, recording how many transaction blocks are open at each call."""

    depths: dict[str, int] = {}

    def __init__(self, alias):
        from protocols.scep.validators import SharedSecretValidator

        self.inner = SharedSecretValidator(alias)

    @staticmethod
    def _record(what: str) -> None:
        from django.db import connection

        DepthRecordingValidator.depths[what] = len(connection.atomic_blocks)

    def validate(self, ctx):
        self._record("validate")
        self.inner.validate(ctx)

    def notify_success(self, ctx, certificate_der):
        self._record("success")

    def notify_failure(self, ctx, reason):
        self._record("failure")


def test_the_challenge_is_checked_before_the_enrollment_transaction(scep, scep_ca, ra_alias):
    """The write transaction (on SQLite the database's only write lock) is not held while the challenge is
    checked (a validator may call out over the network); the replay rules and the issuance stay inside it."""
    from protocols.scep.models import ScepTransaction

    ra_alias(challenge_validator=f"{__name__}.DepthRecordingValidator")
    DepthRecordingValidator.depths.clear()
    key = client_key(74)
    assert scep.enroll(make_csr(key, "CN=early1", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    depths = DepthRecordingValidator.depths
    assert depths["validate"] < depths["success"]
    # A wrong secret is refused before any transaction row is claimed, and audited.
    key = client_key(75)
    signer = self_signed(key, "e2")
    request = scep_client.build_pkcs_req(make_csr(key, "CN=early2", "wrong"), signer, key, scep_ca.certificate)
    assert scep.exchange(request, key, signer, scep_ca.certificate).status == PkiStatus.FAILURE
    assert not ScepTransaction.objects.filter(transaction_id=request.transaction_id).exists()
    assert AuditEvent.objects.filter(event_type="SCEP_ENROLLMENT", outcome="FAILURE", object_id="early2").exists()
    assert not EndEntity.objects.filter(username="early2").exists()


def test_the_certificate_is_signed_before_the_enrollment_transaction(scep, scep_ca, ra_alias, monkeypatch):
    """A new device's certificate is built and signed before the write transaction (on SQLite the database's only
    write lock, which every other enrollment waits for), which then only writes; a refusal at signing is
    refused again inside it and recorded once."""
    from cryptography import x509
    from django.db import connection

    ra_alias(challenge_validator=f"{__name__}.DepthRecordingValidator")
    DepthRecordingValidator.depths.clear()
    signed_at: list[int] = []
    sign = x509.CertificateBuilder.sign

    def recording_sign(self, *args, **kwargs):
        cert = sign(self, *args, **kwargs)
        if cert.issuer == scep_ca.certificate.subject:  # the CA's signature (not the client's self-signed one)
            signed_at.append(len(connection.atomic_blocks))
        return cert

    monkeypatch.setattr(x509.CertificateBuilder, "sign", recording_sign)
    key = client_key(76)
    assert scep.enroll(make_csr(key, "CN=early3", "s3cret"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    depths = DepthRecordingValidator.depths
    assert signed_at == [depths["validate"]] and depths["validate"] < depths["success"]
    assert Certificate.objects.filter(username="early3").count() == 1
    # The CA offline: nothing signed, the enrollment refused in its transaction, one refusal recorded.
    scep_ca.status = CAStatus.OFFLINE
    scep_ca.save(update_fields=["status"])
    before = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").count()
    key = client_key(77)
    assert scep.enroll(make_csr(key, "CN=early4", "s3cret"), key, scep_ca.certificate).status == PkiStatus.FAILURE
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").count() == before + 1
    assert not EndEntity.objects.filter(username="early4").exists() and signed_at == [depths["validate"]]


def test_a_token_deactivated_after_signing_refuses_the_enrollment(scep, soft_token_factory, ca_factory,
                                                                   alias_factory, actor, monkeypatch):
    """The certificate signed before the enrollment's transaction is not stored when the CA's token was deactivated
    in between (the store confirms the token's state): the whole enrollment is refused and rolled back."""
    from cryptotokens import services as tokens
    from protocols.scep import transactions

    token, ca = _ra_alias_on_a_manual_token("ScepLate", scep, soft_token_factory, ca_factory, alias_factory, actor,
                                            client_key(78), "CN=late1")
    claim = transactions.claim

    def deactivating_claim(*args, **kwargs):  # between the signature and the store
        tokens.deactivate(actor, token)
        return claim(*args, **kwargs)

    monkeypatch.setattr(transactions, "claim", deactivating_claim)
    key = client_key(79)
    assert scep.enroll(make_csr(key, "CN=late2", "s3cret"), key, ca.certificate).status == PkiStatus.FAILURE
    assert not Certificate.objects.filter(username="late2").exists()
    assert not EndEntity.objects.filter(username="late2").exists()
    refusal = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE",
                                        details__username="late2").latest("sequence")
    assert "changed while issuing" in refusal.details["reason"]


@pytest.mark.parametrize("approval", ["none", "on-ca", "on-profile"])
def test_an_alias_loaded_without_row_versions_matches_the_orm(scep_ca, ra, actor, approval):
    """The load used where there are no row versions (SQLite: every request) and on every change: the compiled
    query gives the same rows as the ORM, with the RA profile's available ids and the approval requirement."""
    from endentities.extended import _available_ids
    from pki.models import CertificateProfile
    from protocols.scep import aliascache, approvals, services
    from protocols.scep.models import ScepAlias

    if approval == "on-ca":
        approvals.set_required(actor, ca=scep_ca, required=True)
    elif approval == "on-profile":
        approvals.set_required(actor, certificate_profile=CertificateProfile.objects.get(name="ENDUSER"),
                               required=True)
    loaded = aliascache._load("scep")
    expected = ScepAlias.objects.select_related(*aliascache._AliasQuery.RELATED).get(name="scep")

    def values(obj):
        return None if obj is None else [getattr(obj, f.attname) for f in obj._meta.concrete_fields]

    assert values(loaded) == values(expected)
    for name in aliascache._AliasQuery.RELATED:
        assert values(getattr(loaded, name)) == values(getattr(expected, name)), name
    profile = expected.ra_end_entity_profile
    assert _available_ids(loaded.ra_end_entity_profile) == (
        set(profile.available_cas.values_list("pk", flat=True)),
        set(profile.available_certificate_profiles.values_list("pk", flat=True)))
    assert loaded.ra_approval_required is (approval != "none")
    services.edit_alias(actor, "scep", enabled=False)
    assert aliascache._load("scep") is None and aliascache._load("nosuch") is None
