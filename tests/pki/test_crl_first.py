"""A CA's CRLs exist from its first second: creating, renewing (new key) or rolling over a CA makes its CRL in
the same transaction, and /crl/<ca>.crl, EJBCA's certdist URL and SCEP GetCRL answer at once."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography import x509
from django.test import Client
from django.utils import timezone

from cryptotokens.models import CryptoTokenKeyPair
from pki.errors import CAOfflineError
from pki.models import CRL, AuditEvent, CACertificate, CertificateAuthority
from pki.services.cas import CASettings, apply_due_rollover, create_ca, renew_ca
from protocols.scep.messages import PkiStatus
from protocols.scep.messages import client as scep_client
from tests.conftest import pem

from ..protocols.scep.server_fixtures import *  # noqa: F403
from ..protocols.scep.server_fixtures import client_key, make_csr, own

CERTDIST = "/ejbca/publicweb/webdist/certdist"


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _openssl_verifies(openssl, der: bytes, ca: CertificateAuthority) -> str:
    """``openssl crl -verify`` against the CA certificate; returns its text dump."""
    openssl.write("crl.der", der)
    openssl.write("ca.pem", pem(ca.certificate))
    out = openssl("crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-text", "-CAfile", "ca.pem")
    assert "verify OK" in out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize(("kind", "delta_period"), [
    ("root", timedelta(0)),
    ("root", timedelta(hours=1)),
    ("sub", timedelta(0)),
    ("sub", timedelta(minutes=30)),
], ids=["root", "root+delta", "sub", "sub+delta"])
def test_a_new_ca_serves_its_crl_at_once(ca_factory, openssl, kind, delta_period):
    signed_by = ca_factory("FirstRoot") if kind == "sub" else None
    ca = ca_factory("Fresh", signed_by=signed_by, crl_period=timedelta(hours=6), delta_crl_period=delta_period,
                    crl_distribution_point="http://pki.test/crl/Fresh.crl")
    client = Client()

    r = client.get("/crl/Fresh.crl")
    assert r.status_code == 200 and r["Content-Type"] == "application/pkix-crl"
    full = x509.load_der_x509_crl(r.content)
    assert _number(full) == 1 and len(full) == 0
    assert full.next_update_utc - full.last_update_utc == timedelta(hours=6)
    assert "Fresh" in _openssl_verifies(openssl, r.content, ca)

    dn = quote(ca.subject_dn, safe="")
    certdist = client.get(f"{CERTDIST}?cmd=crl&issuer={dn}")
    assert certdist.status_code == 200 and certdist.content == r.content

    delta_reply = client.get("/crl/Fresh.crl?delta=true")
    certdist_delta = client.get(f"{CERTDIST}?cmd=deltacrl&issuer={dn}")
    if not delta_period:
        assert delta_reply.status_code == certdist_delta.status_code == 404
        assert CRL.objects.filter(ca=ca).count() == 1
        return
    assert delta_reply.status_code == certdist_delta.status_code == 200
    assert certdist_delta.content == delta_reply.content
    delta = x509.load_der_x509_crl(delta_reply.content)
    assert _number(delta) == 2
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == 1
    assert delta.next_update_utc - delta.last_update_utc == delta_period
    assert "Delta CRL Indicator" in _openssl_verifies(openssl, delta_reply.content, ca)
    # The full CRL points to its deltas.
    freshest = full.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == "http://pki.test/crl/Fresh.crl?delta=true"


def test_the_first_crl_is_audited_in_the_creation(ca_factory):
    ca = ca_factory("Audited")
    events = list(AuditEvent.objects.filter(object_type="ca", object_id=str(ca.pk)).order_by("sequence")
                  .values_list("event_type", "outcome", "details__crl_number"))
    assert ("CRL_CREATION", "SUCCESS", 1) in events and ("CA_CREATION", "SUCCESS", None) in events


def test_a_ca_whose_first_crl_fails_is_not_created(actor, builtin_profiles, soft_token_factory, monkeypatch):
    """Same transaction: a CA that could not sign its CRL would hand out certificates whose CRL distribution
    point answers 404, so it is not created at all (and its newly generated key is not left behind)."""
    import pki.crl

    def refuse(ca, *args, **kwargs):
        raise CAOfflineError(f"CA '{ca.name}' could not sign its CRL: test")

    monkeypatch.setattr(pki.crl, "build_crl_der", refuse)
    token = soft_token_factory("FailToken")
    with pytest.raises(CAOfflineError, match="could not sign its CRL"):
        create_ca(actor, CASettings(name="NoCrl", subject_dn="CN=NoCrl,O=Test,C=SE", crypto_token=token,
                                    key_alias="signKey", key_spec="P-256"))
    assert not CertificateAuthority.objects.filter(name="NoCrl").exists()
    assert not CACertificate.objects.filter(ca__name="NoCrl").exists() and not CRL.objects.exists()
    assert not CryptoTokenKeyPair.objects.filter(token=token, alias="signKey").exists()


def test_renewal_with_a_new_key_makes_a_crl_signed_by_it(ca_factory, actor, openssl):
    ca = ca_factory("Renewed", delta_crl_period=timedelta(hours=1))
    old_key = ca.certificate.public_key()
    renewed = renew_ca(actor, ca, new_key_alias="nextKey", new_key_spec="P-256")
    full, delta = CRL.objects.filter(ca=ca, is_delta=False).latest("crl_number"), \
        CRL.objects.filter(ca=ca, is_delta=True).latest("crl_number")
    assert (full.crl_number, delta.crl_number, delta.base_crl_number) == (3, 4, 3)
    crl = x509.load_der_x509_crl(bytes(full.der))
    assert crl.is_signature_valid(renewed.certificate.public_key()) and not crl.is_signature_valid(old_key)
    assert x509.load_der_x509_crl(bytes(delta.der)).is_signature_valid(renewed.certificate.public_key())
    _openssl_verifies(openssl, bytes(Client().get("/crl/Renewed.crl").content), renewed)


def test_a_rollover_makes_its_crl_when_it_activates(ca_factory, actor):
    ca = ca_factory("Rolling")
    renew_ca(actor, ca, new_key_alias="nextKey", new_key_spec="P-256",
             activate_at=timezone.now() + timedelta(days=1))
    # Until the new certificate activates, the current key keeps signing the CRLs.
    assert list(CRL.objects.filter(ca=ca).values_list("crl_number", flat=True)) == [1]
    CertificateAuthority.objects.filter(pk=ca.pk).update(rollover_at=timezone.now() - timedelta(seconds=1))
    ca.refresh_from_db()
    assert apply_due_rollover(ca)
    latest = CRL.objects.filter(ca=ca).latest("crl_number")
    assert latest.crl_number == 2
    assert x509.load_der_x509_crl(bytes(latest.der)).is_signature_valid(ca.certificate.public_key())


def test_scep_get_crl_answers_for_a_new_ca(scep, scep_ca, alias_factory, end_entity_factory):
    alias_factory(default_ca=scep_ca)
    end_entity_factory("crlrouter", "foo123", ca=scep_ca)
    key = client_key(12)
    issued = own(scep.enroll(make_csr(key, "CN=crlrouter,O=Test,C=SE"), key, scep_ca.certificate), key)
    ca_cert = scep_ca.certificate
    reply = scep.exchange(scep_client.build_get_crl(ca_cert.subject, issued.serial_number, issued, key, ca_cert),
                          key, issued, ca_cert)
    assert reply.status == PkiStatus.SUCCESS
    assert len(reply.crls) == 1 and _number(reply.crls[0]) == 1
    assert reply.crls[0].is_signature_valid(ca_cert.public_key())
