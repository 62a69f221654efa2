"""Property-based SCEP suite: generated and mutated PKIOperation messages against an RA-mode alias.

Hypothesis builds requests two ways: structurally (subject names with any characters and lengths,
alt names, challenges, message types written in any digits, transaction ids, ciphers, digests and key
transports) and by mutating the bytes of a valid PKCSReq (flipped, cut, inserted and repeated bytes),
sent by POST and by GET. Whatever arrives, the server must
- never answer 5xx, and never log a traceback for it (a refusal is decided, not crashed into),
- answer 200 only with a SCEP reply (application/x-pki-message),
- store no certificate for a request it did not answer with SUCCESS.

The budget is fixed (``PKI_FUZZ_EXAMPLES``, 25 by default) and the seed derandomized unless
``PKI_FUZZ_RANDOM=1``.
"""

from __future__ import annotations

import base64
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import AttributeOID, NameOID
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pki.models import Certificate
from protocols.scep.messages import PkiStatus
from protocols.scep.messages import client as scep_client

from .server_fixtures import *  # noqa: F403
from .server_fixtures import ScepTestClient, client_key, self_signed

EXAMPLES = int(os.environ.get("PKI_FUZZ_EXAMPLES", "25"))
DERANDOMIZE = os.environ.get("PKI_FUZZ_RANDOM") != "1"
SECRET = "s3cret"
SCEP_TYPE = "application/x-pki-message"
# Statuses a refusal may take before the message layer (bad HTTP) or after it (SCEP's own replies are 200).
REFUSALS = {400, 403, 404, 405, 411, 413, 414, 415, 429, 503}

pytestmark = [pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:Attribute.s length must be:UserWarning")]  # hostile names on purpose


def fuzz_settings(examples: int = EXAMPLES):
    return hsettings(max_examples=examples, deadline=None, derandomize=DERANDOMIZE, database=None,
                     phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture
def ra(client, alias_factory, scep_ca):
    alias_factory("fuzz", operation_mode="ra", ra_default_ca=scep_ca, ra_auth_password=SECRET,
                  ra_certificate_profile="ENDUSER", ra_end_entity_profile="EMPTY", allow_des=True)
    return ScepTestClient(client, alias="fuzz")


def _status(body: bytes, key, cert, ca_cert) -> PkiStatus | None:
    try:
        return scep_client.parse_cert_rep(body, key, cert, ca_certs=[ca_cert]).status
    except Exception:  # a reply this client cannot read is judged by the HTTP checks alone
        return None


def check_reply(response, tracebacks, before: int, status: PkiStatus | None, what: str,
                pki_operation: bool = True) -> None:
    """The invariants every answer must keep, whatever was sent."""
    code = response.status_code
    assert code < 500, f"{what}: {code} {response.content[:200]!r}"
    assert code == 200 or code in REFUSALS, f"{what}: unexpected {code}"
    if code == 200 and pki_operation:
        assert response["Content-Type"] == SCEP_TYPE, f"{what}: 200 with {response['Content-Type']}"
    assert not tracebacks.records, f"{what}: traceback logged: {tracebacks.records[0].getMessage()}"
    if status != PkiStatus.SUCCESS:
        assert Certificate.objects.count() == before, f"{what}: a certificate was stored but the answer was {status}"


# -- structured requests ------------------------------------------------------------------------------------

# Values that have broken servers before: NUL, the 64/255/2048-character limits, control and bidi characters.
EDGE_NAMES = ["", "a\x00b", "x" * 65, "x" * 256, "y" * 2100, "\u202egnp.exe", "CN=evil,O=x", "\t\n", " ", "é" * 200]
names = st.one_of(st.sampled_from(EDGE_NAMES), st.text(max_size=80), st.text(min_size=200, max_size=2500))
ascii_names = st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=80)


def _subject(cn: str, extra_ou: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)] if cn else []
    if extra_ou is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, extra_ou, _validate=False))
    return x509.Name(attrs)


@st.composite
def structured_requests(draw):
    key = client_key(draw(st.integers(min_value=40, max_value=42)))
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _subject(draw(names), draw(st.none() | names)))
    challenge = draw(st.sampled_from([SECRET, SECRET, SECRET, "wrong", ""]) | names)
    if challenge:
        try:
            builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
        except ValueError:
            pass
    sans = draw(st.lists(ascii_names, max_size=3))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
    csr = builder.sign(key, hashes.SHA256())
    options = {
        "cipher": draw(st.sampled_from(["aes128", "aes256", "des3", "des"])),
        "digest": draw(st.sampled_from(["sha256", "sha512", "sha1"])),
        "key_transport": draw(st.sampled_from(["pkcs1v15", "oaep"])),
        "oaep_hash": draw(st.sampled_from(["sha1", "sha256"])),
        "transaction_id": draw(st.none() | st.text(min_size=1, max_size=80)),
    }
    return key, csr, options, draw(st.sampled_from(["POST", "GET"]))


def test_structured_requests_are_answered_or_refused_cleanly(ra, scep_ca, tracebacks):
    ca_cert = scep_ca.certificate

    @fuzz_settings()
    @given(structured_requests())
    def run(generated):
        key, csr, options, method = generated
        signer = self_signed(key, "fuzz-client")
        try:
            request = scep_client.build_pkcs_req(csr, signer, key, ca_cert, **options)
        except (ValueError, TypeError, UnicodeError):
            return  # the client library refuses to build it: nothing to send
        before = Certificate.objects.count()
        tracebacks.records.clear()
        response = ra.post(request.data) if method == "POST" else ra.get_pki(request.data)
        status = _status(response.content, key, signer, ca_cert) if response.status_code == 200 else None
        check_reply(response, tracebacks, before, status, f"{method} {csr.subject.rfc4514_string()[:80]!r}")

    run()


# -- mutated bytes --------------------------------------------------------------------------------------------

@st.composite
def mutations(draw, size: int):
    """A list of (operation, position, bytes) edits of a message of ``size`` bytes."""
    edits = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "repeat"]))
        pos = draw(st.integers(min_value=0, max_value=size - 1))
        edits.append((op, pos, draw(st.binary(min_size=1, max_size=8))))
    return edits


def apply(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for op, pos, extra in edits:
        pos %= max(len(buf), 1)
        if op == "flip" and buf:
            buf[pos] ^= extra[0] or 0xFF
        elif op == "cut":
            del buf[pos:pos + len(extra)]
        elif op == "insert":
            buf[pos:pos] = extra
        elif op == "truncate":
            del buf[pos:]
        elif op == "repeat":
            buf[pos:pos] = buf[pos:pos + 16]
    return bytes(buf)


def test_mutated_messages_never_crash_or_issue(ra, scep_ca, tracebacks):
    key = client_key(44)
    csr = x509.CertificateSigningRequestBuilder().subject_name(_subject("mutant", None)).add_attribute(
        AttributeOID.CHALLENGE_PASSWORD, SECRET.encode()).sign(key, hashes.SHA256())
    signer = self_signed(key, "fuzz-client")
    valid = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate).data

    @fuzz_settings(EXAMPLES * 2)
    @given(mutations(len(valid)), st.sampled_from(["POST", "GET"]))
    def run(edits, method):
        data = apply(valid, edits)
        if data == valid:
            return
        before = Certificate.objects.count()
        tracebacks.records.clear()
        response = ra.post(data) if method == "POST" else ra.get_pki(data)
        status = _status(response.content, key, signer, scep_ca.certificate) if response.status_code == 200 else None
        # A mutation may leave the request valid (a flipped bit in padding): then a certificate is fine.
        check_reply(response, tracebacks, before, status, f"{method} {edits}")

    run()


def test_get_parameters_never_crash(ra, tracebacks):
    @fuzz_settings()
    @given(message=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()),
           operation=st.sampled_from(["PKIOperation", "GetCACert", "GetCACaps", "GetCACertChain", "GetNextCACert",
                                      "pkioperation", ""]) | st.text(max_size=20))
    def run(message, operation):
        before = Certificate.objects.count()
        tracebacks.records.clear()
        response = ra.http.get(ra.url, {"operation": operation, "message": message})
        check_reply(response, tracebacks, before, None, f"GET {operation!r} {message[:40]!r}",
                    pki_operation=operation == "PKIOperation")

    run()


@pytest.mark.parametrize("transaction_id", ["ab\x00cd", "x" * 256, "id\x1b[31m"])
def test_transaction_ids_no_column_can_hold_are_refused_before_the_database(ra, scep_ca, tracebacks, transaction_id):
    """Found by this suite: a transactionID with NUL reached PostgreSQL's INSERT (a traceback, then 400)."""
    key = client_key(45)
    csr = x509.CertificateSigningRequestBuilder().subject_name(_subject("txid", None)).add_attribute(
        AttributeOID.CHALLENGE_PASSWORD, SECRET.encode()).sign(key, hashes.SHA256())
    signer = self_signed(key, "fuzz-client")
    request = scep_client.build_pkcs_req(csr, signer, key, scep_ca.certificate, transaction_id=transaction_id)
    before = Certificate.objects.count()
    response = ra.post(request.data)
    status = _status(response.content, key, signer, scep_ca.certificate) if response.status_code == 200 else None
    check_reply(response, tracebacks, before, status, repr(transaction_id))
    assert status != PkiStatus.SUCCESS
