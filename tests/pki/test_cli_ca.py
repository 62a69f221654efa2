"""``manage.py ca`` with ``ejbca.sh ca``'s subcommands and arguments, as EJBCA's CLI documentation writes them."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from cryptotokens.models import CryptoToken, CryptoTokenKeyPair
from pki.choices import CAStatus
from pki.models import CRL, AuditEvent, CertificateAuthority, CertificateProfile
from tests.pki.cli_support import refused, run

ISSUING_DN = "CN=Issuing CA,O=Example,C=SE"


@pytest.fixture
def issuing(cli_init):
    """EJBCA's documented sub-CA example: an RSA CA on a new soft token, signed by ManagementCA."""
    run("ca", "init", "--caname", "IssuingCA", "--dn", ISSUING_DN, "--tokenType", "soft", "--tokenPass", "foo123",
        "--keyspec", "2048", "--keytype", "RSA", "-v", "3650", "--policy", "null", "-s", "SHA256WithRSA",
        "--signedby", "ManagementCA")
    return CertificateAuthority.objects.get(name="IssuingCA")


def test_ca_init_as_ejbca_documents_it(issuing):
    cert = issuing.certificate
    assert issuing.signed_by.name == "ManagementCA" and issuing.signature_algorithm == "SHA256WithRSA"
    assert cert.public_key().key_size == 2048
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (3649, 3650)
    assert CryptoToken.objects.get(name="IssuingCA").auto_activate


@pytest.mark.parametrize(("args", "algorithm"), [
    # ejbca.sh's positional form: caname dn tokentype tokenpass keyspec keytype validity policy signalg
    (("RootEC", "CN=Root EC,O=Example,C=SE", "soft", "foo123", "secp256r1", "ECDSA", "365", "null",
      "SHA256WithECDSA"), "secp256r1"),
    (("--caname", "RootEd", "--dn", "CN=Root Ed", "--tokenType", "soft", "--tokenPass", "foo123",
      "--keytype", "Ed25519", "-v", "30"), "Ed25519"),
    (("--caname", "Sub4096", "--dn", "CN=Sub 4096", "--tokenPass", "foo123", "--keyspec", "4096", "--keytype",
      "RSA", "--signedby", "{ManagementCA id}"), "4096"),  # --signedby takes the CA id too
])
def test_ca_init_forms(cli_init, args, algorithm):
    management = str(CertificateAuthority.objects.get(name="ManagementCA").pk)
    err = StringIO()
    out = run("ca", "init", *[a.replace("{ManagementCA id}", management) for a in args], stderr=err)
    assert "Created CA" in out and "foo123" not in out + err.getvalue()
    ca = CertificateAuthority.objects.latest("pk")
    key = ca.certificate.public_key()
    assert algorithm in {getattr(getattr(key, "curve", None), "name", None), str(getattr(key, "key_size", "")),
                         type(key).__name__.replace("PublicKey", "")}


def test_ca_init_on_an_existing_token_key(cli_init):
    run("cryptotoken", "create", "--token", "HsmLike", "--pin", "foo123", "--autoactivate", "true")
    run("cryptotoken", "generatekey", "--token", "HsmLike", "--alias", "caKey", "--keyspec", "secp384r1")
    run("ca", "init", "--caname", "OnKey", "--dn", "CN=On Key", "--tokenName", "HsmLike", "--existingkey", "caKey")
    ca = CertificateAuthority.objects.get(name="OnKey")
    pair = CryptoTokenKeyPair.objects.get(token__name="HsmLike", alias="caKey")
    assert ca.key_alias == "caKey" and bytes(pair.public_key_der) == ca.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("args", "capability"), [
    (("init", "--caname", "P", "--dn", "CN=P", "--tokenPass", "x", "--policy", "2.5.29.32.0"), "certificate policies"),
    (("init", "--caname", "P", "--dn", "CN=P", "--tokenType", "org.cesecore.keys.token.PKCS11CryptoToken",
      "--tokenPass", "x"), "PKCS11CryptoToken"),
    (("init", "--caname", "P", "--dn", "CN=P", "--tokenPass", "x", "--signedby", "External"), "external CA"),
    (("init", "--caname", "P", "--dn", "CN=P", "--tokenPass", "x", "-superadmincn", "SuperAdmin"), "-superadmincn"),
    (("importca", "--caname", "P", "-f", "ca.p12", "-kspassword", "foo123"), "private keys"),
    (("importcert", "--username", "u", "--password", "p", "--caname", "ManagementCA", "-a", "ACTIVE", "-f", "c.pem"),
     "issued elsewhere"),
])
def test_what_this_project_cannot_do_exits_2_naming_it(cli_init, args, capability):
    message = refused("ca", *args, code=2)
    assert "Not supported here" in message and capability in message
    assert not CertificateAuthority.objects.filter(name="P").exists()


def test_listcas_info_and_the_old_list(issuing):
    listing = run("ca", "listcas")
    assert "ManagementCA" in listing and "IssuingCA" in listing and listing == run("ca", "list")
    info = run("ca", "info", "--caname", "IssuingCA")
    assert f"Subject DN: {ISSUING_DN}" in info and "Issuer DN: CN=ManagementCA" in info


def test_createcrl_for_one_ca_every_ca_and_a_delta(issuing):
    before = {ca.name: ca.crls.count() for ca in CertificateAuthority.objects.all()}
    assert "CRL #2 for IssuingCA" in run("ca", "createcrl", "--caname", "IssuingCA")
    assert "Delta CRL #3 for IssuingCA" in run("ca", "createcrl", "--caname", "IssuingCA", "-delta")
    out = run("ca", "createcrl")  # without a name: every active CA
    assert "for ManagementCA" in out and "for IssuingCA" in out
    assert CRL.objects.filter(ca=issuing).count() == before["IssuingCA"] + 3
    assert "CRL #" in run("ca", "createcrl", "IssuingCA")  # this project's earlier positional form


def test_getcacert_and_getcrl_files(issuing, tmp_path):
    run("ca", "getcacert", "--caname", "IssuingCA", "-f", str(tmp_path / "ca.der"), "-der")
    assert x509.load_der_x509_certificate((tmp_path / "ca.der").read_bytes()) == issuing.certificate
    run("ca", "createcrl", "--caname", "IssuingCA", "-delta")
    run("ca", "getcrl", "--caname", "IssuingCA", "-f", str(tmp_path / "crl.der"))
    run("ca", "getcrl", "--caname", "IssuingCA", "-f", str(tmp_path / "delta.pem"), "-delta", "-pem")
    run("ca", "getcrl", "--caname", "IssuingCA", "-f", str(tmp_path / "one.der"), "-crlnumber", "1")
    full = x509.load_der_x509_crl((tmp_path / "crl.der").read_bytes())
    delta = x509.load_pem_x509_crl((tmp_path / "delta.pem").read_bytes())
    assert full.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == 1
    assert "no CRL number 99" in refused("ca", "getcrl", "--caname", "IssuingCA", "-f", str(tmp_path / "x"),
                                         "-crlnumber", "99")


def test_importcacert(issuing, tmp_path):
    pem = issuing.certificate.public_bytes(serialization.Encoding.PEM)
    issuing.delete()
    (tmp_path / "ext.pem").write_bytes(pem)
    out = run("ca", "importcacert", "--caname", "External", "-f", str(tmp_path / "ext.pem"))
    assert "Imported CA 'External'" in out
    assert CertificateAuthority.objects.get(name="External").status == CAStatus.EXTERNAL
    assert "already" in refused("ca", "importcacert", "Again", str(tmp_path / "ext.pem"))  # positional form


def test_renewca_with_the_same_key_and_with_a_new_one(issuing):
    old = issuing.certificate
    run("ca", "renewca", "--caname", "IssuingCA")
    same = CertificateAuthority.objects.get(pk=issuing.pk)
    assert same.certificate.serial_number != old.serial_number and same.key_alias == "signKey"
    assert same.certificate.public_key() == old.public_key()
    out = run("ca", "renewca", "--caname", "IssuingCA", "-R")
    new = CertificateAuthority.objects.get(pk=issuing.pk)
    assert new.key_alias == "signKey-1" and "signKey-1" in out
    assert new.certificate.public_key() != old.public_key() and new.certificate.public_key().key_size == 2048


def test_deactivateca_and_activateca(issuing):
    assert "off line" in run("ca", "deactivateca", "--caname", "IssuingCA")
    assert CertificateAuthority.objects.get(pk=issuing.pk).status == CAStatus.OFFLINE
    assert "is active" in run("ca", "activateca", "IssuingCA")
    assert CertificateAuthority.objects.get(pk=issuing.pk).status == CAStatus.ACTIVE
    events = list(AuditEvent.objects.filter(object_type="ca", object_id=str(issuing.pk),
                                            event_type__startswith="CA_SERVICE").order_by("sequence")
                  .values_list("event_type", "actor"))
    assert events == [("CA_SERVICEDEACTIVATE", "cli"), ("CA_SERVICEACTIVATE", "cli")]


def test_editca(issuing):
    assert "crl_period (hours)" in run("ca", "editca", "-listFields")
    run("ca", "editca", "--caname", "IssuingCA", "--field", "crl_period", "--value", "12")
    run("ca", "editca", "--caname", "IssuingCA", "--field", "enforce_unique_dn", "--value", "false")
    ca = CertificateAuthority.objects.get(pk=issuing.pk)
    assert ca.crl_period.total_seconds() == 12 * 3600 and ca.enforce_unique_dn is False
    assert "12:00:00" in run("ca", "editca", "--caname", "IssuingCA", "--field", "crl_period", "-getValue")
    assert "not a field" in refused("ca", "editca", "--caname", "IssuingCA", "--field", "subject_dn", "--value", "x")
    assert "takes hours" in refused("ca", "editca", "--caname", "IssuingCA", "--field", "crl_period", "--value", "x")


def test_listexpired(issuing, csr_factory, tmp_path):
    csr, _ = csr_factory("CN=soon.example")
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    run("ca", "issuecert", "--caname", "IssuingCA", "--csr", str(tmp_path / "r.csr"), "--certprofile", "SERVER",
        "-o", str(tmp_path / "c.pem"))
    assert "CN=soon.example" not in run("ca", "listexpired", "-d", "30")
    assert "CN=soon.example" in run("ca", "listexpired", "-d", "800")


def test_exportprofiles_and_importprofiles(cli_init, tmp_path):
    from pki.auth.access import Actor
    from pki.services.profiles import clone_profile, save_profile

    actor = Actor.system_actor("test")
    profile = clone_profile(actor, CertificateProfile.objects.get(name="SERVER"), "WebServer")
    save_profile(actor, "WebServer", {"validity": "397d"}, profile)
    assert "Wrote 1 certificate profile" in run("ca", "exportprofiles", "-d", str(tmp_path))
    CertificateProfile.objects.filter(name="WebServer").delete()
    assert "Imported certificate profile 'WebServer'" in run("ca", "importprofiles", "-d", str(tmp_path))
    again = CertificateProfile.objects.get(name="WebServer")
    assert again.validity == "397d" and again.extended_key_usage == profile.extended_key_usage
    assert "exists already" in run("ca", "importprofiles", "-d", str(tmp_path))
