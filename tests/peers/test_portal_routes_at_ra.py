"""Every RA portal page at an RA node is either carried to the CA or refused at the RA, never answered from the RA's
own database (which holds no end entities, certificates or approval requests): the walk below covers every ``/ra/``
route of the URL configuration, so a page added later fails here until someone decides what an RA does with it.
Also the pages an operator needs that came later to the RA: approval requests (list, view, approve) and end entity
edit, carried end to end."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import get_resolver

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from peers import portal_ra
from peers import services as peers
from peers.carried_http import PORTAL_ROUTES, RA_LOCAL_PORTAL_ROUTES, portal_route_at_ra
from peers.models import PeerWorkItem
from pki.models import AuditEvent
from pki.models.approvals import ApprovalAction, ApprovalRequest, ApprovalStatus
from pki.services import approvals
from tests.endentities import entities_support
from tests.endentities.test_ra_portal_enroll import RA_ADMIN_RULES, _csr_pem, request_data

from .conftest import carrying, cert_headers, csrf_token, foreign_cert

ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory
DB = pytest.mark.django_db(transaction=True)  # the held page waits on another connection for the carrier's answer

#: /ra/ pages an RA refuses on purpose (none today): a page named nowhere fails the walk.
REFUSED_AT_RA: frozenset[str] = frozenset()
#: A value for each kind of path parameter of the RA portal's routes.
SAMPLE = {"int": "1", "str": "pem", "slug": "x", "path": "x"}


def _ra_routes(resolver=None, prefix: str = "/"):
    """(URL name, a path of it) of every route under /ra/."""
    for p in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(p.pattern).lstrip("^")
        if hasattr(p, "url_patterns"):
            yield from _ra_routes(p, pattern)
        elif pattern.startswith("/ra/"):
            yield p.name, re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE[m.group(1) or "str"], pattern)


RA_ROUTES = sorted(set(_ra_routes()))


def test_every_ra_portal_route_is_decided():
    names = {name for name, _ in RA_ROUTES}
    assert names, "no /ra/ routes found"
    undecided = names - PORTAL_ROUTES - RA_LOCAL_PORTAL_ROUTES - REFUSED_AT_RA
    assert not undecided, f"decide for each: carried (PORTAL_ROUTES), the RA's own or refused: {sorted(undecided)}"
    assert not PORTAL_ROUTES - names, "a carried route that no longer exists"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "path"), RA_ROUTES)
@pytest.mark.parametrize("method", ["get", "post"])
def test_each_ra_portal_page_is_carried_or_refused_at_an_ra(ra_node, monkeypatch, name, path, method, tracebacks):
    """At an RA, with the CA not answering: a carried page is queued for the CA (and the operator told the CA did
    not answer), a refused one gets a refusal page; none is answered by the RA's own view."""
    queued = []

    def carry(request, kind, payload):
        queued.append(payload)
        return None  # as a CA that does not answer

    monkeypatch.setattr(portal_ra, "carry_and_wait", carry)
    client = Client(**cert_headers(foreign_cert("ra-op")))  # the RA checks the TLS proxy's word only; CSRF aside
    response = getattr(client, method)(path)
    decision = portal_route_at_ra(path, name)
    if name in RA_LOCAL_PORTAL_ROUTES:
        assert decision == "local" and not queued
        return
    if name in REFUSED_AT_RA:
        assert decision == "refuse" and not queued
        assert response.status_code == 404 and "not available through an RA node" in response.content.decode()
        return
    assert decision == "carry"
    assert [(q["method"], q["path"]) for q in queued] == [(method.upper(), path)], response.content[-500:]
    assert response.status_code == 503 and "The CA did not answer in time" in response.content.decode()
    assert not tracebacks.records


@pytest.mark.django_db
def test_a_portal_page_nobody_decided_is_refused_at_the_ra(ra_node, monkeypatch):
    """The default for a /ra/ route named nowhere: a refusal page, nothing queued, no view of the RA run."""
    from django.urls import include, path

    from tests.peers import test_portal_routes_at_ra as this

    def view(request):
        raise AssertionError("answered by the RA's own view")

    monkeypatch.setattr(this, "urlpatterns", [path("ra/new-page/", view, name="ra-new-page"),
                                                   path("", include("pki.urls"))], raising=False)
    ra_node.ROOT_URLCONF = "tests.peers.test_portal_routes_at_ra"
    r = Client(**cert_headers(foreign_cert("ra-op"))).get("/ra/new-page/")
    assert r.status_code == 404 and "not available through an RA node" in r.content.decode()
    assert not PeerWorkItem.objects.exists()


@pytest.mark.django_db
def test_the_ca_certificates_and_crls_page_at_an_ra_lists_what_the_ca_pushed(ra_node, root_ca, actor):
    """The RA's own page: the CA certificates and CRLs the CA pushed, linked to the RA's public URLs for them."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from peers.models import PushedCrl
    from pki.crl import create_crl

    crl = create_crl(actor, root_ca)
    client = Client()  # public, as /ca/<name>.crt and /crl/<name>.crl are
    page = client.get("/ra/cas/").content.decode()
    assert "TestRoot" in page and "/ca/TestRoot.crt?format=pem" in page and "/crl/TestRoot.crl" not in page
    ra_node.PKI_NODE_ROLE = "ca"  # at the CA: its own CRLs
    assert "/crl/TestRoot.crl" in client.get("/ra/cas/").content.decode()
    ra_node.PKI_NODE_ROLE = "ra"
    PushedCrl.objects.create(ca=root_ca, crl_number=crl.crl_number, this_update=crl.this_update,
                             next_update=crl.next_update, der=bytes(crl.der))
    page = client.get("/ra/cas/").content.decode()
    assert "/crl/TestRoot.crl" in page and not PeerWorkItem.objects.exists()
    cert = client.get("/ca/TestRoot.crt?format=pem")
    assert x509.load_pem_x509_certificate(cert.content).public_bytes(Encoding.DER) == bytes(root_ca.certificate_der)
    pushed = client.get("/crl/TestRoot.crl")
    assert pushed.status_code == 200 and pushed.content == bytes(crl.der)
    assert client.post("/ra/cas/").status_code == 405


# -- carried end to end ------------------------------------------------------------------------------------------

APPROVE = ["/ra_functionality/approve_end_entity"]


@DB
def test_approval_requests_are_listed_viewed_and_decided_through_the_ra(ra_portal, portal_carrier, cert_operator, actor,
                                                                       ee_profile, root_ca, csr_factory, tracebacks):
    profile = approvals.save_profile(actor, name="One", approvals_required=1, request_expiration=3600)
    approvals.set_approval(actor, ApprovalAction.ADD_EDIT_END_ENTITY, profile, ca=root_ca)
    maker = cert_operator("maker", [*RA_ADMIN_RULES, f"/ca/{root_ca.pk}"])
    page = maker.get(f"/ra/enroll/?profile={ee_profile.pk}")
    assert page.status_code == 200, page.content[-1500:]
    data = request_data(ee_profile, **{"key-csr_pem": _csr_pem(csr_factory), "key-certificate_format": "pem"})
    token = csrf_token(page.content.decode())
    r = maker.post(f"/ra/enroll/?profile={ee_profile.pk}", {**data, "csrfmiddlewaretoken": token})
    assert r.status_code in (200, 302), r.content[-1500:]
    req = ApprovalRequest.objects.get()
    assert req.status == ApprovalStatus.WAITING and not EndEntity.objects.exists()
    checker = cert_operator("checker", [*APPROVE, f"/ca/{root_ca.pk}"])
    listing = checker.get("/ra/approvals/")
    assert listing.status_code == 200 and req.username in listing.content.decode()
    detail = checker.get(f"/ra/approvals/{req.pk}/")
    html = detail.content.decode()
    assert detail.status_code == 200 and 'value="approve"' in html, html[-1500:]
    r = checker.post(f"/ra/approvals/{req.pk}/decide/", {"decision": "approve", "comment": "seen at the RA",
                                                         "csrfmiddlewaretoken": csrf_token(html)})
    assert r.status_code == 302
    req.refresh_from_db()
    assert req.status == ApprovalStatus.APPROVED and req.approvals.get().comment == "seen at the RA"
    assert EndEntity.objects.get(username=req.username).status == EndEntityStatus.NEW
    # Decided at the CA by the operator the RA forwarded, carried by the connector.
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__kind="portal.page")
    assert {e.details["requester"].split(" (")[0] for e in carried} >= {"maker", "checker"}
    assert checker.get("/ra/approvals/999999/").status_code == 404  # the CA's own 404
    assert not tracebacks.records


@DB
def test_head_on_a_portal_page_answers_as_the_get_without_a_body(ra_portal, portal_carrier, cert_operator):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    head, get = op.head("/ra/"), op.get("/ra/")
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head["Content-Type"] == get["Content-Type"] and int(head["Content-Length"]) == len(get.content)


@DB
def test_an_end_entity_is_edited_through_the_ra(ra_portal, portal_carrier, cert_operator, entity_factory, tracebacks):
    op = cert_operator("ra-op", RA_ADMIN_RULES)
    anna = entity_factory("anna", subject_dn="CN=anna,O=Test,C=SE")
    page = op.get(f"/ra/endentities/{anna.pk}/edit/")
    assert page.status_code == 200 and 'value="anna"' in page.content.decode(), page.content[-1500:]
    ra_portal.PKI_NODE_ROLE = "ca"  # the form's fields as the CA's view fills them (one database plays both)
    try:
        initial = op.get(f"/ra/endentities/{anna.pk}/edit/").context["form"].initial
    finally:
        ra_portal.PKI_NODE_ROLE = "ra"
    data = {k: v for k, v in initial.items() if v is not None}
    r = op.post(f"/ra/endentities/{anna.pk}/edit/", {**data, "dn_0": "anna-renamed",
                                                     "csrfmiddlewaretoken": csrf_token(page.content.decode())})
    assert r.status_code == 302, r.content.decode()[-2000:]
    assert "CN=anna-renamed" in EndEntity.objects.get(pk=anna.pk).subject_dn
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED", details__kind="portal.page")
    assert [e.details["requester"].split(" (")[0] for e in carried] == ["ra-op", "ra-op"]  # the RA's GET and POST
    assert not tracebacks.records


# -- two REST details through an RA: a 405's Allow header, HEAD -----------------------------------------------------

@pytest.fixture
def rest_carrier(actor, connector_binding, peer_role, peer_ca):
    peer_role(peer_ca, connector_binding.certificate.certificate, {"/peer/carry/rest": True})
    connector = peers.add_connector(actor, name="dmz-ra", url="https://127.0.0.1:9", binding="ra-link")
    with carrying(connector, forget=True):
        yield connector


def _at_ra_and_ca(settings, call):
    """``call()`` at the RA (carried; one database plays both nodes), then straight at the CA."""
    at_ra = call()
    settings.PKI_NODE_ROLE = "ca"
    try:
        return at_ra, call()
    finally:
        settings.PKI_NODE_ROLE = "ra"


@DB
def test_a_carried_405_keeps_allow_and_head_answers_as_at_the_ca(ra_node, settings, rest_carrier, root_ca,
                                                                 tracebacks):
    from urllib.parse import quote

    from tests.pki.test_api_auth import V1, make_client

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 20
    client = make_client("apiadmin", ["/"])
    dn = quote(root_ca.subject_dn, safe="")
    for method, path in [("delete", f"{V1}/ca"), ("get", f"{V1}/certificate/pkcs10enroll")]:
        at_ra, at_ca = _at_ra_and_ca(settings, lambda: getattr(client, method)(path))
        assert at_ca.status_code == 405 and at_ca["Allow"], (method, path)
        assert (at_ra.status_code, at_ra.get("Allow")) == (405, at_ca["Allow"]), (method, path, at_ra.content)
        assert at_ra.json() == at_ca.json()
    for path in [f"{V1}/ca", f"{V1}/ca/{dn}/certificate/download", f"{V1}/ca/{quote('CN=None', safe='')}/getLatestCrl"]:
        at_ra, at_ca = _at_ra_and_ca(settings, lambda: client.head(path))
        assert at_ra.status_code == at_ca.status_code != 400, (path, at_ra.content)
        assert at_ra.content == at_ca.content == b""
        for name in ("Content-Type", "Content-Length", "Content-Disposition"):
            assert at_ra.get(name) == at_ca.get(name), (path, name)
        assert int(at_ra["Content-Length"]) == len(client.get(path).content) > 0
    assert not tracebacks.records
