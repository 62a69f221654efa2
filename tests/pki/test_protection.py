"""The protection sweep: nobody reaches an admin page, an RA page or a non-public API endpoint without an
authenticated identity and an access rule that allows the action.

The routes come from Django's URL resolver (every pattern, so pages other apps add are covered without
editing this file). Only the routes in PUBLIC may answer anonymous callers; each says why. For the others:
- anonymous: a UI page redirects to the login page, an API endpoint answers 401;
- a logged-in user with no role: the "not authorized" page (403) naming the rule, or a 403 JSON body naming it;
- never a 500, never the page itself. A 405 (wrong method) reveals nothing and is accepted, and so is a 404
  where url_for() has no real object for a parameter (add one to url_for() for a stricter check).

Also here: what the default roles see in the admin UI (menus and buttons follow the rules) and a table of
privileged actions with the audit event each writes.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

# Routes anyone may call (regular expressions on the route as written in the URLconf).
PUBLIC: list[tuple[str, str]] = [
    (r"^login/$", "the login page"),
    (r"^ra/login/(password/)?$", "an RA node's portal login with the password held by the CA, and the change of a "
     "one-time password as part of it (on a CA node: to the login page and the password change page)"),
    (r"^ra/cas/$", "the RA portal's list of CA certificates and CRLs, which are public at /ca/ and /crl/"),
    (r"^logout/$", "logging out (POST) ends whatever session there is"),
    (r"^(oidc|auth/oidc|login/oidc|oauth)/", "OpenID Connect login start and callback (state/nonce checked there)"),
    (r"^crl/", "CRL distribution points (RFC 5280: relying parties fetch them without credentials)"),
    (r"^ca/<str:ca_name>\.crt$", "CA certificates at the AIA caIssuers URL"),
    (r"^ejbca/publicweb/", "EJBCA's public web: certdist downloads and SCEP (/ejbca/publicweb/apply/scep/...)"),
    (r"^scep/", "SCEP (the request itself is authenticated by the protocol: challenge password or RA signature)"),
    (r"^ocsp(/|$)", "OCSP (RFC 6960): relying parties ask without credentials; answers are signed, statuses only"),
    (r"^static/", "style sheets, scripts, images"),
    (r"^favicon\.ico$", "the site icon (a redirect to the logo in static/)"),
    (r"^api/(schema|docs)/$", "the OpenAPI description and its viewer: no data, only the API's shape"),
    (r"^\^ejbca/ejbca-rest-api/(v1/ssh|etsi)\(", "EJBCA resources this project does not have (SSH CA, ETSI ITS CA): "
     "the same honest 404 for everyone"),
]

# Routes any authenticated caller may call without a rule (anonymous callers are still refused).
AUTHENTICATED_ONLY: list[tuple[str, str]] = [
    (r"^ejbca/ejbca-rest-api/v[12]/[a-z_]+/status$",
     "EJBCA's per-resource status ({status, version, revision}): a liveness check for integrations, no data"),
]
# Lists that answer what the caller's rules let it see: an authenticated caller without a role gets an empty one.
FILTERED_FOR_CALLER: list[tuple[str, str]] = [
    (r"^api/v1/approvals/$", "approval requests of the actions and CAs the caller may decide or view"),
    (r"^ejbca/ejbca-rest-api/v2/endentity/profiles/authorized$",
     "EJBCA's 'profiles authorized for me': the end entity profiles the caller may use"),
]
# The RA/VA end of the peer protocol: not there on a CA node (404); on an RA node the peer's client certificate and
# a role with /peer/incoming decide (tests/peers).
NODE_ONLY: list[tuple[str, str]] = [
    (r"^peers/v1/", "the RA/VA end of the peer protocol"),
]
# Pages every logged-in user has, whatever their roles: their own account and the start page that sends them on.
OWN_ACCOUNT: list[tuple[str, str]] = [
    (r"^start/$", "the start page: a redirect to the first page the caller's roles allow (else to account/)"),
    (r"^account/(password/)?$", "the caller's own account page and password change (nobody else's)"),
]

UNSAFE = {"post", "put", "patch", "delete"}
CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def all_routes() -> list[tuple[str, URLPattern]]:
    return list(_walk(get_resolver().url_patterns))


def is_public(route: str) -> bool:
    return any(re.search(rx, route) for rx, _ in PUBLIC)


def is_api(pattern: URLPattern) -> bool:
    cls = getattr(pattern.callback, "cls", None)
    return isinstance(cls, type) and issubclass(cls, APIView)


def methods_of(pattern: URLPattern) -> list[str]:
    cls = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if cls is not None:
        return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(cls, m)] or ["get"]
    return ["get", "post"]


PROTECTED = [(route, p) for route, p in all_routes() if not is_public(route)]


def test_the_sweep_sees_the_whole_urlconf():
    routes = [r for r, _ in all_routes()]
    for expected in ["cas/", "roles/<int:pk>/rules/", "cryptotokens/<int:pk>/activate/",
                     "ejbca/ejbca-rest-api/v1/ca", "crl/<str:ca_name>.crl"]:
        assert expected in routes
    assert len(PROTECTED) > 50
    for route, pattern in PROTECTED:
        assert "(?P<" not in route, f"regex route {route}: give it a sample value in url_for()"


@pytest.fixture
def objects(db, root_ca):
    from pki.models import Certificate, CertificateProfile, Role, RoleMember

    role = Role.objects.create(name="Somebody's role")
    member = RoleMember.objects.create(role=role, match_type="LOCAL_USER", match_value="somebody")
    return {"ca": root_ca, "cert": Certificate.objects.get(ca=root_ca), "token": root_ca.crypto_token,
            "profile": CertificateProfile.objects.get(name="SERVER"), "role": role, "member": member}


def url_for(route: str, o: dict) -> str:
    """A concrete URL for ``route``, filled with real objects where the parameter names one."""
    by_prefix = {"cas": o["ca"].pk, "crls": o["ca"].pk, "certificates": o["cert"].pk, "profiles": o["profile"].pk,
                 "cryptotokens": o["token"].pk, "roles": o["role"].pk}
    named = {"member_id": o["member"].pk, "what": "pem", "task_id": "some-task", "ca_name": o["ca"].name,
             "subject_dn": quote(o["ca"].subject_dn, safe=""), "issuer_dn": quote(o["ca"].subject_dn, safe=""),
             "ca": quote(o["ca"].subject_dn, safe=""), "certificate_serial_number": o["cert"].serial,
             "serial": o["cert"].serial, "fingerprint": o["cert"].fingerprint_sha256,
             "cryptotoken_name": o["token"].name, "key_pair_alias": "signKey"}

    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name == "pk":
            return str(by_prefix.get(route.split("/", 1)[0], 1))
        return str(named.get(name, "1"))

    return "/" + CONVERTER.sub(fill, route)


def names_unknown_object(route: str) -> bool:
    """Whether url_for() had no real object for a parameter (its "1" may name nothing: 404 is fair then)."""
    known = {"cas", "crls", "certificates", "profiles", "cryptotokens", "roles"}
    for m in CONVERTER.finditer(route):
        name = m.group("name")
        if name == "pk" and route.split("/", 1)[0] not in known:
            return True
        if name not in {"pk", "member_id", "what", "task_id", "ca_name", "subject_dn", "issuer_dn", "ca",
                        "certificate_serial_number", "serial", "fingerprint", "cryptotoken_name", "key_pair_alias"}:
            return True
    return False


def _multipart(pattern: URLPattern) -> bool:
    from rest_framework.parsers import MultiPartParser

    cls = getattr(pattern.callback, "cls", None)
    return any(issubclass(p, MultiPartParser) for p in getattr(cls, "parser_classes", ()))


def _body(method: str, api: bool, pattern: URLPattern | None = None) -> dict:
    if not (api and method in UNSAFE):
        return {}
    if pattern is not None and _multipart(pattern):  # file uploads (CRL import, configdump zip): a form, no file
        return {"data": {}}
    return {"content_type": "application/json", "data": "{}"}


def _matches(route: str, table: list[tuple[str, str]]) -> bool:
    return any(re.search(rx, route) for rx, _ in table)


@pytest.mark.parametrize(("route", "pattern"), PROTECTED, ids=[r for r, _ in PROTECTED])
def test_anonymous_is_refused(objects, route, pattern):
    url = url_for(route, objects)
    api = is_api(pattern)
    for method in methods_of(pattern):
        r = getattr(Client(), method)(url, **_body(method, api, pattern))
        assert r.status_code != 500 and r.status_code < 500, (method, url, r.status_code)
        if r.status_code == 405 or (r.status_code == 404 and _matches(route, NODE_ONLY)):
            continue
        if api:
            assert r.status_code == 401, (method, url, r.status_code, r.content[:300])
        else:
            assert r.status_code == 302 and r["Location"].startswith("/login/?next="), (method, url, r.status_code)


@pytest.fixture
def nobody(objects):
    user = get_user_model().objects.create_user("norole")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(("route", "pattern"), PROTECTED, ids=[r for r, _ in PROTECTED])
def test_a_user_without_a_role_is_not_authorized(objects, nobody, route, pattern):
    url = url_for(route, objects)
    api = is_api(pattern)
    for method in methods_of(pattern):
        r = getattr(nobody, method)(url, **_body(method, api, pattern))
        if r.status_code == 405 or (r.status_code == 404 and _matches(route, NODE_ONLY)):
            continue
        if _matches(route, FILTERED_FOR_CALLER) and method == "get":
            assert r.status_code == 200 and not any(r.json().values() if isinstance(r.json(), dict) else r.json()), (
                method, url, r.content[:300])
            continue
        if any(re.search(rx, route) for rx, _ in AUTHENTICATED_ONLY):
            assert r.status_code == 200 and set(r.json()) == {"status", "version", "revision"}
            continue
        if any(re.search(rx, route) for rx, _ in OWN_ACCOUNT):
            assert r.status_code in (200, 400) or (r.status_code == 302 and r["Location"] == "/account/"), (
                method, url, r.status_code)
            continue
        if r.status_code == 404 and names_unknown_object(route):
            continue
        assert r.status_code == 403, (method, url, r.status_code, r.content[:300])
        if api:
            assert re.search(r"resource /", r.json()["error_message"]), (method, url, r.json())
        else:
            assert re.search(r"<code>/[^<]*</code>", r.content.decode()), (method, url)
    # Nothing happened on the way.
    from pki.models import CRL, AuditEvent, Certificate, Role

    # Nothing but the CAs' first CRLs (#1, made with each CA).
    assert Certificate.objects.filter(status="ACTIVE").count() == 1
    assert not CRL.objects.filter(crl_number__gt=1).exists()
    assert Role.objects.filter(name="Somebody's role").exists()
    # Refusals may be recorded (as FAILURE); nothing the caller did succeeded.
    assert not AuditEvent.objects.exclude(event_type__in=["LOGIN"]).filter(actor="norole", outcome="SUCCESS").exists()


GETTABLE = [(route, p) for route, p in all_routes() if "get" in methods_of(p)]


@pytest.mark.parametrize(("route", "pattern"), GETTABLE, ids=[r for r, _ in GETTABLE])
def test_a_super_administrator_never_gets_a_500(objects, route, pattern):
    """Every page and read endpoint, with the objects it names, answers a super administrator without a 500."""
    from pki.models import AccessRule, Role, RoleMember

    role = Role.objects.create(name="Supers")
    AccessRule.objects.create(role=role, resource="/")
    RoleMember.objects.create(role=role, match_type="LOCAL_USER", match_value="super1")
    client = Client()
    client.force_login(get_user_model().objects.create_user("super1"))
    r = client.get(url_for(route, objects))
    assert r.status_code < 500, (route, r.status_code)


@pytest.mark.parametrize(("route", "why"), PUBLIC + AUTHENTICATED_ONLY + OWN_ACCOUNT)
def test_each_public_entry_says_why(route, why):
    assert len(why) > 10


# --- What the default roles see ------------------------------------------------------------------------

def _default_role_client(role_name: str, username: str) -> Client:
    from pki.bootstrap import DEFAULT_ROLES
    from pki.models import Role, RoleMember
    from pki.services.roles import ensure_default_roles

    ensure_default_roles(DEFAULT_ROLES)
    RoleMember.objects.create(role=Role.objects.get(name=role_name), match_type="LOCAL_USER", match_value=username)
    client = Client()
    client.force_login(get_user_model().objects.create_user(username))
    return client


def _nav(client: Client) -> str:
    return client.get("/").content.decode().split('<nav class="side"', 1)[1].split("</nav>", 1)[0]


def test_auditor_sees_the_audit_log_and_no_edit_buttons(objects):
    auditor = _default_role_client("Auditor", "auditor1")
    nav = _nav(auditor)
    for label in ["Audit log", "Certificate authorities", "Certificates", "Crypto tokens", "Roles and access rules"]:
        assert f">{label}</a>" in nav, label
    assert ">Issue for CSR</a>" not in nav
    ca, cert, token, role = objects["ca"], objects["cert"], objects["token"], objects["role"]
    pages = {
        "/audit/": [],
        "/cas/": ["Create CA", "Import CA certificate"],
        f"/cas/{ca.pk}/": [f'href="/cas/{ca.pk}/edit/"', f'href="/cas/{ca.pk}/renew/"'],
        "/profiles/": ["Add profile"],
        f"/profiles/{objects['profile'].pk}/": ["Clone", "Delete"],
        f"/certificates/{cert.pk}/": ["Revoke", "Take off hold"],
        "/crls/": ["Create CRL"],
        "/cryptotokens/": ["Create crypto token"],
        f"/cryptotokens/{token.pk}/": ["Deactivate", "Delete token", ">Generate<", ">Remove<", ">Export<", ">Edit<"],
        "/roles/": ["Add role"],
        f"/roles/{role.pk}/": ["Add member", "Delete role"],
        f"/roles/{role.pk}/rules/": ["Save access rules"],
    }
    for url, hidden in pages.items():
        r = auditor.get(url)
        assert r.status_code == 200, url
        for text in hidden:
            assert text not in r.content.decode(), (url, text)
    for url in [f"/cas/{ca.pk}/edit/", f"/crls/{ca.pk}/create/", f"/certificates/{cert.pk}/revoke/",
                f"/cryptotokens/{token.pk}/deactivate/", f"/cryptotokens/{token.pk}/export/", "/roles/new/"]:
        assert auditor.post(url, {"alias": "signKey", "password": "export-pass-1"}).status_code in (302, 403), url
    token.refresh_from_db()
    assert token.is_active and not objects["ca"].crls.filter(crl_number__gt=1).exists()  # its first CRL only
    assert objects["cert"].__class__.objects.get(pk=cert.pk).status == "ACTIVE"


def test_ra_administrator_revokes_but_sees_no_system_pages(objects):
    ra = _default_role_client("RA Administrator", "ra1")
    nav = _nav(ra)
    for label in ["Certificates", "Issue for CSR", "Certificate authorities"]:
        assert f">{label}</a>" in nav, label
    for label in ["Audit log", "Crypto tokens", "Roles and access rules"]:
        assert f">{label}</a>" not in nav, label
    cert = objects["cert"]
    assert "Revoke" in ra.get(f"/certificates/{cert.pk}/").content.decode()
    assert "Create CA" not in ra.get("/cas/").content.decode()
    for url in ["/audit/", "/cryptotokens/", "/roles/", f"/cryptotokens/{objects['token'].pk}/"]:
        assert ra.get(url).status_code == 403, url


# --- Every privileged action is audited ----------------------------------------------------------------

def _actions():
    """(name, rules the action needs given the objects, the action, the audit event it writes)."""
    from cryptotokens import services as tokens
    from pki.crl import create_crl
    from pki.issuance import IssuanceRequest, issue
    from pki.models import CertificateProfile
    from pki.revocation import revoke
    from pki.services import cas, profiles, roles
    from pki.services.roles import MemberSpec

    edit_roles = "/system_functionality/edit_administrator_privileges"
    return [
        ("create token", lambda o: ["/cryptotoken/modify"], lambda a, o: tokens.create_token(
            a, name="New", token_type="SoftCryptoToken", auth_code="foo123"), "CRYPTOTOKEN_CREATE"),
        ("edit token", lambda o: [f"/cryptotoken/modify/{o['token'].pk}"],
         lambda a, o: tokens.edit_token(a, o["token"], name="Renamed"), "CRYPTOTOKEN_EDIT"),
        ("deactivate", lambda o: [f"/cryptotoken/deactivate/{o['token'].pk}"],
         lambda a, o: tokens.deactivate(a, o["token"]), "CRYPTOTOKEN_DEACTIVATION"),
        ("activate", lambda o: [f"/cryptotoken/activate/{o['token'].pk}"],
         lambda a, o: tokens.activate(a, o["token"], "foo123"), "CRYPTOTOKEN_ACTIVATION"),
        ("generate keys", lambda o: [f"/cryptotoken/generate_keys/{o['token'].pk}"],
         lambda a, o: tokens.generate_key_pair(a, o["token"], "k2", "P-256"), "CRYPTOTOKEN_GEN_KEYPAIR"),
        ("test keys", lambda o: [f"/cryptotoken/test_keys/{o['token'].pk}"],
         lambda a, o: tokens.test_key_pair(a, o["token"], "signKey"), "CRYPTOTOKEN_TEST_KEYPAIR"),
        ("edit CA", lambda o: ["/ca_functionality/edit_ca", f"/ca/{o['ca'].pk}"],
         lambda a, o: cas.edit_ca(a, o["ca"], description="edited"), "CA_EDITING"),
        ("create CRL", lambda o: ["/ca_functionality/create_crl", f"/ca/{o['ca'].pk}"],
         lambda a, o: create_crl(a, o["ca"]), "CRL_CREATION"),
        ("issue", lambda o: ["/ca_functionality/create_certificate", f"/ca/{o['ca'].pk}"],
         lambda a, o: issue(IssuanceRequest(ca=o["ca"], actor=a, profile=CertificateProfile.objects.get(name="ENDUSER"),
                                            csr=o["csr"])), "CERT_CREATION"),
        ("revoke", lambda o: ["/ra_functionality/revoke_end_entity", f"/ca/{o['ca'].pk}"],
         lambda a, o: revoke(a, o["leaf"], "superseded"), "CERT_REVOKED"),
        ("save profile", lambda o: ["/ca_functionality/edit_certificate_profiles"],
         lambda a, o: profiles.save_profile(a, "Mine", {"validity": "1y"}), "CERTPROFILE_CREATION"),
        ("create role", lambda o: [edit_roles], lambda a, o: roles.create_role(a, "New role"), "ROLE_CREATION"),
        ("add member", lambda o: [edit_roles],
         lambda a, o: roles.add_member(a, o["role"], MemberSpec("LOCAL_USER", "someone")), "ROLE_ACCESS_USER_ADDITION"),
        ("set rules", lambda o: [edit_roles, "/audit/view"],  # granting a rule needs holding it
         lambda a, o: roles.set_rules(a, o["role"], {"/audit/view": True}), "ROLE_ACCESS_RULE_CHANGE"),
        ("delete role", lambda o: [edit_roles], lambda a, o: roles.delete_role(a, o["role"]), "ROLE_DELETION"),
    ]


@pytest.mark.parametrize("index", range(len(_actions())), ids=[a[0] for a in _actions()])
def test_privileged_action_needs_its_rule_and_writes_its_audit_event(objects, actor, csr_factory, index):
    from pki.auth.access import Actor
    from pki.errors import AuthorizationDenied
    from pki.issuance import IssuanceRequest, issue
    from pki.models import AuditEvent, CertificateProfile

    name, rules, action, event_type = _actions()[index]
    csr, _ = csr_factory("CN=audited leaf,O=Test")
    leaf_csr, _ = csr_factory("CN=leaf to revoke,O=Test")
    o = {**objects, "csr": csr, "leaf": issue(IssuanceRequest(
        ca=objects["ca"], actor=actor, profile=CertificateProfile.objects.get(name="ENDUSER"), csr=leaf_csr)).row}
    needed = rules(o)
    # Each rule alone is not enough (the rest missing): refused, nothing audited as a success.
    for missing in needed:
        partial = Actor("partial", role_rules={"r": [(r, True) for r in needed if r != missing]})
        with pytest.raises(AuthorizationDenied):
            action(partial, o)
    assert not AuditEvent.objects.filter(actor="partial", outcome="SUCCESS").exists()
    allowed = Actor("operator", role_rules={"r": [(r, True) for r in needed]})
    action(allowed, o)
    events = AuditEvent.objects.filter(actor="operator")
    assert list(events.values_list("event_type", "outcome")) == [(event_type, "SUCCESS")], name
