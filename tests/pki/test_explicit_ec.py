"""Explicit ECC parameters (ICAO CSCA/DS): certificates whose EC subject key writes the curve out."""

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki.issuance import IssuanceRequest, issue
from pki.models import Certificate, CertificateProfile
from pki.x509.explicit_ec import ExplicitECError, explicit_public_key_info, is_explicit


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1(), ec.BrainpoolP256R1(),
                                   ec.BrainpoolP384R1(), ec.BrainpoolP512R1()])
def test_reencoding_keeps_the_point_and_writes_the_curve(curve):
    key = ec.generate_private_key(curve).public_key()
    named = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    explicit = explicit_public_key_info(named)
    assert is_explicit(explicit) and not is_explicit(named)
    from asn1crypto import keys

    a, b = keys.PublicKeyInfo.load(named), keys.PublicKeyInfo.load(explicit)
    assert a["public_key"].native == b["public_key"].native
    assert b["algorithm"]["parameters"].chosen["curve"]["a"].native is not None


def test_rsa_keys_are_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa

    der = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ExplicitECError):
        explicit_public_key_info(der)


def test_ca_on_explicit_token_issues_explicit_keys(ca_factory, soft_token_factory, actor, csr_factory, openssl):
    token = soft_token_factory("IcaoToken", explicit_ecc_parameters=True)
    csca = ca_factory("CSCA", key_spec="P-256", token=token)
    csr, _ = csr_factory("CN=Document Signer,C=SE", key_spec="P-256")
    result = issue(IssuanceRequest(ca=csca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                   csr=csr))
    der = bytes(Certificate.objects.get(pk=result.row.pk).der)
    spki = asn1_x509.Certificate.load(der)["tbs_certificate"]["subject_public_key_info"].dump()
    assert is_explicit(spki)
    # the CSCA's own certificate carries its key with explicit parameters too
    assert is_explicit(asn1_x509.Certificate.load(bytes(csca.certificate_der))["tbs_certificate"]
                       ["subject_public_key_info"].dump())
    openssl.write("ds.der", der)
    assert "Field Type: prime-field" in openssl("x509", "-inform", "DER", "-in", "ds.der", "-noout", "-text").stdout
    # Signed again over the changed TBSCertificate: the signature verifies with the CSCA key. (OpenSSL 3's
    # path validation refuses explicit-parameter keys by design — error 94 — which is why ICAO tools
    # check these chains; the signature itself is checked here.)
    from cryptography import x509

    from cryptotokens.models import CryptoTokenKeyPair

    csca_key = serialization.load_der_public_key(bytes(CryptoTokenKeyPair.objects.get(token=token).public_key_der))
    for cert_der in (der, bytes(csca.certificate_der)):
        cert = x509.load_der_x509_certificate(cert_der)
        csca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))


def test_plain_token_keeps_named_curves(root_ca, actor, csr_factory):
    csr, _ = csr_factory("CN=plain")
    row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                csr=csr)).row
    assert not is_explicit(asn1_x509.Certificate.load(bytes(row.der))["tbs_certificate"]
                           ["subject_public_key_info"].dump())
