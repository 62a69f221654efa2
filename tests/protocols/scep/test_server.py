"""The SCEP endpoint: URLs and aliases, GetCACaps, GetCACert (single, chain, default CA), GetCACertChain,
GetCRL, GetCert, oversize and malformed bodies, and CA-mode enrollment with its refusals."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import Certificate
from protocols.scep.messages import FailInfo, PkiStatus, parse_degenerate
from protocols.scep.messages import client as scep_client

from .server_fixtures import *  # noqa: F403
from .server_fixtures import DEFAULT_URL, ScepTestClient, client_key, make_csr, openssl_verify, own, self_signed

pytestmark = pytest.mark.django_db

CAPS = "POSTPKIOperation\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3\nAES\nSCEPStandard"
CAPS_ROLLOVER = "POSTPKIOperation\nGetNextCACert\nRenewal\nSHA-512\nSHA-256\nSHA-1\nDES3\nAES\nSCEPStandard"


# --- URLs and aliases --------------------------------------------------------------------------------------

@pytest.mark.parametrize("alias, url_alias, status", [
    ("scep", None, 200),                 # the default alias at .../apply/scep/pkiclient.exe
    ("scep", "scep", 200),
    ("my-alias_1", "my-alias_1", 200),   # dashes and underscores
    ("other", "missing", 404),           # unknown alias
    ("scep", "bad.alias", 404),          # invalid characters
    ("scep", "bad%20alias", 404),
    ("scep", "x" * 33, 404),             # longer than 32
])
def test_alias_from_url(client, scep_ca, alias_factory, alias, url_alias, status):
    alias_factory(alias, default_ca=scep_ca)
    url = DEFAULT_URL if url_alias is None else f"/ejbca/publicweb/apply/scep/{url_alias}/pkiclient.exe"
    resp = client.get(url, {"operation": "GetCACaps"})
    assert resp.status_code == status
    if status == 200:
        assert resp.content.decode() == CAPS


def test_short_url_and_disabled_alias(client, scep_ca, alias_factory, actor):
    from protocols.scep import services

    alias_factory("short", default_ca=scep_ca)
    assert client.get("/scep/short/pkiclient.exe", {"operation": "GetCACaps"}).status_code == 200
    services.edit_alias(actor, "short", enabled=False)
    assert client.get("/scep/short/pkiclient.exe", {"operation": "GetCACaps"}).status_code == 404


@pytest.mark.parametrize("message, expected", [
    (None, CAPS),                # the alias's CA
    ("ScepCA", CAPS),            # named, sscep style
    ("NoSuchCA", None),          # unknown CA: 404, as GetCACert answers
])
def test_get_ca_caps_exact_text(scep, scep_ca, alias_factory, message, expected):
    alias_factory(default_ca=scep_ca)
    resp = scep.get("GetCACaps", message)
    if expected is None:
        assert resp.status_code == 404
        return
    assert resp.status_code == 200
    assert resp["Content-Type"].startswith("text/plain")
    assert resp.content.decode() == expected


def test_get_ca_caps_with_rollover_certificate(scep, scep_ca, alias_factory, actor):
    from datetime import timedelta

    from django.utils import timezone

    from pki.services.cas import renew_ca

    alias_factory(default_ca=scep_ca)
    renew_ca(actor, scep_ca, new_key_alias="nextKey", new_key_spec="RSA2048",
             activate_at=timezone.now() + timedelta(days=1))
    assert scep.get("GetCACaps").content.decode() == CAPS_ROLLOVER
    assert scep.get("GetCACaps", "ScepCA").content.decode() == CAPS_ROLLOVER


def test_unknown_operation_and_missing_parameters(scep, scep_ca, alias_factory):
    alias_factory(default_ca=scep_ca)
    assert scep.get("Nonsense").status_code == 400
    assert scep.http.get(scep.url).status_code == 400
    assert scep.get("PKIOperation").status_code == 400


# --- GetCACert, GetCACertChain -------------------------------------------------------------------------------

def test_get_ca_cert_root_is_single_der(scep, scep_ca, alias_factory):
    alias_factory(default_ca=scep_ca)
    resp = scep.get("GetCACert")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/x-x509-ca-cert"
    assert x509.load_der_x509_certificate(resp.content) == scep_ca.certificate


@pytest.mark.parametrize("full_chain, content_type, count", [
    (True, "application/x-x509-ca-ra-cert", 2),
    (False, "application/x-x509-ca-cert", 1),
])
def test_get_ca_cert_intermediate(scep, ca_factory, scep_ca, alias_factory, full_chain, content_type, count):
    sub = ca_factory("ScepSub", key_spec="RSA2048", signed_by=scep_ca)
    alias_factory(default_ca=sub, return_ca_chain=full_chain)
    resp = scep.get("GetCACert")
    assert resp["Content-Type"] == content_type
    certs = parse_degenerate(resp.content)[0] if count > 1 else [x509.load_der_x509_certificate(resp.content)]
    assert set(certs) == set([sub.certificate, scep_ca.certificate][:count])  # a SET OF: DER order


def test_get_ca_cert_chain(scep, ca_factory, scep_ca, alias_factory):
    sub = ca_factory("ScepSub", key_spec="RSA2048", signed_by=scep_ca)
    alias_factory(default_ca=sub)
    resp = scep.get("GetCACertChain")
    assert resp["Content-Type"] == "application/x-x509-ca-ra-cert-chain"
    assert set(parse_degenerate(resp.content)[0]) == {sub.certificate, scep_ca.certificate}


def test_get_ca_cert_ca_selection(scep, ca_factory, scep_ca, alias_factory, actor, settings):
    from pki.services.cas import set_default_ca

    other = ca_factory("OtherCA", key_spec="RSA2048")
    alias_factory()  # no CA of its own
    assert scep.get("GetCACert").status_code == 404          # nothing to fall back on
    set_default_ca(actor, other)
    assert scep.ca_certs() == [other.certificate]           # the installation's default CA
    settings.PKI_SCEP_DEFAULT_CA = "ScepCA"
    assert scep.ca_certs() == [scep_ca.certificate]         # scep.defaultca
    assert scep.ca_certs("OtherCA") == [other.certificate]  # the message names the CA
    assert scep.get("GetCACert", "NoSuchCA").status_code == 404


def test_mobileiron_identifier(scep, ca_factory, scep_ca, alias_factory):
    alias_factory(default_ca=scep_ca)
    assert scep.ca_certs("MobileIronSCEP") == [scep_ca.certificate]  # no CA of that name: the alias's
    mobile = ca_factory("MobileIronSCEP", key_spec="RSA2048")
    assert scep.ca_certs("MobileIronSCEP") == [mobile.certificate]    # a CA named so, as the seed says


# --- bodies that are not SCEP messages ------------------------------------------------------------------------

def test_oversize_body_is_413_before_parsing(scep, scep_ca, alias_factory):
    alias_factory(default_ca=scep_ca, max_body_size=2048)
    assert scep.post(b"\x30" + b"\x00" * 4096).status_code == 413
    assert scep.get_pki(b"\x30" * 4096).status_code == 413


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30\x80" * 100])
def test_malformed_body_is_plain_400(scep, scep_ca, alias_factory, body):
    alias_factory(default_ca=scep_ca)
    resp = scep.post(body)
    assert resp.status_code == 400
    assert resp["Content-Type"].startswith("text/plain")


# --- CA mode enrollment ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, cipher, digest, include_ca", [
    ("POST", "aes256", "sha256", True),
    ("GET", "aes128", "sha256", False),
    ("POST", "des3", "sha512", True),
    ("POST", "aes192", "sha1", False),
])
def test_ca_mode_enrollment(scep, scep_ca, alias_factory, end_entity_factory, openssl, method, cipher, digest,
                            include_ca):
    alias_factory(default_ca=scep_ca, include_ca=include_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(1)
    csr = make_csr(key, "CN=router1,O=Test,C=SE", "foo123")
    result = scep.enroll(csr, key, scep_ca.certificate, method=method, cipher=cipher, digest=digest)
    assert result.status == PkiStatus.SUCCESS
    assert result.cipher == cipher  # the reply uses the request's cipher
    cert = own(result, key)
    assert set(result.certificates) == {cert, scep_ca.certificate} if include_ca else result.certificates == [cert]
    assert Certificate.objects.filter(username="router1").count() == 1
    assert EndEntity.objects.get(username="router1").status == EndEntityStatus.GENERATED
    openssl_verify(openssl, cert, [scep_ca.certificate])


def test_ca_mode_serial_number_as_username(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("FTX1234", "foo123", ca=scep_ca, dn="SN=FTX1234")
    key = client_key(2)
    result = scep.enroll(make_csr(key, "SN=FTX1234", "foo123"), key, scep_ca.certificate)
    assert result.status == PkiStatus.SUCCESS


@pytest.mark.parametrize("username, password, fail_info", [
    ("router1", "wrong", FailInfo.BAD_REQUEST),     # wrong challenge password
    ("nobody", "foo123", FailInfo.BAD_REQUEST),     # unknown user
    ("router1", None, FailInfo.BAD_REQUEST),        # no challenge at all
])
def test_ca_mode_refusals_change_nothing_but_the_counter(scep, scep_ca, alias_factory, end_entity_factory,
                                                         username, password, fail_info):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    before = EndEntity.objects.get(username="router1")
    key = client_key(3)
    result = scep.enroll(make_csr(key, f"CN={username}", password), key, scep_ca.certificate)
    assert result.status == PkiStatus.FAILURE
    assert result.fail_info == fail_info
    after = EndEntity.objects.get(username="router1")
    assert Certificate.objects.filter(username="router1").count() == 0
    assert (after.status, after.request_counter, after.password_hash) == \
        (before.status, before.request_counter, before.password_hash)
    expected_failures = 1 if username == "router1" else 0  # a missing code counts as a wrong one
    assert after.failed_login_count == expected_failures


def test_used_code_is_refused(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(4)
    assert scep.enroll(make_csr(key, "CN=router1", "foo123"), key, scep_ca.certificate).status == PkiStatus.SUCCESS
    # A new transaction (the same one again would get its certificate again: RFC 8894 3.3.1).
    again = scep.enroll(make_csr(key, "CN=router1", "foo123"), key, scep_ca.certificate, transaction_id="NEW")
    assert (again.status, again.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_REQUEST)
    assert Certificate.objects.filter(username="router1").count() == 1


def test_bad_signature_is_bad_message_check(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(5)
    csr = make_csr(key, "CN=router1", "foo123")
    signer = self_signed(key, "client")
    request = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate)
    tampered = bytearray(request.data)
    tampered[-10] ^= 0xFF  # inside the signature value
    resp = scep.post(bytes(tampered))
    assert resp.status_code == 200
    result = scep_client.parse_cert_rep(resp.content, key, signer, ca_certs=[scep_ca.certificate])
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_MESSAGE_CHECK)
    assert EndEntity.objects.get(username="router1").failed_login_count == 0
    assert not Certificate.objects.filter(username="router1").exists()


def test_single_des_refused_unless_allowed(scep, scep_ca, alias_factory, end_entity_factory, actor):
    from protocols.scep import services

    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(6)
    result = scep.enroll(make_csr(key, "CN=router1"), key, scep_ca.certificate, cipher="des")
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_ALG)
    services.edit_alias(actor, "scep", allow_des=True)
    result = scep.enroll(make_csr(key, "CN=router1"), key, scep_ca.certificate, cipher="des")
    assert result.status == PkiStatus.SUCCESS and result.cipher == "des"


@pytest.mark.parametrize("allow_legacy, reply_digest", [(False, "sha256"), (True, "sha1")])
def test_legacy_digest_reply(scep, scep_ca, alias_factory, end_entity_factory, allow_legacy, reply_digest):
    alias_factory(default_ca=scep_ca, allow_legacy_digest=allow_legacy)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(7)
    result = scep.enroll(make_csr(key, "CN=router1"), key, scep_ca.certificate, digest="sha1")
    assert result.status == PkiStatus.SUCCESS
    assert result.message.digest_algorithm == reply_digest


def test_request_to_an_unknown_ca(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key, stranger = client_key(8), client_key(9)
    not_a_ca = self_signed(stranger, "Not our CA")
    result = scep.enroll(make_csr(key, "CN=router1"), key, not_a_ca)
    # The reply is signed by the alias's CA; the client's envelope was for someone else.
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    assert EndEntity.objects.get(username="router1").status == EndEntityStatus.NEW


# --- GetCert, GetCRL, GetCertInitial ----------------------------------------------------------------------------

def test_get_cert_get_crl_and_poll(scep, scep_ca, alias_factory, end_entity_factory, actor):
    from pki.crl import create_crl

    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(10)
    enrolled = scep.enroll(make_csr(key, "CN=router1,O=Test,C=SE"), key, scep_ca.certificate)
    issued = own(enrolled, key)
    ca_cert = scep_ca.certificate
    got = scep.exchange(scep_client.build_get_cert(ca_cert.subject, issued.serial_number, issued, key, ca_cert),
                        key, issued, ca_cert)
    assert got.status == PkiStatus.SUCCESS and got.certificates == [issued]
    missing = scep.exchange(scep_client.build_get_cert(ca_cert.subject, 12345, issued, key, ca_cert), key, issued,
                            ca_cert)
    assert (missing.status, missing.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_CERT_ID)
    scep_ca.crls.all().delete()  # the CA was created with its first CRL: take it away
    no_crl = scep.exchange(scep_client.build_get_crl(ca_cert.subject, issued.serial_number, issued, key, ca_cert),
                           key, issued, ca_cert)
    assert no_crl.status == PkiStatus.FAILURE
    crl = create_crl(actor, scep_ca)
    got_crl = scep.exchange(scep_client.build_get_crl(ca_cert.subject, issued.serial_number, issued, key, ca_cert),
                            key, issued, ca_cert)
    assert got_crl.status == PkiStatus.SUCCESS
    assert [c.public_bytes(Encoding.DER) for c in got_crl.crls] == [bytes(crl.der)]
    poll = scep.exchange(scep_client.build_get_cert_initial(ca_cert.subject, issued.subject, issued, key, ca_cert,
                                                            transaction_id=enrolled.transaction_id), key, issued,
                          ca_cert)
    assert poll.status == PkiStatus.SUCCESS and own(poll, key) == issued


def test_scep_client_on_default_url(client, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router2", "foo123", ca=scep_ca)
    default = ScepTestClient(client, alias=None)
    key = client_key(11)
    assert default.enroll(make_csr(key, "CN=router2"), key, default.ca_certs()[0]).status == PkiStatus.SUCCESS


@pytest.mark.parametrize("digest, legacy", [
    ("md5", True), ("sha1", True), ("sha224", False), ("sha256", False), ("sha384", False), ("sha512", False),
])
@pytest.mark.parametrize("key_transport", ["pkcs1v15", "oaep"])
def test_digests_and_key_transports(scep, scep_ca, alias_factory, end_entity_factory, actor, digest, legacy,
                                    key_transport):
    """Every digest but MD5 is accepted (MD5 needs the alias's legacy digests: badAlg here); the reply keeps it
    unless it is legacy and the alias does not allow that."""
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router1", "foo123", ca=scep_ca)
    key = client_key(12)
    result = scep.enroll(make_csr(key, "CN=router1"), key, scep_ca.certificate, digest=digest,
                         key_transport=key_transport, oaep_hash="sha256")
    if digest == "md5":
        assert (result.status, result.fail_info) == (PkiStatus.FAILURE, FailInfo.BAD_ALG)
        return
    assert result.status == PkiStatus.SUCCESS
    assert result.message.digest_algorithm == ("sha256" if legacy else digest)
