"""Binary COPY writes the row an INSERT would (pki.dbcopy), and a big CRL stored that way is the CRL served."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from cryptography import x509

from pki import crl as crl_module
from pki.dbcopy import copy_insert
from pki.models import CRL, CertificateAuthority

pytestmark = pytest.mark.django_db


def _fields(row: CRL) -> dict:
    return {f.attname: (bytes(v) if isinstance(v := getattr(row, f.attname), memoryview) else v)
            for f in CRL._meta.concrete_fields if not f.primary_key}


@pytest.mark.parametrize("base", [None, 7])
def test_copy_insert_writes_what_an_insert_writes(root_ca, base):
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    values = dict(ca=root_ca, is_delta=base is not None, base_crl_number=base, this_update=when,
                  next_update=datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), entries=3, der=os.urandom(3000),
                  created_at=when)
    copy_insert(CRL(crl_number=900, **values))
    CRL(crl_number=901, **values).save(force_insert=True)
    copied, inserted = (CRL.objects.get(ca=root_ca, crl_number=n) for n in (900, 901))
    a, b = _fields(copied), _fields(inserted)
    assert a.pop("crl_number") == 900 and b.pop("crl_number") == 901
    b["created_at"] = a["created_at"]  # save() applies auto_now_add; COPY writes the value given
    assert a == b and a["der"] == values["der"] and a["this_update"] == when


def test_copy_insert_refuses_a_type_it_does_not_encode(root_ca):
    # A CA row has text columns, which this writer does not encode: refused before anything is sent.
    with pytest.raises(TypeError, match="is not written by binary COPY"):
        copy_insert(CertificateAuthority(name="never", subject_dn="CN=never"))
    assert not CertificateAuthority.objects.filter(name="never").exists()


def test_a_crl_above_the_copy_threshold_is_stored_whole(root_ca, actor, monkeypatch, issue_cert_for_crl):
    monkeypatch.setattr(crl_module, "COPY_THRESHOLD", 0)  # every CRL of this test goes through binary COPY
    row = crl_module.create_crl(actor, root_ca)
    stored = CRL.objects.get(pk=row.pk)
    assert bytes(stored.der) == bytes(row.der)
    crl = x509.load_der_x509_crl(bytes(stored.der))
    assert crl.is_signature_valid(root_ca.certificate.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(issue_cert_for_crl.serial, 16)) is not None


@pytest.fixture
def issue_cert_for_crl(root_ca, actor, csr_factory):
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke

    csr, _ = csr_factory("CN=copy crl")
    row = issue(IssuanceRequest(ca=root_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                csr=csr)).row
    revoke(actor, row, 1)
    return row


def test_a_stored_crl_is_compressed_with_lz4_where_the_server_has_it(root_ca, actor, issue_cert_for_crl):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        if not cur.fetchone()[0]:
            pytest.skip("this PostgreSQL has no lz4")
        row = crl_module.create_crl(actor, root_ca)
        # Big enough to be compressed: the same CRL bytes, stored again inside a transaction that prefers lz4.
        from django.db import transaction

        from pki.dbcopy import prefer_fast_compression

        with transaction.atomic():
            prefer_fast_compression()
            copy_insert(CRL(ca=root_ca, crl_number=row.crl_number + 1000, is_delta=False, this_update=row.this_update,
                            next_update=row.next_update, entries=1, der=bytes(row.der) * 2000,
                            created_at=row.created_at))
        cur.execute("SELECT pg_column_compression(der) FROM pki_crl WHERE ca_id = %s AND crl_number = %s",
                    [root_ca.pk, row.crl_number + 1000])
        assert cur.fetchone()[0] == "lz4"
