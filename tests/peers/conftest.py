"""Fixtures of the peers tests: a CA with a connector's authentication key binding, certificates built to order,
roles on the RA side, and the forwarded client-certificate headers the TLS proxy sets."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@pytest.fixture
def peer_ca(ca_factory):
    return ca_factory("PeerCA")


@pytest.fixture
def connector_binding(actor, peer_ca, soft_token_factory):
    """An active authentication key binding with a clientAuth certificate from PeerCA."""
    from keybindings import services
    from pki.models import CertificateProfile

    token = soft_token_factory("PeerToken")
    binding = services.create_binding(actor, name="ra-link", binding_type="AuthenticationKeyBinding",
                                      crypto_token=token, key_spec="P-256")
    services.issue_certificate(actor, binding, ca=peer_ca, profile=CertificateProfile.objects.get(name="ENDUSER"),
                               subject_dn="CN=ca-connector,O=Test")
    return services.set_status(actor, binding, "ACTIVE")


@pytest.fixture
def make_cert() -> Callable:
    """A client certificate signed by ``ca`` with exactly the asked EKU and validity (a fresh P-256 key)."""
    from cryptotokens import services as tokens

    def make(ca, cn: str = "ca-connector", *, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,), days: int = 30,
             start_days: int = 0) -> x509.Certificate:
        ca_key = tokens.get_private_key(ca.crypto_token, ca.key_alias)
        now = dt.datetime.now(dt.UTC) + dt.timedelta(days=start_days)
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                   .issuer_name(ca.certificate.subject).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    return make


def foreign_cert(cn: str = "ca-connector") -> x509.Certificate:
    """A clientAuth certificate from a CA this node does not know (built here, never stored)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PeerCA"), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                             "Test")])
    return (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer).public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))


def cert_headers(cert: x509.Certificate | None) -> dict[str, str]:
    """What the TLS proxy forwards for a verified client certificate."""
    if cert is None:
        return {}
    return {"HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
            "HTTP_X_SSL_CLIENT_CERT": quote(cert.public_bytes(serialization.Encoding.PEM).decode())}


@pytest.fixture
def ra_node(settings):
    """This process as an RA node behind the TLS proxy on 127.0.0.1, SCEP forwarded as on a real RA."""
    from peers.scep_ra import forward_scep
    from protocols.scep.views import register_node_forwarder

    settings.PKI_NODE_ROLE = "ra"
    settings.PKI_BEHIND_TLS_PROXY = True
    settings.PKI_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.PKI_PEER_REQUEST_TIMEOUT = 1.0
    register_node_forwarder(forward_scep)
    yield settings
    register_node_forwarder(None)


@pytest.fixture
def peer_role(actor) -> Callable:
    """A role on this node with the given rules and one client-certificate member."""
    from pki.choices import MemberMatch
    from pki.services import roles

    counter = {"n": 0}

    def make(ca, cert: x509.Certificate, rules: dict[str, bool], *, by: str = "serial"):
        counter["n"] += 1
        role = roles.create_role(actor, f"Peer role {counter['n']}")
        if by == "serial":
            spec = roles.MemberSpec(MemberMatch.CERTIFICATE_SERIAL, format(cert.serial_number, "x"), issuer_ca=ca)
        else:
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            spec = roles.MemberSpec(MemberMatch.CERTIFICATE_CN, cn, issuer_ca=ca)
        roles.add_member(actor, role, spec)
        if rules:
            roles.set_rules(actor, role, rules)
        return role

    return make


@contextlib.contextmanager
def carrying(connector, *, forget: bool = False) -> Iterator[None]:
    """The CA connector's loop in a thread while inside: lease from this (RA) database, carry on the CA, answer;
    with ``forget``, then drop the answer from the CA's record as the real loop does once the RA has it."""
    from django.db import connection

    from peers import carry, queue

    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                for item in queue.lease("test-connector", wait_seconds=0.2):
                    result = carry.carry(connector, {"id": item.pk, "key": item.idempotency_key, "kind": item.kind,
                                                     "payload": item.payload, "requester": item.requester})
                    queue.answer("test-connector", item.pk, item.idempotency_key, result)
                    if forget:
                        carry.forget_answer(connector, {"kind": item.kind, "key": item.idempotency_key})
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


# --- the RA portal at an RA node, carried to the CA in this process -----------------------------------------------


@pytest.fixture
def ra_portal(ra_node):
    """This process as an RA node whose portal waits up to 20 s for the CA's answer."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    return ra_node


@pytest.fixture
def portal_connector(actor, connector_binding, peer_role, peer_ca):
    """The CA's connector, allowed to carry portal pages (not looping: see ``portal_carrier``)."""
    from peers import services as peers

    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/portal": True})
    return peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")


@pytest.fixture
def portal_carrier(portal_connector):
    """``portal_connector`` looping in a thread: lease, carry, answer; then, as the real loop does once the RA has
    the answer, the CA drops its body from the record."""
    with carrying(portal_connector, forget=True):
        yield portal_connector


@pytest.fixture
def cert_operator(actor, peer_ca, csr_factory, peer_role) -> Callable:
    """An RA operator's browser at the RA: ``cert_operator(cn, rules)``, a client certificate the CA issued, in a
    role with ``rules`` on the CA."""
    from django.test import Client

    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile

    def make(cn: str, rules: list[str]):
        csr, _ = csr_factory(f"CN={cn},O=Test")
        cert = issue(IssuanceRequest(ca=peer_ca, actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                     csr=csr, username=cn)).row.certificate
        peer_role(peer_ca, cert, dict.fromkeys(rules, True))
        return Client(enforce_csrf_checks=True, **cert_headers(cert))

    return make


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    import re

    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.fixture(autouse=True, scope="module")
def _stop_answer_listener():
    """The RA's answer listener (peers.waiting) holds a connection of its own to the test database: closed after
    each module, so the database can be dropped at the end."""
    yield
    from peers import waiting

    waiting.listener.stop()
