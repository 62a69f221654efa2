"""Certificate authorities: root, sub-CA, import, renewal and rollover, default CA, bootstrap."""

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from cryptotokens.models import CryptoTokenKeyPair
from pki import bootstrap
from pki.choices import CAStatus
from pki.errors import ConflictError, NotFoundError, ValidationError
from pki.models import CACertificate, CertificateAuthority
from pki.services.cas import CASettings, apply_due_rollover, create_ca, edit_ca, get_ca, import_ca, renew_ca
from tests.conftest import pem


def test_root_ca_is_self_signed_ca_certificate(ca_factory):
    ca = ca_factory("Root1", key_spec="RSA2048", validity="5y")
    cert = ca.certificate
    assert cert.issuer == cert.subject
    assert cert.verify_directly_issued_by(cert) is None
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert ca.signature_algorithm == "SHA256WithRSA" and ca.is_root
    assert (cert.not_valid_after_utc - timezone.now()).days in range(1820, 1828)
    assert CACertificate.objects.filter(ca=ca).count() == 1
    assert ca.issued.filter(is_ca=True).count() == 1  # the CA certificate is in the certificate table too


@pytest.mark.parametrize(
    ("key_spec", "sig", "expected"),
    [
        ("P-256", None, "SHA256withECDSA"),
        ("P-384", None, "SHA384withECDSA"),
        ("Ed25519", None, "Ed25519"),
        ("RSA2048", "SHA256withRSAandMGF1", "SHA256withRSAandMGF1"),
    ],
)
def test_ca_key_types_and_signature_algorithms(ca_factory, key_spec, sig, expected, openssl):
    ca = ca_factory(f"CA-{key_spec}", key_spec=key_spec, signature_algorithm=sig)
    assert ca.signature_algorithm == expected
    openssl.write("ca.pem", pem(ca.certificate))
    assert "OK" in openssl("verify", "-CAfile", "ca.pem", "ca.pem").stdout


def test_sub_ca_signed_by_local_ca(root_ca, sub_ca, openssl):
    assert sub_ca.signed_by == root_ca
    sub_ca.certificate.verify_directly_issued_by(root_ca.certificate)
    assert root_ca.issued.filter(subject_dn=sub_ca.subject_dn, is_ca=True).exists()
    openssl.write("root.pem", pem(root_ca.certificate))
    openssl.write("sub.pem", pem(sub_ca.certificate))
    assert "OK" in openssl("verify", "-CAfile", "root.pem", "sub.pem").stdout


def test_duplicate_and_invalid_cas_are_refused(root_ca, soft_token, actor):
    with pytest.raises(ConflictError, match="already exists"):
        create_ca(actor, CASettings(name="TestRoot", subject_dn="CN=Other", crypto_token=soft_token, key_alias="k",
                                    key_spec="P-256"))
    with pytest.raises(ConflictError, match="subject DN"):
        create_ca(actor, CASettings(name="Other", subject_dn="CN=TestRoot,O=Test,C=SE", crypto_token=soft_token,
                                    key_alias="k", key_spec="P-256"))
    with pytest.raises(ValidationError, match="Unknown DN attribute"):
        create_ca(actor, CASettings(name="Bad", subject_dn="XX=1", crypto_token=soft_token, key_alias="k",
                                    key_spec="P-256"))
    with pytest.raises(ValidationError, match="needs a RSA key"):
        create_ca(actor, CASettings(name="Mismatch", subject_dn="CN=Mismatch", crypto_token=soft_token,
                                    key_alias="mm", key_spec="P-256", signature_algorithm="SHA256WithRSA"))
    # the refused CA left neither a CA row nor its freshly generated key
    assert not CertificateAuthority.objects.filter(name="Mismatch").exists()
    assert not CryptoTokenKeyPair.objects.filter(token=soft_token, alias="mm").exists()


def _external_chain():
    """A root and an intermediate made elsewhere (plain cryptography, no pki involved)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    def make(subject, issuer, key, issuer_key):
        now = timezone.now()
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now)
                .not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    root_key, sub_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name.from_rfc4514_string("CN=Elsewhere Root,O=Other")
    sub_name = x509.Name.from_rfc4514_string("CN=Elsewhere Sub,O=Other")
    return make(sub_name, root_name, sub_key, root_key), make(root_name, root_name, root_key, root_key)


def test_import_external_ca_for_trust_only(root_ca, actor, csr_factory):
    sub, root = _external_chain()
    ext = import_ca(actor, "ExternalSub", pem(sub, root))
    assert ext.status == CAStatus.EXTERNAL and ext.crypto_token is None
    assert ext.subject_dn == "CN=Elsewhere Sub,O=Other"
    assert [c.subject for c in ext.chain()] == [sub.subject, root.subject]
    with pytest.raises(ConflictError, match="already known as CA 'ExternalSub'"):
        import_ca(actor, "Again", pem(sub))
    with pytest.raises(ConflictError, match="already known as CA 'TestRoot'"):
        import_ca(actor, "LocalAgain", pem(root_ca.certificate))
    from pki.errors import CAOfflineError
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    csr, _ = csr_factory()
    with pytest.raises(CAOfflineError, match="external"):
        issue(IssuanceRequest(ca=ext, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=csr))


def test_import_refuses_non_ca_certificates(root_ca, actor, csr_factory):
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    csr, _ = csr_factory("CN=leaf")
    leaf = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                 csr=csr)).certificate
    with pytest.raises(ValidationError, match="not a CA certificate"):
        import_ca(actor, "Leaf", pem(leaf))
    with pytest.raises(ValidationError, match="Not a certificate"):
        import_ca(actor, "Junk", b"junk")


def test_import_refuses_a_subject_dn_longer_than_a_ca_name_holds(db, actor):
    """A CA certificate whose subject DN, as this CA writes it, exceeds the 1,024 characters a CA's subject DN column
    holds: a ValidationError that changes nothing (the INSERT used to fail with a database error, a 500)."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{i:02d}" + "u" * 60) for i in range(17)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    with pytest.raises(ValidationError, match="1024"):
        import_ca(actor, "LongName", pem(cert))
    assert not CertificateAuthority.objects.filter(name="LongName").exists()


def test_renew_with_same_key(root_ca, actor):
    old = root_ca.certificate
    renewed = renew_ca(actor, root_ca)
    new = renewed.certificate
    assert new.serial_number != old.serial_number
    assert new.public_key().public_numbers() == old.public_key().public_numbers()
    assert CACertificate.objects.filter(ca=root_ca).count() == 2


def test_renew_with_new_key(sub_ca, actor, root_ca):
    old_key = sub_ca.certificate.public_key()
    renewed = renew_ca(actor, sub_ca, new_key_alias="signKey2", new_key_spec="P-384")
    assert renewed.key_alias == "signKey2"
    assert renewed.certificate.public_key().public_numbers() != old_key.public_numbers()
    renewed.certificate.verify_directly_issued_by(root_ca.certificate)


def test_rollover_certificate_activates_at_its_time(root_ca, actor):
    current = root_ca.certificate
    at = timezone.now() + timedelta(days=7)
    ca = renew_ca(actor, root_ca, new_key_alias="next", new_key_spec="P-256", activate_at=at)
    assert ca.certificate == current and ca.key_alias == "signKey"
    assert ca.rollover_certificate is not None and ca.rollover_at == at
    assert not apply_due_rollover(ca)
    CertificateAuthority.objects.filter(pk=ca.pk).update(rollover_at=timezone.now() - timedelta(seconds=1))
    ca.refresh_from_db()
    assert apply_due_rollover(ca)
    assert ca.key_alias == "next" and ca.rollover_certificate is None
    assert ca.certificate.public_key().public_numbers() != current.public_key().public_numbers()


def test_one_default_ca(ca_factory, actor):
    a = ca_factory("A", is_default=True)
    b = ca_factory("B", is_default=True)
    a.refresh_from_db()
    assert not a.is_default and b.is_default
    edit_ca(actor, a, is_default=True, description="now default")
    assert list(CertificateAuthority.objects.filter(is_default=True)) == [a]


def test_edit_ca_rules(root_ca, actor):
    edit_ca(actor, root_ca, crl_period=timedelta(hours=6), status=CAStatus.OFFLINE)
    assert get_ca(root_ca.pk).crl_period == timedelta(hours=6)
    with pytest.raises(ValidationError, match="needs a RSA key"):
        edit_ca(actor, root_ca, signature_algorithm="SHA256WithRSA")
    with pytest.raises(ValidationError, match="Cannot edit"):
        edit_ca(actor, root_ca, subject_dn="CN=other")


def test_get_ca_by_id_name_and_dn(root_ca):
    assert get_ca(root_ca.pk) == get_ca("TestRoot") == get_ca("CN=TestRoot,O=Test,C=SE")
    assert get_ca("cn=TestRoot, o=Test, c=SE") == root_ca
    with pytest.raises(NotFoundError):
        get_ca("nope")


def test_bootstrap_creates_demo_pki_and_is_idempotent(db):
    from endentities.models import EndEntityProfile
    from pki.models import CertificateProfile, Role

    first = bootstrap.run()
    assert first.admin_password
    ca = CertificateAuthority.objects.get(name="ManagementCA")
    key = ca.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 3072
    assert ca.signature_algorithm == "SHA256WithRSA" and ca.is_default
    assert 3650 <= (ca.certificate.not_valid_after_utc - ca.certificate.not_valid_before_utc).days <= 3653
    assert set(CertificateProfile.objects.values_list("name", flat=True)) >= {
        "ENDUSER", "SERVER", "SUBCA", "ROOTCA", "OCSPSIGNER"}
    assert EndEntityProfile.objects.filter(name="EMPTY").exists()
    assert set(Role.objects.values_list("name", flat=True)) == {
        "Super Administrator Role", "RA Administrator", "Auditor"}
    assert ca.crypto_token.auto_activate
    second = bootstrap.run()
    assert second.created == [] and second.admin_password is None
    assert CertificateAuthority.objects.count() == 1
