"""PostgreSQL streams a CRL's entries through COPY and encodes them as they arrive (pki.crl.copy_entries): the
bytes must be those of the reference encoder (pki.x509.der, one entry at a time) for every edge of the format."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509

from pki import crl as crl_module
from pki.choices import CertificateStatus
from pki.issuance import IssuanceRequest, issue
from pki.models import Certificate, CertificateProfile

pytestmark = pytest.mark.django_db

# serial as stored, revocation time, reason: odd and even digit counts, the top bit set (a 0x00 goes first), the
# shortest and the longest serial the column holds, times before 1970 and around the UTCTime/GeneralizedTime switch
# (fractions of a second cut, not rounded), no reason, unspecified, and the last codes.
EDGES = [
    ("1", datetime(2026, 6, 1, 12, 34, 56, tzinfo=UTC), 1),
    ("0", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), None),
    ("80", datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), 0),
    ("7f", datetime(2050, 1, 1, tzinfo=UTC), 10),
    ("abc", datetime(1970, 1, 1, tzinfo=UTC), 8),
    ("f" * 64, datetime(2099, 2, 28, 1, 2, 3, tzinfo=UTC), 6),
    ("1" + "0" * 39, datetime(2026, 1, 1, 0, 59, 59, tzinfo=UTC), 9),
]


@pytest.fixture
def edge_rows(root_ca, actor, csr_factory):
    profile = CertificateProfile.objects.get(name="ENDUSER")
    for n, (serial, revoked_at, reason) in enumerate(EDGES):
        csr, _ = csr_factory(f"CN=edge{n}")
        row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=profile, csr=csr)).row
        Certificate.objects.filter(pk=row.pk).update(serial=serial, status=CertificateStatus.REVOKED,
                                                     revoked_at=revoked_at, revocation_reason=reason)
    return Certificate.objects.filter(ca=root_ca, status=CertificateStatus.REVOKED)


def test_streamed_entries_are_the_reference_encoding(edge_rows):
    streamed, count = crl_module.copy_entries(edge_rows)
    reference, expected = crl_module._entries(
        edge_rows.values_list("serial", "revoked_at", "revocation_reason").order_by("pk"), None)
    assert count == expected == len(EDGES)
    # The same entries (COPY may return them in another order): each reference entry is one of the streamed ones.
    assert len(streamed) == len(reference)
    assert sorted(_split(bytes(streamed))) == sorted(_split(bytes(reference)))


def test_a_crl_of_the_edges_parses_with_every_entry(root_ca, actor, edge_rows):
    crl = x509.load_der_x509_crl(bytes(crl_module.create_crl(actor, root_ca).der))
    assert crl.is_signature_valid(root_ca.certificate.public_key())
    for serial, revoked_at, reason in EDGES:
        entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
        assert entry is not None, serial
        assert entry.revocation_date_utc == revoked_at.replace(microsecond=0)
        reasons = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
        assert len(reasons) == (0 if reason in (None, 0) else 1)


def test_progress_is_reported_per_chunk(edge_rows, monkeypatch):
    monkeypatch.setattr(crl_module, "CHUNK", 3)
    seen: list[int] = []
    crl_module.copy_entries(edge_rows, seen.append)
    assert seen == [3, 6]


def _split(entries: bytes) -> list[bytes]:
    """The entries of a revokedCertificates content, each with its header (all in the short length form)."""
    out, pos = [], 0
    while pos < len(entries):
        assert entries[pos] == 0x30 and entries[pos + 1] < 0x80
        out.append(entries[pos:pos + 2 + entries[pos + 1]])
        pos += 2 + entries[pos + 1]
    return out
