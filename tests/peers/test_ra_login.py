"""Logging in at an RA node's portal with the user name and password held by the CA, and the attacks on it: the RA
carries one login to the CA, which answers with the key of a session record it keeps and checks on every carried
page; a forged, foreign or ended key, a disabled user and a wrong password are refused by the CA; the password and
the key leave the RA's work queue as soon as the CA answered. Also: a revoked administrator certificate at the RA's
own admin pages."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client

from endentities.choices import EndEntityStatus
from peers import portal_sessions
from peers import services as peers
from peers.carried_http import run_portal
from peers.models import CarriedRequest, PeerWorkItem
from peers.portal_ra import PORTAL_SESSION
from pki.models import AuditEvent
from tests.endentities import entities_support
from tests.endentities.test_ra_portal_enroll import RA_ADMIN_RULES

from .conftest import cert_headers, csrf_token

entity_factory = entities_support.entity_factory
ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
DB = pytest.mark.django_db(transaction=True)  # the held page waits on another connection for the carrier's answer
PASSWORD = "Rita-Pass-4711"


@pytest.fixture
def operator_account(actor):
    """A local user at the CA with the RA operator's rules."""
    from pki.choices import MemberMatch
    from pki.services import roles

    def make(name: str = "rita", rules=RA_ADMIN_RULES) -> User:
        user = User.objects.create_user(name, password=PASSWORD)
        role = roles.create_role(actor, f"RA operators {name}")
        roles.add_member(actor, role, roles.MemberSpec(MemberMatch.LOCAL_USER, name))
        roles.set_rules(actor, role, dict.fromkeys(rules, True))
        return user

    return make


def _login(client: Client, username: str = "rita", password: str = PASSWORD, next_url: str = ""):
    page = client.get("/ra/login/" + (f"?next={next_url}" if next_url else ""))
    assert page.status_code == 200, page.content[-500:]
    return client.post("/ra/login/", {"username": username, "password": password, "next": next_url,
                                      "csrfmiddlewaretoken": csrf_token(page.content.decode())})


def _ca_records() -> list[Session]:
    return [s for s in Session.objects.all() if portal_sessions.USER in s.get_decoded()]


def _queue_text() -> str:
    return repr(list(PeerWorkItem.objects.values_list("payload", "result")))


@DB
def test_login_use_the_pages_as_that_user_and_log_out_on_both_sides(ra_portal, portal_carrier, operator_account,
                                                                   entity_factory, tracebacks):
    operator_account()
    entity_factory("anna")
    op = Client(enforce_csrf_checks=True)
    r = op.get("/ra/endentities/?text=ann")
    assert r.status_code == 302 and r["Location"].startswith("/ra/login/?next=")
    r = _login(op, next_url="/ra/endentities/?text=ann")
    assert r.status_code == 302 and r["Location"] == "/ra/endentities/?text=ann", r.content[-800:]
    page = op.get(r["Location"])
    assert page.status_code == 200 and "CN=anna" in page.content.decode()
    # The CA decided who it is: its LOGIN event and the carried pages name the user.
    assert AuditEvent.objects.filter(event_type="LOGIN", actor="rita", outcome="SUCCESS").count() == 1
    carried = AuditEvent.objects.filter(event_type="PEER_REQUEST_CARRIED").order_by("pk")
    carried = carried.exclude(details__requester__startswith="RA portal OIDC")  # the login page's provider list
    assert [e.details["requester"] for e in carried] == ["rita", "rita"]
    # The RA holds the key in its session only, not a login at the RA, and its queue holds neither secret.
    (record,) = _ca_records()
    assert op.session[PORTAL_SESSION] == {"key": record.session_key, "username": "rita"}
    assert "_auth_user_id" not in op.session and "_auth_user_id" not in record.get_decoded()
    assert PASSWORD not in _queue_text() and record.session_key not in _queue_text()
    assert record.session_key not in repr(list(CarriedRequest.objects.values_list("result", flat=True)))
    assert op.get("/system/peers/").status_code in (302, 403)  # the RA's own admin pages: not logged in there
    # The RA's own administrator, logged in here, may open the portal login too.
    ra_admin = Client()
    ra_admin.force_login(User.objects.create_user("ra-local-admin", password=PASSWORD))
    assert ra_admin.get("/ra/login/").status_code == 200
    # The pages' "Log out" button ends the record at the CA and the session here.
    detail = op.get("/ra/").content.decode()
    r = op.post("/logout/", {"csrfmiddlewaretoken": csrf_token(detail)})
    assert r.status_code == 302 and r["Location"] == "/ra/login/"
    assert _ca_records() == [] and PORTAL_SESSION not in op.session
    assert AuditEvent.objects.filter(event_type="LOGOUT", actor="rita").count() == 1
    assert op.get("/ra/").status_code == 302
    assert not tracebacks.records


@DB
def test_a_session_key_planted_before_the_login_gets_nothing(ra_portal, portal_carrier, operator_account, settings):
    """Session fixation: the attacker's own RA session key, planted in the victim's browser, is not the one that
    holds the victim's CA session after the login."""
    from importlib import import_module

    operator_account()
    planted = import_module(settings.SESSION_ENGINE).SessionStore()
    planted["seen"] = True
    planted.create()
    op = Client(enforce_csrf_checks=True)
    op.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    assert _login(op).status_code == 302
    assert op.cookies[settings.SESSION_COOKIE_NAME].value != planted.session_key
    assert PORTAL_SESSION in op.session
    attacker = Client()
    attacker.cookies[settings.SESSION_COOKIE_NAME] = planted.session_key
    r = attacker.get("/ra/")
    assert r.status_code == 302 and r["Location"].startswith("/ra/login/")


@DB
def test_a_revoke_through_a_password_session(ra_portal, portal_carrier, operator_account, entity_factory):
    operator_account()
    anna = entity_factory("anna")
    op = Client(enforce_csrf_checks=True)
    _login(op)
    detail = op.get(f"/ra/endentities/{anna.pk}/").content.decode()
    r = op.post(f"/ra/endentities/{anna.pk}/revoke/", {"reason": "4", "csrfmiddlewaretoken": csrf_token(detail)})
    assert r.status_code == 302
    anna.refresh_from_db()
    assert anna.status == EndEntityStatus.REVOKED
    assert AuditEvent.objects.filter(actor="rita", event_type__icontains="REVOK").exists()


@DB
@pytest.mark.parametrize("change", ["disable", "delete", "password"])
def test_the_ca_ends_the_session_at_the_next_page(ra_portal, portal_carrier, operator_account, change):
    user = operator_account()
    op = Client(enforce_csrf_checks=True)
    _login(op)
    assert op.get("/ra/").status_code == 200
    if change == "disable":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif change == "delete":
        user.delete()
    else:
        user.set_password("Another-Pass-0815")
        user.save()
    r = op.get("/ra/endentities/")
    assert r.status_code == 302 and r["Location"].startswith("/ra/login/")
    assert PORTAL_SESSION not in op.session and _ca_records() == []
    assert "session at the CA has ended" in op.get(r["Location"]).content.decode()


@DB
@pytest.mark.parametrize(("username", "password", "active"), [
    ("rita", "wrong-password", True),
    ("rita", PASSWORD, False),  # a disabled user
    ("nobody", PASSWORD, True),
])
def test_a_refused_login_gives_no_session(ra_portal, portal_carrier, operator_account, username, password, active):
    user = operator_account()
    User.objects.filter(pk=user.pk).update(is_active=active)
    op = Client(enforce_csrf_checks=True)
    r = _login(op, username, password)
    assert r.status_code == 401 and "Wrong user name or password" in r.content.decode()
    assert PORTAL_SESSION not in op.session and _ca_records() == []
    assert password not in _queue_text()
    assert AuditEvent.objects.filter(event_type="LOGIN", outcome="FAILURE", actor=username).exists()


@pytest.mark.django_db
def test_the_ca_not_answering_a_login_leaves_no_password_at_the_ra(ra_node, operator_account):
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.3
    operator_account()
    op = Client(enforce_csrf_checks=True)
    r = _login(op)
    assert r.status_code == 503 and r["Retry-After"]
    logins = PeerWorkItem.objects.filter(requester__startswith="RA portal login")  # not the page's provider list
    assert logins.count() == 1 and PASSWORD not in _queue_text()


def _page(key, connector_pk, path="/ra/"):
    return run_portal({"method": "GET", "path": path, "body": "", "identity": {"session": key}}, connector_pk)


def _carried_login(connector_pk, username="rita", password=PASSWORD):
    return run_portal({"method": "POST", "path": "/ra/login/", "body": "",
                       "identity": {"login": {"username": username, "password": password}}}, connector_pk)


def _key(answer) -> str:
    import base64
    import json

    return json.loads(base64.b64decode(answer["body"]))["session"]


@pytest.mark.django_db
def test_forged_foreign_and_replayed_keys_are_refused_by_the_ca(portal_connector, operator_account, actor):
    user = operator_account()
    other_user = operator_account("otto")
    good = _carried_login(portal_connector.pk)
    assert good["status"] == 200 and good["actor"] == "rita"
    key = _key(good)
    assert _page(key, portal_connector.pk)["status"] == 200
    browser = Client()  # a browser session at the CA itself
    browser.force_login(other_user)
    other_connector = peers.add_connector(actor, name="other-ra", url="https://127.0.0.1:8", binding="ra-link")
    for forged, through in [
        ("0" * 32, portal_connector.pk),  # a made-up key
        (key[:-1] + ("a" if key[-1] != "a" else "b"), portal_connector.pk),  # one character off
        (browser.session.session_key, portal_connector.pk),  # a CA browser session's key: not an RA portal session
        (key, other_connector.pk),  # made through another RA's connector
        (key, None),  # not carried by a connector at all
        ("../" + key, portal_connector.pk),
        ({"key": key}, portal_connector.pk),
    ]:
        answer = _page(forged, through)
        assert answer["status"] == 403 and answer.get("session_ended"), forged
    assert _page(key, portal_connector.pk)["status"] == 200  # none of that ended the real one
    # The key at the CA's own door logs nobody in (the record holds no Django login).
    at_ca = Client()
    at_ca.cookies["sessionid"] = key
    assert at_ca.get("/start/").status_code == 302
    # A logout through another connector ends nothing; through the right one it does, and the key is dead.
    logout = {"method": "POST", "path": "/ra/login/", "body": "", "identity": {"session": key}, "logout": True}
    run_portal(logout, other_connector.pk)
    assert _page(key, portal_connector.pk)["status"] == 200
    run_portal(logout, portal_connector.pk)
    assert _page(key, portal_connector.pk)["status"] == 403
    assert user.is_active


@pytest.mark.django_db
def test_the_cas_throttling_applies_to_carried_logins(portal_connector, operator_account, settings):
    settings.PKI_AUTH_FAILURE_LIMIT = 3
    operator_account()
    statuses = [_carried_login(portal_connector.pk, password="wrong")["status"] for _ in range(4)]
    assert statuses[:3] == [401, 401, 401] and statuses[3] == 429
    locked = _carried_login(portal_connector.pk)  # the right password, while locked out: not even checked
    assert locked["status"] == 429 and int(locked["headers"]["Retry-After"]) > 0
    assert _ca_records() == []


@pytest.mark.django_db
@pytest.mark.parametrize(("new_password", "status", "text"), [
    (None, 403, "choose your own password"),  # no session with the one-time password alone
    ("short", 400, "too short"),  # the CA's password validators
    ("password123", 400, "too common"),
    (PASSWORD, 400, "different from the current one"),
    (["not", "text"], 401, ""),  # unreadable: refused, nothing changed
])
def test_a_one_time_password_is_replaced_by_the_cas_rules_or_no_session(portal_connector, operator_account,
                                                                        new_password, status, text):
    from pki.models import LocalAccount

    user = operator_account()
    LocalAccount.objects.create(user=user, must_change_password=True)
    answer = run_portal({"method": "POST", "path": "/ra/login/", "body": "", "identity": {"login": {
        "username": "rita", "password": PASSWORD, **({} if new_password is None else {"new_password": new_password})}}},
        portal_connector.pk)
    assert answer["status"] == status and text in base64.b64decode(answer["body"]).decode()
    assert bool(answer.get("must_change")) is (status != 401)
    assert _ca_records() == [] and LocalAccount.objects.get(user=user).must_change_password
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@DB
def test_a_one_time_password_is_changed_as_part_of_the_login_at_the_ra(ra_portal, portal_carrier, operator_account,
                                                                       entity_factory, tracebacks):
    from pki.models import LocalAccount

    user = operator_account()
    LocalAccount.objects.create(user=user, must_change_password=True)
    entity_factory("anna")
    op = Client(enforce_csrf_checks=True)
    r = _login(op, next_url="/ra/endentities/")
    assert r.status_code == 302 and r["Location"] == "/ra/login/password/?next=%2Fra%2Fendentities%2F", r.content
    page = op.get(r["Location"])
    html = page.content.decode()
    assert page.status_code == 200 and "rita" in html and 'name="new_password1"' in html

    def change(old: str, new: str, again: str | None = None):
        return op.post("/ra/login/password/", {"old_password": old, "new_password1": new,
                                               "new_password2": new if again is None else again,
                                               "next": "/ra/endentities/", "csrfmiddlewaretoken": csrf_token(html)})

    queued = PeerWorkItem.objects.count()
    r = change(PASSWORD, "Fresh-Pass-0815", "Other-Pass-0815")  # checked at the RA: nothing carried
    assert r.status_code == 400 and "differ" in r.content.decode() and PeerWorkItem.objects.count() == queued
    r = change(PASSWORD, "short")  # the CA's validators, shown at the RA
    assert r.status_code == 400 and "too short" in r.content.decode(), r.content[-1500:]
    r = change("not-the-one-time-password", "Fresh-Pass-0815")
    assert r.status_code == 401 and "Wrong user name or password" in r.content.decode()
    assert LocalAccount.objects.get(user=user).must_change_password and _ca_records() == []
    r = change(PASSWORD, "Fresh-Pass-0815")
    assert r.status_code == 302 and r["Location"] == "/ra/endentities/", r.content[-1500:]
    user.refresh_from_db()
    assert user.check_password("Fresh-Pass-0815") and not LocalAccount.objects.get(user=user).must_change_password
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", actor="rita", outcome="SUCCESS").count() == 1
    assert AuditEvent.objects.filter(event_type="LOGIN", actor="rita", outcome="SUCCESS").count() == 1
    (record,) = _ca_records()
    assert op.session[PORTAL_SESSION] == {"key": record.session_key, "username": "rita"}
    page = op.get("/ra/endentities/?text=ann")
    assert page.status_code == 200 and "CN=anna" in page.content.decode() and "Password changed." in \
        page.content.decode()
    assert PASSWORD not in _queue_text() and "Fresh-Pass-0815" not in _queue_text()
    assert "Change your password" in op.get("/ra/login/password/").content.decode()  # no longer a one-time one
    assert Client().get("/ra/login/password/")["Location"] == "/ra/login/"  # neither pending nor logged in
    assert _carried_login(portal_carrier.pk)["status"] == 401  # the one-time password is gone
    assert not tracebacks.records


@DB
def test_a_logged_in_operator_changes_their_password_at_the_ra(ra_portal, portal_carrier, operator_account, tracebacks):
    user = operator_account()
    op = Client(enforce_csrf_checks=True)
    assert _login(op).status_code == 302
    (old,) = _ca_records()
    home = op.get("/ra/").content.decode()
    assert 'href="/ra/login/password/"' in home  # the CA's page links to the RA's change page
    page = op.get("/ra/login/password/")
    html = page.content.decode()
    assert page.status_code == 200 and "Change your password" in html

    def change(current: str, new: str):
        return op.post("/ra/login/password/", {"old_password": current, "new_password1": new, "new_password2": new,
                                               "csrfmiddlewaretoken": csrf_token(html)})

    r = change("not-my-password", "Fresh-Pass-0815")
    assert r.status_code == 401 and op.session[PORTAL_SESSION]["key"] == old.session_key
    r = change(PASSWORD, "Fresh-Pass-0815")
    assert r.status_code == 302 and r["Location"] == "/ra/", r.content[-1500:]
    user.refresh_from_db()
    assert user.check_password("Fresh-Pass-0815")
    assert AuditEvent.objects.filter(event_type="USER_PASSWORD_CHANGE", actor="rita", outcome="SUCCESS").count() == 1
    new_key = op.session[PORTAL_SESSION]["key"]
    assert new_key != old.session_key and op.get("/ra/").status_code == 200
    assert _page(old.session_key, portal_carrier.pk)["status"] == 403  # the old session ended with the old password
    assert PASSWORD not in _queue_text() and "Fresh-Pass-0815" not in _queue_text()
    assert not tracebacks.records


@pytest.mark.django_db
def test_the_ras_client_cannot_set_the_key_itself(ra_portal, operator_account):
    """The RA session is the RA's server-side record: a key sent by the browser (a form field, a cookie) is
    never what the RA forwards."""
    op = Client(enforce_csrf_checks=True)
    op.cookies[PORTAL_SESSION] = "0" * 32
    r = op.get(f"/ra/?{PORTAL_SESSION}={'0' * 32}")
    assert r.status_code == 302 and r["Location"].startswith("/ra/login/")
    assert not PeerWorkItem.objects.exists()


@pytest.mark.django_db
def test_a_certificate_still_works_without_a_login(ra_node, peer_ca, make_cert):
    """A client certificate is forwarded as before (no redirect to the login page)."""
    ra_node.PKI_PEER_REQUEST_TIMEOUT = 0.3
    cert = make_cert(peer_ca, "ra-op")
    r = Client(**cert_headers(cert)).get("/ra/")
    assert r.status_code == 503  # queued for the CA (nobody carries it here), not sent to log in
    assert PeerWorkItem.objects.get().requester.startswith("client certificate")


def _pushed_crl(ca, serial: int):
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization

    from cryptotokens import services as tokens
    from peers.models import PushedCrl

    now = dt.datetime.now(dt.UTC)
    revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject).last_update(now)
           .next_update(now + dt.timedelta(days=1)).add_revoked_certificate(revoked)
           .add_extension(x509.CRLNumber(99), critical=False)
           .sign(tokens.get_private_key(ca.crypto_token, ca.key_alias), hashes.SHA256()))
    PushedCrl.objects.create(ca=ca, crl_number=99, this_update=now, next_update=now + dt.timedelta(days=1),
                             der=crl.public_bytes(serialization.Encoding.DER))


@pytest.mark.django_db
@pytest.mark.parametrize("revoked_by", ["pushed status", "pushed CRL", None])
@pytest.mark.parametrize("member", ["serial", "cn"])
def test_an_admin_certificate_of_the_ca_is_refused_at_the_ras_own_admin_pages(ra_node, peer_ca, make_cert, peer_role,
                                                                              revoked_by, member):
    """The RA's own admin pages and REST API (Peer Systems, incoming connections) authenticate client certificates
    only of CAs that hold a key on this node (pki.auth.clientcert); on an RA every CA is imported, so a certificate
    the CA issued (revoked there, as the CA pushed it here, or not) logs nobody in, whatever role member matches it
    here. Only the CA's connector is admitted by such a member (peers.incoming, which checks the pushed status)."""
    import datetime as dt

    from peers.models import PushedRevocation
    from peers.revocations import is_revoked
    from pki.choices import CAStatus
    from pki.models import CertificateAuthority

    CertificateAuthority.objects.filter(pk=peer_ca.pk).update(status=CAStatus.EXTERNAL)  # as an RA holds it
    peer_ca.refresh_from_db()
    cert = make_cert(peer_ca, "ra-admin")
    peer_role(peer_ca, cert, {"/": True}, by=member)
    serial = format(cert.serial_number, "x")
    if revoked_by == "pushed status":
        now = dt.datetime.now(dt.UTC)
        PushedRevocation.objects.create(ca=peer_ca, serial=serial, status="REVOKED", revocation_reason=1,
                                        revoked_at=now, changed_at=now)
    elif revoked_by == "pushed CRL":
        _pushed_crl(peer_ca, cert.serial_number)
    assert is_revoked(peer_ca, serial) is (revoked_by is not None)
    admin = Client(**cert_headers(cert))
    page = admin.get("/system/peers/")
    assert page.status_code == 302 and page["Location"].startswith("/login/")
    api = admin.get("/api/v1/peers/incoming/", HTTP_ACCEPT="application/json")
    assert api.status_code in (401, 403)


@pytest.mark.django_db
def test_a_local_login_at_the_ra_ends_the_portal_session_this_browser_held(ra_node):
    """A shared browser: an operator left an RA portal session (a key to their session at the CA) behind, and an RA
    administrator logs in to this RA's own pages. Carried portal pages would go on running as the first operator,
    though the person now at the browser logged in as someone else: the login forgets that session here."""
    User.objects.create_user("ra-admin", password=PASSWORD)
    browser = Client()
    session = browser.session
    session[PORTAL_SESSION] = {"key": "k" * 40, "username": "rita"}
    session.save()
    page = browser.get("/login/")
    r = browser.post("/login/", {"username": "ra-admin", "password": PASSWORD,
                                 "csrfmiddlewaretoken": csrf_token(page.content.decode())})
    assert r.status_code == 302, r.content[-500:]
    assert PORTAL_SESSION not in browser.session
    assert "_auth_user_id" in browser.session
