"""The `ca` command group: the same services as the UI, errors as CommandError."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import CommandError, call_command

from pki.models import CRL, Certificate


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def cli_pki(db, tmp_path):
    run("init")
    run("ca", "init", "--caname", "CliSub", "--dn", "CN=Cli Sub,O=Test,C=SE", "--tokenpass", "pw123",
        "--keyspec", "P-256", "--signedby", "ManagementCA")
    return tmp_path


def test_init_list_and_getcacert(cli_pki):
    listing = run("ca", "list")
    assert "ManagementCA" in listing and "CliSub" in listing and "signed by ManagementCA" in listing
    out = cli_pki / "chain.pem"
    run("ca", "getcacert", "--caname", "CliSub", "--chain", "-f", str(out))
    chain = x509.load_pem_x509_certificates(out.read_bytes())
    assert [c.subject.rfc4514_string() for c in chain] == ["CN=Cli Sub,O=Test,C=SE", "CN=ManagementCA,O=PKI Demo,C=SE"]
    assert "BEGIN CERTIFICATE" in run("ca", "getcacert", "--caname", "ManagementCA")


def test_issue_revoke_and_crl(cli_pki, csr_factory):
    csr, _ = csr_factory("CN=cli.example.com")
    csr_path = cli_pki / "req.csr"
    csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    cert_path = cli_pki / "cert.pem"
    out = run("ca", "issuecert", "--caname", "CliSub", "--csr", str(csr_path), "--certprofile", "SERVER",
              "--altname", "DNSNAME=cli.example.com", "--username", "cliuser", "-o", str(cert_path))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    serial = format(cert.serial_number, "x")
    assert serial in out
    assert Certificate.objects.get(serial=serial).username == "cliuser"
    assert "now revoked" in run("ca", "revokecert", "--caname", "CN=Cli Sub,O=Test,C=SE", "--serial", serial.upper(),
                                "--reason", "keyCompromise")
    assert "1 entries" in run("ca", "createcrl", "CliSub")
    crl = x509.load_der_x509_crl(bytes(CRL.objects.get(ca__name="CliSub").der))
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ca", "createcrl", "NoSuchCA"), "does not exist"),
        (("ca", "createcrl", "CliSub", "--delta"), "no full CRL"),
        (("ca", "revokecert", "--caname", "CliSub", "--serial", "zz"), "not a hexadecimal"),
        (("ca", "revokecert", "--caname", "CliSub", "--serial", "abc", "--reason", "bogus"), "No certificate"),
        (("ca", "issuecert", "--caname", "CliSub", "--csr", "/nonexistent.csr"), "Cannot read"),
        (("ca", "init", "--caname", "X"), "--dn is required"),
        (("ca", "init", "--caname", "X", "--dn", "CN=X"), "--tokenpass"),
        (("ca", "init", "--caname", "CliSub", "--dn", "CN=Y", "--tokenpass", "a"), "already exists"),
    ],
)
def test_cli_errors(cli_pki, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_issuecert_with_malformed_csr(cli_pki):
    bad = cli_pki / "bad.csr"
    bad.write_text("garbage")
    before = Certificate.objects.count()
    with pytest.raises(CommandError, match="not a valid PKCS#10"):
        run("ca", "issuecert", "--caname", "CliSub", "--csr", str(bad))
    assert Certificate.objects.count() == before
