"""The issuance pipeline: profile rules, signing through the token, atomic storage, audit."""

import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.db import connection

from cryptotokens import services as token_services
from pki import audit, issuance
from pki.errors import AuthorizationDenied, CAOfflineError, ValidationError
from pki.issuance import IssuanceRequest, issue
from pki.models import AuditEvent, Certificate, CertificateProfile
from tests.conftest import pem


def _issue(ca, actor, csr, profile="ENDUSER", **kw):
    return issue(IssuanceRequest(ca=ca, actor=actor, profile=CertificateProfile.objects.get(name=profile),
                                 csr=csr, **kw))


def test_issue_from_csr_applies_profile(root_ca, actor, csr_factory):
    csr, key = csr_factory("CN=Alice,O=Test,C=SE", san=["alice.example.com"])
    result = _issue(root_ca, actor, csr, username="alice")
    cert = result.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Alice"
    assert cert.issuer == root_ca.certificate.subject
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.content_commitment and ku.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["alice.example.com"]
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == root_ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value == "http://127.0.0.1/crl/TestRoot.crl"
    # serial: positive, 20 bytes, stored as hex; the row matches the certificate
    assert 0 < cert.serial_number < 2**160 and cert.serial_number.bit_length() > 152
    row = Certificate.objects.get(pk=result.row.pk)
    assert row.serial == format(cert.serial_number, "x")
    assert row.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert bytes(row.der) == cert.public_bytes(serialization.Encoding.DER)
    assert (row.subject_dn, row.username, row.status) == ("CN=Alice,O=Test,C=SE", "alice", "ACTIVE")
    assert row.subject_alt_name == "DNSNAME=alice.example.com"
    event = AuditEvent.objects.get(event_type="CERT_CREATION", object_id=row.serial)
    assert event.outcome == "SUCCESS" and event.details["subject"] == "CN=Alice,O=Test,C=SE"


def test_request_values_override_csr(root_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=From CSR", san=["csr.example.com"])
    cert = _issue(root_ca, actor, csr, subject_dn="CN=Override,O=X",
                  subject_alt_name="DNSNAME=o.example,IPADDRESS=10.0.0.9").certificate
    assert cert.subject.rfc4514_string() == "CN=Override,O=X"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.9"]
    assert san.get_values_for_type(x509.DNSName) == ["o.example"]


def test_sub_ca_chain_verifies_with_openssl(root_ca, sub_ca, actor, csr_factory, openssl):
    csr, _ = csr_factory("CN=leaf.example.com", san=["leaf.example.com"])
    leaf = _issue(sub_ca, actor, csr, profile="SERVER").certificate
    sub = sub_ca.certificate
    assert sub.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert sub.issuer == root_ca.certificate.subject
    openssl.write("root.pem", pem(root_ca.certificate))
    openssl.write("sub.pem", pem(sub))
    openssl.write("leaf.pem", pem(leaf))
    out = openssl("verify", "-CAfile", "root.pem", "-untrusted", "sub.pem", "-purpose", "sslserver", "leaf.pem")
    assert "leaf.pem: OK" in out.stdout
    assert [c.subject for c in sub_ca.chain()] == [sub.subject, root_ca.certificate.subject]


@pytest.mark.parametrize(
    ("key_factory", "message"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "RSA key size 1024 is not allowed"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "Curve secp256k1 is not allowed"),
        (lambda: __import__("cryptography.hazmat.primitives.asymmetric.ed448", fromlist=["x"])
         .Ed448PrivateKey.generate(), "Key algorithm Ed448 is not allowed"),
    ],
)
def test_key_policy_refusals(root_ca, actor, csr_factory, key_factory, message):
    key = key_factory()
    spec = "Ed448" if "Ed448" in message else "P-256"
    csr, _ = csr_factory("CN=weak", key=key, key_spec=spec)
    with pytest.raises(ValidationError, match=message):
        _issue(root_ca, actor, csr)
    assert not Certificate.objects.filter(subject_dn="CN=weak").exists()
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").exists()


@pytest.mark.parametrize(
    ("csr_bytes", "message"),
    [
        (b"not a csr", "not a valid PKCS#10"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "not a valid PKCS#10"),
        (b"", "not a valid PKCS#10"),
    ],
)
def test_malformed_csr_creates_nothing(root_ca, actor, csr_bytes, message):
    before = Certificate.objects.count()
    with pytest.raises(ValidationError, match=message) as info:
        _issue(root_ca, actor, csr_bytes)
    assert info.value.field == "csr"
    assert Certificate.objects.count() == before


def test_csr_with_broken_signature_is_refused(root_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=tampered")
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # flip bits in the signature
    with pytest.raises(ValidationError, match="signature does not verify"):
        _issue(root_ca, actor, bytes(der))


def test_validity_override_needs_profile_permission(root_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=v")
    with pytest.raises(ValidationError, match="does not allow validity override"):
        _issue(root_ca, actor, csr, validity="30")
    CertificateProfile.objects.filter(name="SERVER").update(builtin=False, allow_validity_override=True)
    cert = _issue(root_ca, actor, csr, profile="SERVER", validity="30").certificate
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30  # 30 days + the 10-minute backdate
    # an override longer than the profile's validity is capped at the profile's (2 years)
    cert = _issue(root_ca, actor, csr, profile="SERVER", validity="5y").certificate
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 731


def test_certificate_never_outlives_its_ca(ca_factory, actor, csr_factory):
    short = ca_factory("ShortCA", validity="30")
    csr, _ = csr_factory("CN=long")
    cert = _issue(short, actor, csr).certificate
    assert cert.not_valid_after_utc == short.certificate.not_valid_after_utc


def test_offline_token_refuses_with_clear_error_and_no_row(ca_factory, soft_token_factory, actor, csr_factory):
    token = soft_token_factory("ManualToken", auto_activate=False)
    ca = ca_factory("ManualCA", token=token)
    token_services.deactivate(actor, token)
    csr, _ = csr_factory("CN=offline")
    with pytest.raises(CAOfflineError, match="Crypto token 'ManualToken' is offline"):
        _issue(ca, actor, csr)
    assert not Certificate.objects.filter(subject_dn="CN=offline").exists()
    token.refresh_from_db()
    token_services.activate(actor, token, "foo123")
    assert _issue(ca, actor, csr).row.subject_dn == "CN=offline"


def _changed_elsewhere(token, **values) -> None:
    """What another process's deactivation or key change leaves behind: the row changed, this process's cache not."""
    from django.db.models import F

    type(token).objects.filter(pk=token.pk).update(version=F("version") + 1, **values)


@pytest.mark.parametrize("deactivated", [True, False], ids=["deactivated", "key-changed"])
def test_a_token_changed_in_another_process_is_noticed_by_the_storing_insert(
        ca_factory, soft_token_factory, actor, csr_factory, deactivated):
    token = soft_token_factory("ElsewhereToken", auto_activate=False)
    ca = ca_factory("ElsewhereCA", token=token)
    _issue(ca, actor, csr_factory("CN=warm")[0])  # the key is open in this process now
    _changed_elsewhere(token, **({"activation_secret": ""} if deactivated else {}))
    csr, _ = csr_factory("CN=after-change")
    if deactivated:
        with pytest.raises(CAOfflineError, match="offline"):
            _issue(ca, actor, csr)
        assert not Certificate.objects.filter(subject_dn="CN=after-change").exists()
        assert AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").exists()
    else:  # signed again with the key read afresh, stored once
        assert _issue(ca, actor, csr).row.subject_dn == "CN=after-change"
        assert Certificate.objects.filter(subject_dn="CN=after-change").count() == 1
        token.refresh_from_db()
        assert token_services.cached_private_key(token.pk, ca.key_alias)[1] == token.version


def test_an_open_key_costs_no_token_state_statement(root_ca, actor, csr_factory):
    from django.test.utils import CaptureQueriesContext

    _issue(root_ca, actor, csr_factory("CN=warm-up")[0])
    with CaptureQueriesContext(connection) as queries:
        _issue(root_ca, actor, csr_factory("CN=second")[0])
    sql = [q["sql"] for q in queries.captured_queries]
    assert not any("token_state" in q or "FROM cryptotokens_cryptotoken WHERE id" in q for q in sql), sql
    assert any("cryptotokens_cryptotoken" in q and "INSERT INTO" in q or "insert_pki_certificate" in q for q in sql)


@pytest.mark.django_db(transaction=True)
def test_an_issuance_is_four_round_trips_with_every_check(root_ca, actor, csr_factory):
    """Outside any transaction (the group-commit path): BEGIN, the uniqueness lock sent with one query for the
    uniqueness rules and the role member check, the certificate INSERT in the audit append's statement, COMMIT.
    A statement too many or a check left out both fail here."""
    from django.test.utils import CaptureQueriesContext

    _issue(root_ca, actor, csr_factory("CN=warm-up")[0])
    req = IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                          csr=csr_factory("CN=counted")[0], username="counted")
    with CaptureQueriesContext(connection) as queries:
        row = issue(req).row
    sql = [q["sql"] for q in queries.captured_queries]
    assert len(sql) == 4, sql
    assert "unique_lock" in sql[1] and "unique_holders_and" in sql[1]
    assert "audit_try_append_insert_pki_certificate" in sql[2]
    assert Certificate.objects.get(pk=row.pk).username == "counted"
    assert AuditEvent.objects.filter(event_type="CERT_CREATION", object_id=row.serial).count() == 1
    assert audit.verify_chain().ok


class _FailingKey:
    """A key handle whose token fails at signing time, as an HSM that drops the session would."""

    def __init__(self, key):
        self._key = key

    def __getattr__(self, name):
        return getattr(self._key, name)

    def sign(self, *args, **kwargs):
        raise RuntimeError("CKR_DEVICE_ERROR")


def test_failed_signing_leaves_no_row(root_ca, actor, csr_factory, monkeypatch):
    real = issuance.get_private_key_by_id
    monkeypatch.setattr(issuance, "get_private_key_by_id", lambda token_id, alias: _FailingKey(real(token_id, alias)))
    monkeypatch.setattr(issuance, "cached_private_key", lambda token_id, alias: None)  # no open key: read afresh
    csr, _ = csr_factory("CN=never")
    with pytest.raises(CAOfflineError, match="could not sign"):
        _issue(root_ca, actor, csr)
    assert not Certificate.objects.filter(subject_dn="CN=never").exists()
    failure = AuditEvent.objects.filter(event_type="CERT_CREATION", outcome="FAILURE").latest("sequence")
    assert "could not sign" in failure.details["reason"]


def test_serial_collision_is_caught_by_the_database(root_ca, actor, csr_factory, monkeypatch):
    serials = iter([(1 << 152) + 7, (1 << 152) + 7, (1 << 152) + 8])
    monkeypatch.setattr(issuance, "new_serial", lambda: next(serials))
    csr, _ = csr_factory("CN=c1")
    first = _issue(root_ca, actor, csr)
    second = _issue(root_ca, actor, csr)  # collides once, signs again with the next serial
    assert first.certificate.serial_number == (1 << 152) + 7
    assert second.certificate.serial_number == (1 << 152) + 8
    assert Certificate.objects.filter(ca=root_ca).exclude(is_ca=True).count() == 2


def test_unauthorized_admin_is_refused(root_ca, csr_factory):
    from pki.auth.access import Actor

    nobody = Actor("nobody", role_rules={"RA": [("/ca_functionality", True)]})
    csr, _ = csr_factory("CN=x")
    with pytest.raises(AuthorizationDenied, match=f"/ca/{root_ca.pk}"):
        _issue(root_ca, nobody, csr)


@pytest.mark.django_db(transaction=True)
def test_concurrent_issuance_gives_distinct_serials(ca_factory, actor, csr_factory):
    ca = ca_factory("ConcurrentCA")
    profile = CertificateProfile.objects.get(name="ENDUSER")
    csr, _ = csr_factory("CN=concurrent")
    serials: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def worker():
        try:
            for _ in range(25):
                cert = issue(IssuanceRequest(ca=ca, actor=actor, profile=profile, csr=csr)).certificate
                with lock:
                    serials.append(cert.serial_number)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(serials) == 200 and len(set(serials)) == 200
    assert Certificate.objects.filter(ca=ca, subject_dn="CN=concurrent").count() == 200
    from pki.audit import verify_chain

    assert verify_chain().ok


def test_redacted_subject_stays_out_of_the_audit_log(root_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=Private Person,O=Test")
    row = _issue(root_ca, actor, csr, redact_subject=True).row
    assert row.subject_dn == "CN=Private Person,O=Test"  # the certificate table keeps it
    event = AuditEvent.objects.get(event_type="CERT_CREATION", object_id=row.serial)
    assert event.details["subject"] == audit.REDACTED
    assert "Private Person" not in str(event.details)


def test_csr_subject_that_cryptography_cannot_read(root_ca, actor):
    # PostalAddress is a SEQUENCE: cryptography writes it (pki.x509.dn's raw tag) but cannot read it back.
    from asn1crypto import core

    from pki.x509.dn import parse_dn

    postal = core.SequenceOf(spec=core.UTF8String, value=["Box 1", "Stockholm"]).dump()
    key = ec.generate_private_key(ec.SECP256R1())
    subject = parse_dn(f"CN=Odd,POSTALADDRESS=#{postal.hex()}")
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    with pytest.raises(KeyError):
        x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER)).subject  # noqa: B018
    row = _issue(root_ca, actor, x509.load_der_x509_csr(csr.public_bytes(serialization.Encoding.DER))).row
    assert "CN=Odd" in row.subject_dn and f"POSTALADDRESS=#{postal.hex()}" in row.subject_dn
