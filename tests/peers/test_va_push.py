"""The status push through Django's test client (``POST /peers/v1/push/status``, peers.pushed) and the CA side
that builds it (peers.push): an RA keeps revocations and refuses a revoked connector certificate at once; a VA
keeps the certificates in the responder's tables and answers OCSP for the external CA with its own binding; the
newest change wins whatever order pushes arrive in; a CRL is checked and served; bad input changes nothing."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from peers.models import PushedCrl, PushedRevocation
from peers.revocations import is_revoked
from pki.choices import CertificateStatus
from pki.models import Certificate

from .conftest import cert_headers

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _fingerprint(ca) -> str:
    return ca.certificate.fingerprint(hashes.SHA256()).hex()


def _push(client, cert, body):
    return client.post("/peers/v1/push/status", data=json.dumps(body), content_type="application/json",
                       **cert_headers(cert))


def _record(ca, cert: x509.Certificate, status: str, at: dt.datetime, *, reason=None, der=False) -> dict:
    record = {"ca": _fingerprint(ca), "serial": format(cert.serial_number, "x"), "status": status, "reason": reason,
              "revoked_at": at.isoformat() if status != "ACTIVE" else None, "changed_at": at.isoformat()}
    if der:
        record["der"] = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return record


@pytest.fixture
def link(peer_ca, make_cert, peer_role):
    """The CA connector's certificate, admitted as an incoming peer."""
    cert = make_cert(peer_ca)
    peer_role(peer_ca, cert, {"/peer/incoming": True})
    return cert


def test_an_ra_refuses_a_revoked_connector_certificate_once_the_ca_pushed_it(client, ra_node, peer_ca, link):
    assert client.get("/peers/v1/hello", **cert_headers(link)).status_code == 200
    r = _push(client, link, {"certificates": [_record(peer_ca, link, "REVOKED", T0, reason=1)]})
    assert r.status_code == 200 and r.json()["certificates"] == 1
    # The role member is still there; the pushed revocation alone refuses the next call.
    r = client.get("/peers/v1/hello", **cert_headers(link))
    assert r.status_code == 403 and r.json()["error_code"] == "revoked"
    assert not Certificate.objects.filter(serial=format(link.serial_number, "x")).exists()  # an RA keeps no rows


def test_the_newest_change_wins_whatever_order_pushes_arrive_in(client, ra_node, peer_ca, make_cert, link):
    other = make_cert(peer_ca, "device")
    serial = format(other.serial_number, "x")
    hold = _record(peer_ca, other, "ON_HOLD", T0, reason=6)
    later = _record(peer_ca, other, "ACTIVE", T0 + dt.timedelta(1))
    assert _push(client, link, {"certificates": [hold]}).status_code == 200
    assert PushedRevocation.objects.filter(serial=serial).exists()
    assert is_revoked(peer_ca, serial)
    assert _push(client, link, {"certificates": [later]}).status_code == 200  # taken off hold
    assert not is_revoked(peer_ca, serial)
    assert _push(client, link, {"certificates": [hold]}).status_code == 200  # a late, older push
    assert not is_revoked(peer_ca, serial)


@pytest.mark.parametrize(("case", "body"), [
    ("unknown-ca", lambda ca, c: {"certificates": [{**_record(ca, c, "REVOKED", T0), "ca": "0" * 64}]}),
    ("bad-serial", lambda ca, c: {"certificates": [{**_record(ca, c, "REVOKED", T0), "serial": "XYZ"}]}),
    ("bad-status", lambda ca, c: {"certificates": [_record(ca, c, "GONE", T0)]}),
    ("naive-time", lambda ca, c: {"certificates": [{**_record(ca, c, "REVOKED", T0), "changed_at": "2026-01-01"}]}),
    ("not-a-list", lambda ca, c: {"certificates": {"a": 1}}),
    ("foreign-crl", lambda ca, c: {"crls": [{"ca": _fingerprint(ca), "der": base64.b64encode(_crl(
        ec.generate_private_key(ec.SECP256R1()), ca.certificate.subject, 7)).decode()}]}),
    ("crl-without-number", lambda ca, c: {"crls": [{"ca": _fingerprint(ca), "der": base64.b64encode(_crl(
        _ca_key(ca), ca.certificate.subject, None)).decode()}]}),
])
def test_bad_pushes_are_refused_and_change_nothing(client, ra_node, peer_ca, make_cert, link, case, body):
    victim = make_cert(peer_ca, "victim")
    data = body(peer_ca, victim)
    # A valid record first: the whole push is refused, not only the bad record.
    if isinstance(data.setdefault("certificates", []), list):
        data["certificates"].insert(0, _record(peer_ca, victim, "REVOKED", T0))
    r = _push(client, link, data)
    assert r.status_code == 400, r.content
    assert not PushedRevocation.objects.exists() and not PushedCrl.objects.exists()


def _ca_key(ca):
    from cryptotokens import services as tokens

    return tokens.get_private_key(ca.crypto_token, ca.key_alias)


def _crl(key, issuer: x509.Name, number: int | None, revoked: int | None = None) -> bytes:
    """A CRL signed by ``key``; ``number`` None: one without a CRL number, which no CA of this project signs."""
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now)
               .next_update(now + dt.timedelta(hours=1)))
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=False)
    if revoked is not None:
        builder = builder.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(revoked)
                                                  .revocation_date(now).build())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_a_pushed_crl_is_served_and_refuses_what_it_lists(client, ra_node, peer_ca, make_cert, link):
    from cryptotokens import services as tokens

    listed = make_cert(peer_ca, "listed")
    der = _crl(tokens.get_private_key(peer_ca.crypto_token, peer_ca.key_alias), peer_ca.certificate.subject, 900,
               listed.serial_number)
    r = _push(client, link, {"crls": [{"ca": _fingerprint(peer_ca), "der": base64.b64encode(der).decode()}]})
    assert r.status_code == 200 and r.json()["crls"] == 1
    served = client.get(f"/crl/{peer_ca.name}.crl")
    assert served.status_code == 200 and served.content == der
    assert is_revoked(peer_ca, format(listed.serial_number, "x"))
    assert not is_revoked(peer_ca, format(link.serial_number, "x"))


@pytest.fixture
def va_node(ra_node):
    ra_node.PKI_NODE_ROLE = "va"
    return ra_node


def test_a_va_keeps_pushed_certificates_where_the_responder_reads_them(client, va_node, peer_ca, make_cert, link):
    fresh = make_cert(peer_ca, "fresh")
    serial = format(fresh.serial_number, "x")
    r = _push(client, link, {"certificates": [_record(peer_ca, fresh, "ACTIVE", T0, der=True)]})
    assert r.status_code == 200, r.content
    row = Certificate.objects.get(ca=peer_ca, serial=serial)
    assert row.status == CertificateStatus.ACTIVE and bytes(row.der) == fresh.public_bytes(serialization.Encoding.DER)
    revoked = _record(peer_ca, fresh, "REVOKED", T0 + dt.timedelta(minutes=1), reason=1)
    assert _push(client, link, {"certificates": [revoked]}).status_code == 200
    row.refresh_from_db()
    assert (row.status, row.revocation_reason) == (CertificateStatus.REVOKED, 1)
    assert _push(client, link, {"certificates": [_record(peer_ca, fresh, "ACTIVE", T0)]}).status_code == 200
    row.refresh_from_db()
    assert row.status == CertificateStatus.REVOKED  # the older record lost


def test_a_va_refuses_a_certificate_its_ca_did_not_sign(client, va_node, peer_ca, make_cert, link, ca_factory):
    stranger = make_cert(ca_factory("StrangerCA"), "stranger")
    record = _record(peer_ca, stranger, "ACTIVE", T0, der=True)
    assert _push(client, link, {"certificates": [record]}).status_code == 400
    assert not Certificate.objects.filter(serial=record["serial"], ca=peer_ca).exists()


def test_the_responder_answers_external_cas_on_a_va_only(settings):
    from protocols.ocsp import services

    assert services._VA_STATE_ONE != services._ANSWER_STATE_ONE and "EXTERNAL" not in services._VA_STATE_ONE
    settings.PKI_NODE_ROLE = "va"
    assert services._serves_external()
    settings.PKI_NODE_ROLE = "ca"
    assert not services._serves_external()


def test_the_ca_side_sends_revocations_to_an_ra_and_everything_to_a_va(peer_ca, connector_binding):
    from peers import push, services
    from pki.auth.access import Actor
    from pki.revocation import revoke

    actor = Actor.system_actor("test")
    connector = services.add_connector(actor, name="to-node", url="https://127.0.0.1:1", binding="ra-link")
    sent: list[dict] = []

    class Client:
        def call(self, method, path, body, timeout=None):
            sent.append(body)
            return {}

    revoked = Certificate.objects.filter(ca=peer_ca).exclude(is_ca=True).first()
    revoke(actor, revoked, 1)
    for role, expect_all in (("ra", False), ("va", True)):
        sent.clear()
        pusher = push.StatusPusher(Client(), connector, role)
        pusher.resync()
        records = [r for body in sent for r in body["certificates"]]
        serials = {r["serial"] for r in records}
        assert revoked.serial in serials
        assert (len(serials) == Certificate.objects.filter(ca=peer_ca).count()) is expect_all
        assert all(("der" in r) is expect_all for r in records)
        assert any(body.get("cas") for body in sent) and any(body["crls"] for body in sent)
        # Nothing changed since: nothing is sent again.
        sent.clear()
        assert pusher.step() == 0
    # Visible with the connector's state (UI, REST, `peer status`).
    summary = services.connector_summary(connector)["status_push"]
    assert summary["resynced_at"] and summary["certificates_pushed"] >= 2 and summary["crls_pushed"] >= 2


def _self_signed_ca(name: str, key) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def test_a_ca_renewed_at_the_ca_is_renewed_on_the_node(client, va_node, link, actor):
    from pki.models import CACertificate
    from pki.services.cas import import_ca

    old = _self_signed_ca("Renewing CA", ec.generate_private_key(ec.SECP256R1()))
    ca = import_ca(actor, "Renewing", old.public_bytes(serialization.Encoding.PEM))
    new = _self_signed_ca("Renewing CA", ec.generate_private_key(ec.SECP256R1()))
    der = base64.b64encode(new.public_bytes(serialization.Encoding.DER)).decode()
    r = _push(client, link, {"cas": [{"name": "Renewing", "fingerprint": "x", "certificate": der}]})
    assert r.status_code == 200, r.content
    ca.refresh_from_db()
    assert ca.certificate == new and CACertificate.objects.filter(ca=ca).count() == 2
    # The same push again changes nothing.
    assert _push(client, link, {"cas": [{"name": "Renewing", "certificate": der}]}).status_code == 200
    assert CACertificate.objects.filter(ca=ca).count() == 2


def test_a_pushed_ca_this_node_cannot_store_is_a_400(client, va_node, link):
    """A CA certificate whose subject DN is longer than a CA's subject DN column: refused as a bad push (it was a
    database error, a 500), and no CA is stored."""
    from pki.models import CertificateAuthority

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.ORGANIZATIONAL_UNIT_NAME, f"{i:02d}" + "u" * 60)
                         for i in range(17)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=9))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    cas = CertificateAuthority.objects.count()
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    r = _push(client, link, {"cas": [{"name": "Long", "certificate": der}]})
    assert r.status_code == 400 and "1024" in r.json()["error_message"], r.content
    assert CertificateAuthority.objects.count() == cas


def test_an_ra_push_reads_only_the_new_certificates_it_sends(peer_ca, connector_binding, monkeypatch):
    """To an RA only revocations go: certificates issued since the last look are followed by id, and only those
    already revoked or on hold are read whole (every new certificate, read with its DER every two seconds, cost the
    connector's carried requests their CPU). A VA still gets every new certificate."""
    from peers import push, services
    from pki.auth.access import Actor
    from pki.revocation import revoke

    actor = Actor.system_actor("test")
    connector = services.add_connector(actor, name="to-node", url="https://127.0.0.1:1", binding="ra-link")

    class Client:
        def call(self, method, path, body, timeout=None):
            return {}

    pushers = {role: push.StatusPusher(Client(), connector, role) for role in ("ra", "va")}
    for pusher in pushers.values():
        pusher.resync()
    template = Certificate.objects.filter(ca=peer_ca).exclude(is_ca=True).first()
    new = []
    for i in range(4):
        row = Certificate.objects.get(pk=template.pk)
        row.pk, row.serial, row.fingerprint_sha256 = None, f"7e57{i:04x}", f"{i:064x}"
        row.save()
        new.append(row)
    revoke(actor, new[2], 1)
    read: dict[str, list[str]] = {}
    original = push.certificate_record

    def recording(row, **kw):
        read.setdefault(role, []).append(row.serial)
        return original(row, **kw)

    monkeypatch.setattr(push, "certificate_record", recording)
    for role, pusher in pushers.items():
        assert pusher.step() == (1 if role == "ra" else 4)
        assert pusher.last_id == new[-1].pk
    assert read["ra"] == [new[2].serial]
    assert {r.serial for r in new} <= set(read["va"])  # with the window's older rows, which are not sent again
