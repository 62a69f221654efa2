"""``manage.py keybind`` with EJBCA's verbs and argument names, end to end on a soft token and a local CA."""

from __future__ import annotations

import io

import pytest
from cryptography import x509
from django.core.management import call_command
from django.core.management.base import CommandError

from keybindings.models import InternalKeyBinding


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("keybind", *args, stdout=out)
    return out.getvalue()


def test_create_issue_activate_renew_export_delete(db, kb_token, root_ca, tmp_path):
    out = run("create", "--name", "peer", "--type", "AuthenticationKeyBinding", "--token", kb_token.name,
              "--keyspec", "P-256", "--addtrust", f"{root_ca.name}", "-protocolAndCipherSuite",
              "TLSv1.3;TLS_AES_256_GCM_SHA384")
    binding = InternalKeyBinding.objects.get(name="peer")
    assert f"id {binding.pk} created" in out
    assert binding.trusted_certificates == [{"ca_id": root_ca.pk, "serial": ""}]
    assert binding.protocol_and_cipher_suites == ["TLSv1.3;TLS_AES_256_GCM_SHA384"]

    with pytest.raises(CommandError, match="clientAuth"):
        run("issue", "--name", "peer", "--caname", root_ca.name, "--certprofile", "SERVER")
    with pytest.raises(CommandError, match="has no certificate"):
        run("setstatus", "--name", "peer", "--status", "ACTIVE")
    assert "Issued certificate" in run("issue", "--name", "peer", "--caname", root_ca.name, "--certprofile",
                                       "ENDUSER", "--subjectdn", "CN=peer,O=Test")
    assert "updated to ACTIVE" in run("setstatus", "--name", "peer", "-v", "active")
    listing = run("list")
    assert '"peer"' in listing and "ACTIVE" in listing and "certificate VALID" in listing

    first = InternalKeyBinding.objects.get(name="peer").certificate
    assert "Renewed 'peer'" in run("renew", "--name", "peer")
    binding.refresh_from_db()
    assert binding.certificate_id != first.pk
    info = run("info", "--name", "peer")
    assert first.serial.upper() in info  # the history
    run("export", "--name", "peer", "-f", str(tmp_path / "peer.pem"))
    exported = x509.load_pem_x509_certificate((tmp_path / "peer.pem").read_bytes())
    assert format(exported.serial_number, "x") == binding.certificate.serial
    assert "Deleted" in run("delete", "--name", "peer")
    assert not InternalKeyBinding.objects.filter(name="peer").exists()


def test_gencsr_then_import_the_certificate_issued_elsewhere(db, actor, kb_token, root_ca, tmp_path, csr_factory):
    from cryptotokens import services as tokens
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    tokens.generate_key_pair(actor, kb_token, "ocspKey", "P-256")
    run("create", "--name", "resp", "--type", "OcspKeyBinding", "--token", kb_token.name, "--alias", "ocspKey",
        "--sigalg", "SHA256withECDSA")
    assert "Stored PEM encoded PKCS#10 request" in run("gencsr", "--name", "resp", "-f", str(tmp_path / "r.csr"))
    csr = x509.load_pem_x509_csr((tmp_path / "r.csr").read_bytes())
    assert csr.is_signature_valid
    # The CA signs the request (as another system would), and the certificate comes back by file.
    row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="OCSPSIGNER"),
                                csr=csr, subject_dn="CN=resp,O=Test")).row
    (tmp_path / "r.pem").write_bytes(row.der)
    assert "Operation completed successfully" in run("import", "--name", "resp", "-f", str(tmp_path / "r.pem"))
    assert InternalKeyBinding.objects.get(name="resp").certificate_id == row.pk


@pytest.mark.parametrize(("args", "message"), [
    (("info", "--name", "nope"), "does not exist"),
    (("create", "--name", "x", "--type", "AuthenticationKeyBinding", "--token", "NoToken", "--keyspec", "P-256"),
     "does not exist"),
    (("create", "--name", "x", "--type", "AuthenticationKeyBinding", "--token", "KbToken", "--keyspec", "P-256",
      "-protocolAndCipherSuite", "TLSv1.1;TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"), "TLS 1.1 or older"),
    (("import", "--name", "nope", "-f", "/nonexistent"), "does not exist"),
])
def test_refusals_are_command_errors(db, kb_token, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not InternalKeyBinding.objects.filter(name="x").exists()
