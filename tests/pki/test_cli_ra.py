"""``createcert`` and the ``ra`` subcommands issue 14 adds, with ``ejbca.sh``'s arguments: revokecert,
unrevokeendentity, getendentitycert, setsubjectdn, renameendentity."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from endentities.models import EndEntity
from pki.choices import CertificateStatus
from pki.models import AuditEvent, Certificate
from tests.pki.cli_support import refused, run

MANAGEMENT_DN = "CN=ManagementCA,O=PKI Demo,C=SE"


@pytest.fixture
def alice(cli_init, csr_factory, tmp_path):
    """ra addendentity + createcert as EJBCA's documentation shows them; the certificate's path."""
    run("ra", "addendentity", "--username", "alice", "--password", "foo123", "--dn", "CN=Alice,O=Example,C=SE",
        "--caname", "ManagementCA", "--type", "1", "--token", "USERGENERATED", "--certprofile", "ENDUSER",
        "--eeprofile", "EMPTY")
    csr, _ = csr_factory("CN=ignored")
    (tmp_path / "alice.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    err = StringIO()
    out = run("createcert", "--username", "alice", "--password", "foo123", "-c", str(tmp_path / "alice.csr"),
              "-f", str(tmp_path / "alice.pem"), stderr=err)
    assert "foo123" not in out + err.getvalue()
    return tmp_path / "alice.pem"


def test_createcert_issues_under_the_end_entity(alice):
    cert = x509.load_pem_x509_certificate(alice.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=Alice,O=Example,C=SE"
    row = Certificate.objects.get(serial=format(cert.serial_number, "x"))
    assert row.username == "alice" and row.ca.name == "ManagementCA"
    assert EndEntity.objects.get(username="alice").status == 40  # GENERATED


@pytest.mark.parametrize(("args", "message"), [
    (("--username", "alice", "--password", "wrong"), "Wrong username or enrollment code"),
    (("--username", "nobody", "--password", "foo123"), "Wrong username or enrollment code"),
])
def test_createcert_refusals(alice, args, message, tmp_path):
    before = Certificate.objects.count()
    assert message in refused("createcert", *args, "-c", str(tmp_path / "alice.csr"), "-f", str(tmp_path / "x.pem"))
    assert Certificate.objects.count() == before and not (tmp_path / "x.pem").exists()


def test_revokecert_hold_then_unrevokeendentity(alice):
    serial = format(x509.load_pem_x509_certificate(alice.read_bytes()).serial_number, "X")
    assert "on hold" in run("ra", "revokecert", "--dn", MANAGEMENT_DN, "-s", serial, "-r", "6")
    assert Certificate.objects.get(serial=serial.lower()).status == CertificateStatus.ON_HOLD
    assert "1 certificate(s) of 'alice' taken off hold" in run("ra", "unrevokeendentity", "--username", "alice")
    assert Certificate.objects.get(serial=serial.lower()).status == CertificateStatus.ACTIVE
    assert "now revoked" in run("ra", "revokecert", "--dn", MANAGEMENT_DN, "-s", serial, "-r", "1")
    row = Certificate.objects.get(serial=serial.lower())
    assert (row.status, row.revocation_reason) == (CertificateStatus.REVOKED, 1)
    assert "already revoked" in refused("ra", "revokecert", "--dn", MANAGEMENT_DN, "-s", serial, "-r", "1").lower() \
        or Certificate.objects.get(serial=serial.lower()).revocation_reason == 1
    events = list(AuditEvent.objects.filter(actor="cli", object_id=serial.lower()).order_by("sequence")
                  .values_list("event_type", flat=True))
    assert events[-3:] == ["CERT_REVOKED", "CERT_UNREVOKED", "CERT_REVOKED"]


def test_getendentitycert(alice):
    out = run("ra", "getendentitycert", "--username", "alice")
    certs = x509.load_pem_x509_certificates(out[out.index("-----BEGIN"):].encode())
    assert certs == [x509.load_pem_x509_certificate(alice.read_bytes())]


def test_setsubjectdn_then_the_next_certificate_has_it(alice, tmp_path):
    run("ra", "setsubjectdn", "--username", "alice", "--dn", "CN=Alice Smith,O=Example,C=SE")
    ee = EndEntity.objects.get(username="alice")
    assert ee.subject_dn == "CN=Alice Smith,O=Example,C=SE"
    assert AuditEvent.objects.filter(actor="cli", event_type="RA_EDITENDENTITY", object_id="alice").exists()


def test_renameendentity_moves_the_certificates(alice):
    run("ra", "addendentity", "--username", "bob", "--password", "foo123", "--dn", "CN=Bob", "--caname",
        "ManagementCA", "--eeprofile", "EMPTY")
    assert "already exists" in refused("ra", "renameendentity", "--current", "alice", "--new", "bob")
    assert "renamed to 'alice2'" in run("ra", "renameendentity", "--current", "alice", "--new", "alice2")
    assert not EndEntity.objects.filter(username="alice").exists()
    assert Certificate.objects.filter(username="alice2").count() == 1
    assert not Certificate.objects.filter(username="alice").exists()
    assert "does not exist" in refused("ra", "renameendentity", "--current", "alice", "--new", "x")
