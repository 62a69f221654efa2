"""A CRL's entries: read a page at a time from the stored DER (pki.x509.crl_entries), and the CRL page that
lists them (serial, revocation date, reason), paginated, under the CA's access rule."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pki.crl import build_crl_der, create_crl
from pki.issuance import IssuanceRequest, issue
from pki.models import CRL, CertificateProfile
from pki.revocation import revoke
from pki.x509 import der
from pki.x509.crl_entries import CrlFormatError, crl_entries
from tests.pki.test_views_auth import ui_client

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _crl(entries: list[tuple[int, x509.ReasonFlags | None, datetime | None]], next_update: bool = True) -> bytes:
    """A CRL signed by a throwaway key, through cryptography (an independent encoder)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Reader test CA")])
    b = x509.CertificateRevocationListBuilder().issuer_name(name).last_update(NOW)
    if next_update:
        b = b.next_update(NOW + timedelta(days=1))
    for serial, reason, invalidity in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(hours=serial % 7))
        if reason is not None:
            rb = rb.add_extension(x509.CRLReason(reason), critical=False)
        if invalidity is not None:
            rb = rb.add_extension(x509.InvalidityDate(invalidity.replace(tzinfo=None)), critical=False)
        b = b.add_revoked_certificate(rb.build())
    from cryptography.hazmat.primitives.serialization import Encoding
    return b.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


ENTRIES = [(0x1A2B, x509.ReasonFlags.key_compromise, NOW - timedelta(days=3)),
           (0xFF00FF00FF00FF00FF, None, None),
           (7, x509.ReasonFlags.certificate_hold, None),
           (2**159 - 1, x509.ReasonFlags.privilege_withdrawn, None)]
CODES = {None: None, x509.ReasonFlags.key_compromise: 1, x509.ReasonFlags.certificate_hold: 6,
         x509.ReasonFlags.privilege_withdrawn: 9}


def test_reader_agrees_with_cryptography():
    data = _crl(ENTRIES)
    parsed = x509.load_der_x509_crl(data)
    got = crl_entries(data, 0, 10)
    assert [e.serial for e in got] == [format(r.serial_number, "x") for r in parsed]
    assert [e.revoked_at for e in got] == [r.revocation_date_utc for r in parsed]
    assert {e.serial: e.reason for e in got} == {format(s, "x"): CODES[r] for s, r, _ in ENTRIES}
    assert got[0].invalidity_date == NOW - timedelta(days=3) and got[1].invalidity_date is None


@pytest.mark.parametrize(("offset", "limit", "expected"), [(0, 2, [0, 1]), (1, 2, [1, 2]), (3, 5, [3]),
                                                           (4, 5, []), (99, 1, []), (2, 0, [])])
def test_reader_pages(offset, limit, expected):
    got = crl_entries(_crl(ENTRIES), offset, limit)
    assert [e.serial for e in got] == [format(ENTRIES[i][0], "x") for i in expected]


def test_reader_of_an_empty_crl():
    assert crl_entries(_crl([])) == []


def _unsigned_crl(entries: bytes) -> bytes:
    """A CRL without nextUpdate (cryptography will not write one): only the reader looks at it."""
    alg = der.sequence(der.oid("1.2.840.10045.4.3.2"))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "No next update")]).public_bytes()
    tbs = der.sequence(der.integer(1) + alg + name + der.time(NOW) + (der.sequence(entries) if entries else b""))
    return der.sequence(tbs + alg + der.bit_string(b"\x00"))


@pytest.mark.parametrize("count", [0, 3])
def test_reader_of_a_crl_without_next_update(count):
    entries = b"".join(der.revoked_entry(format(i + 5, "x"), der.time(NOW), b"") for i in range(count))
    got = crl_entries(_unsigned_crl(entries))
    assert [(e.serial, e.revoked_at, e.reason) for e in got] == [(format(i + 5, "x"), NOW, None) for i in range(count)]


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x02\x01\x00", b"\x30\x84\xff\xff\xff\xff",
                                  b"\x30\x03\x30\x01\x00", b"\x30\x80\x00\x00"])
def test_reader_refuses_garbage(data):
    with pytest.raises(CrlFormatError):
        crl_entries(data)


def test_reader_refuses_a_truncated_crl():
    data = _crl(ENTRIES)
    with pytest.raises(CrlFormatError):
        crl_entries(data[: len(data) // 2], 0, 10)


def _big_crl_der(ca, n: int) -> bytes:
    enc = der.TimeEncoder()
    reason = der.sequence(der.extension("2.5.29.21", b"\x0a\x01\x01"))
    entries = b"".join(der.revoked_entry(format(i + 1, "x"), enc(NOW), reason) for i in range(n))
    return build_crl_der(ca, 99, NOW, NOW + timedelta(days=1), entries)


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("uiadmin", ["/"])


@pytest.fixture
def revoked_crl(sub_ca, actor, csr_factory, builtin_profiles):
    """A CRL of the sub CA listing one certificate revoked for key compromise."""
    csr, _ = csr_factory("CN=crl-entry.example.com")
    leaf = issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr)).row
    revoke(actor, leaf, "keyCompromise")
    create_crl(actor, sub_ca)
    return CRL.objects.filter(ca=sub_ca).latest("crl_number"), leaf


def test_crl_page_lists_entries_with_links(admin, revoked_crl):
    crl, leaf = revoked_crl
    leaf.refresh_from_db()
    r = admin.get(f"/crls/{crl.pk}/entries/")
    html = r.content.decode()
    assert r.status_code == 200
    assert f'<a href="/certificates/{leaf.pk}/">{leaf.serial.upper()}</a>' in html
    assert "keyCompromise" in html and leaf.revoked_at.strftime("%Y-%m-%d %H:%M") in html
    listing = admin.get("/crls/").content.decode()
    assert f'href="/crls/{crl.pk}/entries/"' in listing


def test_crl_page_needs_the_ca(db, root_ca, revoked_crl):
    crl, _ = revoked_crl
    other = ui_client("rootonly", ["/administrator", "/ca_functionality/view_ca", f"/ca/{root_ca.pk}"])
    assert other.get(f"/crls/{crl.pk}/entries/").status_code == 403
    assert ui_client("noview", ["/administrator"]).get(f"/crls/{crl.pk}/entries/").status_code == 403


def test_unknown_crl_and_bad_pages(admin, revoked_crl, tracebacks):
    crl, _ = revoked_crl
    assert admin.get("/crls/999999/entries/").status_code == 404
    for page in ("0", "-1", "x", "99999999999999999999"):
        assert admin.get(f"/crls/{crl.pk}/entries/", {"page": page}).status_code == 200
    assert not tracebacks.records


def test_big_crl_pages_without_decoding_every_entry(admin, sub_ca):
    n = 200_000
    data = _big_crl_der(sub_ca, n)
    crl = CRL.objects.create(ca=sub_ca, crl_number=99, this_update=NOW, next_update=NOW + timedelta(days=1),
                             entries=n, der=data)
    started = time.perf_counter()
    last = crl_entries(data, n - 50, 50)
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    crl_entries(data, n - 50, 50)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [e.serial for e in last] == [format(i, "x") for i in range(n - 49, n + 1)]
    assert all(e.reason == 1 for e in last)
    print(f"last page of a {n}-entry CRL ({len(data)} bytes): {elapsed * 1000:.0f} ms, peak {peak // 1024} KiB")
    assert elapsed < 2.0
    assert peak < 2 * len(data) + 1_000_000  # the bytes once (plus a copy), not an object per entry
    r = admin.get(f"/crls/{crl.pk}/entries/", {"page": str(n // 50)})
    html = r.content.decode()
    assert r.status_code == 200 and f"Page {n // 50} of {n // 50}" in html and format(n, "X") in html


def test_certificate_page_links_to_its_end_entity_and_back(admin, sub_ca, actor, csr_factory, builtin_profiles):
    csr, _ = csr_factory("CN=linked.example.com")
    cert = issue(IssuanceRequest(ca=sub_ca, actor=actor, profile=CertificateProfile.objects.get(name="SERVER"),
                                 csr=csr, username="linked user&1")).row
    html = admin.get(f"/certificates/{cert.pk}/").content.decode()
    from endentities.models import EndEntity
    from endentities.services.builtin import ensure_empty_profile

    link = "/endentities/by-username/?username=linked%20user%261"
    assert f'href="{link}"' in html
    # No end entity of that name (issued for a CSR): the link lands on the search for the name.
    assert admin.get(link)["Location"] == "/endentities/?text=linked+user%261"
    ee = EndEntity.objects.create(username="linked user&1", subject_dn="CN=linked.example.com", ca=sub_ca,
                                  certificate_profile=CertificateProfile.objects.get(name="SERVER"),
                                  end_entity_profile=ensure_empty_profile())
    assert admin.get(link)["Location"] == f"/endentities/{ee.pk}/"  # the end entity itself
    viewer = ui_client("certonly", ["/administrator", "/ca_functionality/view_certificate", f"/ca/{sub_ca.pk}"])
    assert "/endentities/by-username/" not in viewer.get(f"/certificates/{cert.pk}/").content.decode()
    assert viewer.get(link).status_code == 403  # and the link itself is refused without the rule
