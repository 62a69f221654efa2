"""SCEP request validation with real SCEP messages: which CA an alias may issue from (issue 11 item 3),
nothing issued when the reply cannot be delivered (issue 12 item 1), MD5 (item 7), renewal and signer rules
and GetCACaps for an unknown CA (item 11), ASCII-only messageType (item 13), and requests that used to end in
a traceback and "Can not handle request." (item 14). Every refusal leaves no certificate row and no end
entity change behind, and is answered as SCEP answers (a CertRep FAILURE or a plain 4xx)."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from django.utils import timezone

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.models import AuditEvent, Certificate, CertificateProfile
from pki.models.approvals import ApprovalRequest
from protocols.scep import approvals
from protocols.scep.messages import FailInfo, PkiStatus, _cms
from protocols.scep.messages import client as scep_client
from protocols.scep.messages.types import OID_MESSAGE_TYPE, OID_SENDER_NONCE, OID_TRANSACTION_ID

from .server_fixtures import *  # noqa: F403
from .server_fixtures import client_key, make_csr, own, self_signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def management_ca(ca_factory):
    """The CA that issues administrator credentials: no SCEP alias is configured with it."""
    return ca_factory("ManagementCA", key_spec="RSA2048")


def _state() -> tuple:
    """Everything a refused request must leave as it was: certificate rows and end entities."""
    ees = tuple(EndEntity.objects.order_by("username").values_list(
        "username", "status", "subject_dn", "failed_login_count", "ca_id"))
    return Certificate.objects.count(), ees, ApprovalRequest.objects.count()


def _refusals(reason_part: str = "") -> int:
    qs = AuditEvent.objects.filter(outcome="FAILURE")
    return sum(1 for e in qs if reason_part in str(e.details.get("reason", "")))


def _failure(result, fail_info: FailInfo) -> None:
    assert (result.status, result.fail_info) == (PkiStatus.FAILURE, fail_info), result.fail_info_text


# --- issue 11 item 3: the CA of an alias ----------------------------------------------------------------------

@pytest.mark.parametrize("needs_approval", [False, True], ids=["plain", "approval"])
def test_ra_mode_request_encrypted_to_another_ca_is_bad_cert_id(scep, scep_ca, management_ca, ra_alias, actor,
                                                                  needs_approval):
    """The attack: the alias's shared secret, a PKCSReq encrypted to ManagementCA (from GetCACert on any alias)."""
    ra_alias()
    if needs_approval:
        approvals.set_required(actor, ca=scep_ca)
    assert scep.ca_certs("ManagementCA") == [management_ca.certificate]  # anyone may fetch it
    before = _state()
    key = client_key(60)
    result = scep.enroll(make_csr(key, "CN=superadmin", "s3cret"), key, management_ca.certificate)
    _failure(result, FailInfo.BAD_CERT_ID)
    assert _state() == before
    assert not Certificate.objects.filter(ca=management_ca).exclude(username="").exists()
    assert AuditEvent.objects.filter(event_type="SCEP_ENROLLMENT", outcome="FAILURE").exists()
    # The same request encrypted to the alias's CA is served as configured.
    ok = scep.enroll(make_csr(key, "CN=superadmin", "s3cret"), key, scep_ca.certificate)
    assert ok.status == (PkiStatus.PENDING if needs_approval else PkiStatus.SUCCESS)
    if not needs_approval:
        assert own(ok, key).issuer == scep_ca.certificate.subject


def test_ra_key_alias_request_encrypted_to_another_ca_is_bad_cert_id(scep, scep_ca, management_ca, alias_factory,
                                                                     actor, soft_token_factory):
    from cryptotokens.services import generate_key_pair
    from protocols.scep.services import issue_ra_certificate

    token = soft_token_factory("RaToken")
    generate_key_pair(actor, token, "raKey", "RSA2048")
    alias_factory(operation_mode="ra", ra_default_ca=scep_ca, ra_auth_password="s3cret", ra_crypto_token=token,
                  ra_key_alias="raKey", ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY")
    issue_ra_certificate(actor, "scep")
    before = _state()
    key = client_key(61)
    result = scep.enroll(make_csr(key, "CN=superadmin", "s3cret"), key, management_ca.certificate)
    _failure(result, FailInfo.BAD_CERT_ID)
    assert _state() == before


def test_ca_mode_request_encrypted_to_another_ca_than_the_end_entitys(scep, scep_ca, management_ca, alias_factory,
                                                                      end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router7", "foo123", ca=scep_ca)
    before = _state()
    key = client_key(62)
    result = scep.enroll(make_csr(key, "CN=router7", "foo123"), key, management_ca.certificate)
    assert result.status == PkiStatus.FAILURE
    assert _state() == before
    # Not spent: the right CA still issues with the code.
    assert scep.enroll(make_csr(key, "CN=router7", "foo123"), key, scep_ca.certificate).status == PkiStatus.SUCCESS


def test_ca_mode_renewal_encrypted_to_another_ca_is_refused(scep, scep_ca, management_ca, alias_factory,
                                                            end_entity_factory):
    alias_factory(default_ca=scep_ca, client_certificate_renewal=True)
    end_entity_factory("router8", "foo123", ca=scep_ca)
    key = client_key(63)
    old = own(scep.enroll(make_csr(key, "CN=router8,O=Test,C=SE", "foo123"), key, scep_ca.certificate), key)
    _age(old, 0.6)
    before = _state()
    new_key = client_key(64)
    result = scep.enroll(make_csr(new_key, "CN=router8,O=Test,C=SE", None), new_key, management_ca.certificate,
                         signer_cert=old, signer_key=key)
    _failure(result, FailInfo.BAD_CERT_ID)
    assert _state() == before


# --- issue 12 item 1: nothing issued that cannot be answered -----------------------------------------------

def _age(cert, fraction: float) -> None:
    row = Certificate.objects.get(serial=format(cert.serial_number, "x"))
    length = row.not_after - row.not_before
    now = timezone.now()
    Certificate.objects.filter(pk=row.pk).update(not_before=now - length * fraction,
                                                 not_after=now + length * (1 - fraction))


_SMALL_KEYS: dict[int, rsa.RSAPrivateKey] = {}


def _rsa(bits: int) -> rsa.RSAPrivateKey:
    if bits not in _SMALL_KEYS:
        _SMALL_KEYS[bits] = _unsafe_rsa(bits)
    return _SMALL_KEYS[bits]


def _unsafe_rsa(bits: int) -> rsa.RSAPrivateKey:
    """RSA keys cryptography refuses to generate (512): made from two primes openssl's prime command finds."""
    if bits >= 1024:
        return rsa.generate_private_key(65537, bits)
    import subprocess

    def prime(n: int) -> int:
        return int(subprocess.run(["openssl", "prime", "-generate", "-bits", str(n)], check=True,
                                  capture_output=True, text=True).stdout.strip())
    e = 65537
    while True:
        p, q = prime(bits // 2), prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e and (p * q).bit_length() == bits:
            break
    d = pow(e, -1, phi)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


@pytest.mark.parametrize("signer", ["P-256", "P-384"])
def test_ec_signer_is_refused_before_issuance(scep, scep_ca, alias_factory, end_entity_factory, signer):
    """The reply cannot be encrypted to an EC key: badAlg before anything is written, the code is not spent."""
    alias_factory(default_ca=scep_ca)
    end_entity_factory("router9", "foo123", ca=scep_ca)
    before = _state()
    curve = ec.SECP256R1() if signer == "P-256" else ec.SECP384R1()
    key = ec.generate_private_key(curve)
    result = scep.enroll(make_csr(key, "CN=router9", "foo123"), key, scep_ca.certificate)
    _failure(result, FailInfo.BAD_ALG)
    assert _state() == before
    assert EndEntity.objects.get(username="router9").status == EndEntityStatus.NEW
    rsa_key = client_key(65)
    assert scep.enroll(make_csr(rsa_key, "CN=router9", "foo123"), rsa_key,
                       scep_ca.certificate).status == PkiStatus.SUCCESS


@pytest.mark.parametrize("bits, allowed, key_transport, oaep_hash, expected", [
    (1024, False, "pkcs1v15", "sha1", FailInfo.BAD_ALG),      # under 2048 and the profile does not allow it
    (512, False, "pkcs1v15", "sha1", FailInfo.BAD_ALG),
    (1024, True, "oaep", "sha512", FailInfo.BAD_ALG),         # allowed, but OAEP-SHA512 cannot fit 1024 bits
    (1024, True, "oaep", "sha256", None),                     # allowed and the transport fits
    (1024, True, "pkcs1v15", "sha1", None),
])
def test_small_rsa_signer(scep, scep_ca, alias_factory, end_entity_factory, bits, allowed, key_transport,
                          oaep_hash, expected):
    if allowed:
        CertificateProfile.objects.filter(name="ENDUSER").update(allowed_rsa_sizes=[bits, 2048])
    alias_factory(default_ca=scep_ca)
    end_entity_factory("small", "foo123", ca=scep_ca)
    before = _state()
    key = _rsa(bits)
    result = scep.enroll(make_csr(key, "CN=small", "foo123"), key, scep_ca.certificate,
                         key_transport=key_transport, oaep_hash=oaep_hash)
    if expected is None:
        assert result.status == PkiStatus.SUCCESS
        return
    _failure(result, expected)
    assert _state() == before


def test_small_rsa_signer_ra_mode(scep, scep_ca, ra_alias):
    ra_alias()
    before = _state()
    key = _rsa(1024)
    _failure(scep.enroll(make_csr(key, "CN=weakling", "s3cret"), key, scep_ca.certificate), FailInfo.BAD_ALG)
    assert _state() == before


# --- issue 12 item 7: MD5 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("digest, legacy, ok", [
    ("md5", False, False),
    ("md5", True, True),
    ("sha1", False, True),    # SHA-1 is accepted on every alias, as EJBCA
    ("sha1", True, True),
    ("sha256", False, True),
])
def test_md5_only_with_legacy_digests(scep, scep_ca, alias_factory, end_entity_factory, digest, legacy, ok):
    alias_factory(default_ca=scep_ca, allow_legacy_digest=legacy)
    end_entity_factory("hasher", "foo123", ca=scep_ca)
    before = _state()
    key = client_key(66)
    result = scep.enroll(make_csr(key, "CN=hasher", "foo123"), key, scep_ca.certificate, digest=digest)
    if ok:
        assert result.status == PkiStatus.SUCCESS
        # The reply uses the legacy digest only when the alias allows it.
        assert result.message.digest_algorithm == (digest if legacy else "sha256")
    else:
        _failure(result, FailInfo.BAD_ALG)
        assert _state() == before


def test_legacy_digest_help_text_says_what_it_does():
    from protocols.scep.forms import ScepAliasForm
    from protocols.scep.models import ScepAlias

    field = ScepAlias._meta.get_field("allow_legacy_digest")
    form_field = ScepAliasForm.base_fields["allow_legacy_digest"]
    for text in (field.help_text, form_field.help_text):
        assert "MD5-signed requests" in text and "SHA-1 requests are accepted on every alias" in text
        assert "replies" in text and "Accept SHA-1/MD5" not in text


# --- issue 12 item 11: renewal signer, signer key, GetCACaps -------------------------------------------------

def test_renewal_signed_by_a_superseded_certificate_is_refused(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca, client_certificate_renewal=True)
    end_entity_factory("router10", "foo123", ca=scep_ca)
    k1, k2, k3 = client_key(67), client_key(68), client_key(69)
    first = own(scep.enroll(make_csr(k1, "CN=router10,O=Test,C=SE", "foo123"), k1, scep_ca.certificate), k1)
    _age(first, 0.6)
    second = own(scep.enroll(make_csr(k2, "CN=router10,O=Test,C=SE", None), k2, scep_ca.certificate,
                             signer_cert=first, signer_key=k1), k2)
    _age(second, 0.6)
    before = _state()
    result = scep.enroll(make_csr(k3, "CN=router10,O=Test,C=SE", None), k3, scep_ca.certificate,
                         signer_cert=first, signer_key=k1)   # the old, superseded (not revoked) one
    _failure(result, FailInfo.BAD_MESSAGE_CHECK)
    assert _state() == before
    # The current certificate may.
    assert scep.enroll(make_csr(k3, "CN=router10,O=Test,C=SE", None), k3, scep_ca.certificate,
                       signer_cert=second, signer_key=k2).status == PkiStatus.SUCCESS


@pytest.mark.parametrize("mode", ["ca", "ra"])
def test_self_signed_signer_with_another_key_is_refused(scep, scep_ca, alias_factory, ra_alias, end_entity_factory,
                                                        mode):
    if mode == "ca":
        alias_factory(default_ca=scep_ca)
        end_entity_factory("twokeys", "foo123", ca=scep_ca)
        challenge = "foo123"
    else:
        ra_alias()
        challenge = "s3cret"
    before = _state()
    key, other = client_key(70), client_key(71)
    result = scep.enroll(make_csr(key, "CN=twokeys", challenge), key, scep_ca.certificate,
                         signer_cert=self_signed(other, "twokeys"), signer_key=other)
    _failure(result, FailInfo.BAD_MESSAGE_CHECK)
    assert _state() == before


@pytest.mark.parametrize("operation", ["GetCACaps", "GetCACert"])
def test_get_ca_caps_for_an_unknown_ca_answers_as_get_ca_cert(scep, scep_ca, alias_factory, operation):
    alias_factory(default_ca=scep_ca)
    assert scep.get(operation, "NoSuchCA").status_code == 404
    assert scep.get(operation, "ScepCA").status_code == 200


# --- issue 12 item 13: messageType digits ---------------------------------------------------------------------

def _raw_request(type_value: bytes, csr, key, recipient) -> bytes:
    """A PKCSReq whose messageType attribute is ``type_value`` (a DER string), otherwise as the client builds it."""
    envelope = scep_client.encrypt_envelope(csr.public_bytes(Encoding.DER), recipient)
    attributes = [
        _cms.attribute_der(OID_MESSAGE_TYPE, type_value),
        _cms.attribute_der(OID_TRANSACTION_ID, _cms.printable("UNICODEDIGITS")),
        _cms.attribute_der(OID_SENDER_NONCE, _cms.octet_string(os.urandom(16))),
    ]
    signer = self_signed(key, "digits")
    return _cms.signed_data(content=envelope, digest_name="sha256", signer_cert=signer, signer_key=key,
                            attributes=attributes, certificates=(signer,))


@pytest.mark.parametrize("text", ["١٩", "１９", "1\u0669"])
def test_message_type_in_unicode_digits_is_refused(scep, scep_ca, alias_factory, end_entity_factory, text):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("digits", "foo123", ca=scep_ca)
    before = _state()
    key = client_key(72)
    resp = scep.post(_raw_request(_cms.utf8(text), make_csr(key, "CN=digits"), key, scep_ca.certificate))
    assert resp.status_code == 400
    assert _state() == before
    # ASCII digits in a UTF8String are still a PKCSReq.
    ok = scep.post(_raw_request(_cms.utf8("19"), make_csr(key, "CN=digits"), key, scep_ca.certificate))
    assert ok.status_code == 200 and Certificate.objects.filter(username="digits").exists()


# --- issue 12 item 14: refusals that used to be tracebacks --------------------------------------------------

def _name_der(rdns: list[tuple[str, int, bytes]]) -> bytes:
    """A DER Name from (OID, string tag, raw value bytes) triples: values cryptography would refuse to build."""
    return _cms.sequence(b"".join(_cms.tlv(0x31, _cms.sequence(_cms.oid(oid) + _cms.tlv(tag, value)))
                                  for oid, tag, value in rdns))


def raw_csr(key, subject: bytes, *, challenge: str | None = "foo123",
            extensions: list[tuple[str, bytes]] = ()) -> x509.CertificateSigningRequest:
    """A PKCS#10 request written by hand: any subject and any (even duplicate) extensions."""
    attrs = []
    if challenge is not None:
        attrs.append(_cms.sequence(_cms.oid("1.2.840.113549.1.9.7") + _cms.tlv(0x31, _cms.utf8(challenge))))
    if extensions:
        ext_seq = b"".join(_cms.sequence(_cms.oid(oid) + _cms.octet_string(value)) for oid, value in extensions)
        attrs.append(_cms.sequence(_cms.oid("1.2.840.113549.1.9.14") + _cms.tlv(0x31, _cms.sequence(ext_seq))))
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    info = _cms.sequence(_cms.integer(0) + subject + spki + _cms.tlv(0xA0, b"".join(attrs)))
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA256())
    alg = _cms.sequence(_cms.oid("1.2.840.113549.1.1.11") + b"\x05\x00")
    return x509.load_der_x509_csr(_cms.sequence(info + alg + _cms.tlv(0x03, b"\x00" + signature)))


def _cn(value: bytes, tag: int = 0x0C, extra: list | None = None) -> bytes:
    return _name_der([("2.5.4.3", tag, value), *(extra or [])])


_SAN_DNS = ("2.5.29.17", _cms.sequence(_cms.tlv(0x82, b"dup.example")))
_SAN_X400 = ("2.5.29.17", _cms.sequence(_cms.tlv(0xA3, _cms.sequence(b""))))


@pytest.mark.parametrize("case", ["nul-cn", "long-cn", "long-dn", "duplicate-san", "x400-san"])
@pytest.mark.parametrize("mode", ["ca", "ra"])
def test_bad_requests_are_refused_before_the_database(scep, scep_ca, alias_factory, ra_alias, end_entity_factory,
                                                      caplog, case, mode):
    if mode == "ca":
        alias_factory(default_ca=scep_ca)
        end_entity_factory("victim", "foo123", ca=scep_ca)
        challenge = "foo123"
    else:
        ra_alias()
        challenge = "s3cret"
    key = client_key(73)
    extensions: list = []
    if case == "nul-cn":
        subject = _cn(b"victim\x00admin")
    elif case == "long-cn":
        subject = _cn(b"v" * 300)
    elif case == "long-dn":
        subject = _cn(b"victim", extra=[("2.5.4.11", 0x0C, b"u" * 60)] * 40)
    elif case == "duplicate-san":
        subject, extensions = _cn(b"victim"), [_SAN_DNS, _SAN_DNS]
    else:
        subject, extensions = _cn(b"victim"), [_SAN_X400]
    csr = raw_csr(key, subject, challenge=challenge, extensions=extensions)
    before = _state()
    failures = _refusals()
    with caplog.at_level(logging.INFO):
        result = scep.enroll(csr, key, scep_ca.certificate)
    _failure(result, FailInfo.BAD_REQUEST)
    assert _state() == before
    assert _refusals() > failures  # audited as a refusal
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_signer_with_a_bad_string_tag_on_a_renewal_alias(scep, scep_ca, alias_factory, end_entity_factory, caplog):
    alias_factory(default_ca=scep_ca, client_certificate_renewal=True)
    end_entity_factory("tagged", "foo123", ca=scep_ca)
    key = client_key(74)
    good = self_signed(key, "BADTAGX")
    now = dt.datetime.now(dt.UTC)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ISSUERX")])
    cert = (x509.CertificateBuilder().subject_name(good.subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(12345).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(Encoding.DER).replace(b"\x0c\x07ISSUERX", b"\x02\x07ISSUERX")  # an INTEGER as CN
    bad = x509.load_der_x509_certificate(der)
    before = _state()
    with caplog.at_level(logging.INFO):
        resp = scep.post(scep_client.build_pkcs_req(make_csr(key, "CN=tagged"), bad, key, scep_ca.certificate).data)
    assert resp.status_code == 200, resp.content
    _failure(scep_client.parse_cert_rep(resp.content, key, bad, ca_certs=[scep_ca.certificate]), FailInfo.BAD_REQUEST)
    assert _state() == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("operation", ["GetCACaps", "GetCACert", "GetCACertChain", "GetNextCACert"])
def test_nul_message_on_get_operations(scep, scep_ca, alias_factory, caplog, operation):
    alias_factory(default_ca=scep_ca)
    with caplog.at_level(logging.INFO):
        resp = scep.get(operation, "\x00")
    assert 400 <= resp.status_code < 500 and resp.content != b"Can not handle request."
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_reply_that_still_fails_can_be_fetched_again(scep, scep_ca, alias_factory, end_entity_factory,
                                                       monkeypatch):
    """What the checks before issuance cannot foresee (the responder key failing to sign the reply): the issued
    certificate is not lost, the same request sent again is answered with it (no second certificate)."""
    from protocols.scep import pkioperation

    alias_factory(default_ca=scep_ca)
    end_entity_factory("unlucky", "foo123", ca=scep_ca)
    key = client_key(75)
    csr, signer = make_csr(key, "CN=unlucky"), self_signed(key, "unlucky")
    request = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate)
    real = pkioperation._reply

    def failing(alias, responder, message, status, **kw):
        if status == PkiStatus.SUCCESS:
            raise RuntimeError("the HSM went away while signing the reply")
        return real(alias, responder, message, status, **kw)

    monkeypatch.setattr(pkioperation, "_reply", failing)
    assert scep.post(request.data).status_code >= 400
    assert Certificate.objects.filter(username="unlucky").count() == 1
    monkeypatch.setattr(pkioperation, "_reply", real)
    # The client sends its request again: the same transaction, a fresh senderNonce (RFC 8894 section 3.3.1).
    again = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate, transaction_id=request.transaction_id)
    resp = scep.post(again.data)
    assert resp.status_code == 200
    result = scep_client.parse_cert_rep(resp.content, key, None, ca_certs=[scep_ca.certificate])
    assert result.status == PkiStatus.SUCCESS
    assert own(result, key).serial_number == int(Certificate.objects.get(username="unlucky").serial, 16)
