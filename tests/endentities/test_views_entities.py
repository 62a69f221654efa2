"""Admin UI end entity pages: the add form generated from the profile (required, read-only, drop-downs,
e-mail, password or generated), per-field refusals with nothing created, search, view with certificates,
edit, set status, revoke, delete, and RA Administrator vs Auditor vs no role."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser

import pytest

from endentities.choices import EndEntityStatus
from endentities.models import EndEntity
from pki.bootstrap import DEFAULT_ROLES
from pki.choices import CertificateStatus
from pki.models import AuditEvent, Certificate
from tests.endentities import entities_support
from tests.pki.test_views_auth import ui_client

# The service tests' fixtures (a profile, a profile factory, end entities added through the service).
ee_profile = entities_support.ee_profile
ee_profile_factory = entities_support.ee_profile_factory
entity_factory = entities_support.entity_factory


def field_block(html: str, name: str) -> str:
    """The ``<div class="field ...">`` block (input, help, errors) of the input named ``name``."""
    return next((b for b in html.split('<div class="field')[1:] if f'name="{name}"' in b), "")

RA_ADMIN_RULES = [r for r, allowed in DEFAULT_ROLES["RA Administrator"][1] if allowed]
AUDITOR_RULES = [r for r, allowed in DEFAULT_ROLES["Auditor"][1] if allowed]


@pytest.fixture
def shop_profile(ee_profile_factory, root_ca):
    """CN required with a length limit, a drop-down OU, a fixed C, e-mail bound to a domain."""
    return ee_profile_factory(
        "Shop", ca=root_ca, description="Shop staff",
        subject_dn_fields=[
            {"type": "CN", "required": True, "modifiable": True, "validation": "^.{1,10}$"},
            {"type": "OU", "required": True, "modifiable": False, "value": "Sales;Support"},
            {"type": "C", "required": True, "modifiable": False, "value": "SE"},
        ],
        subject_alt_name_fields=[{"type": "DNSNAME", "modifiable": True},
                                 {"type": "RFC822NAME", "use_entity_email": True}],
        email_use=True, email_domain="shop.example", email_modifiable=False, password_min_strength_bits=55,
        available_token_types=[1, 2], default_token_type=1,
    )


@pytest.fixture
def ra_admin(db, shop_profile):
    return ui_client("raadmin", RA_ADMIN_RULES)


@pytest.fixture
def auditor(db, shop_profile):
    return ui_client("auditor", AUDITOR_RULES)


@pytest.fixture
def nobody(db):
    return ui_client("eenobody2", None)


def add_data(profile, **changes) -> dict:
    data = {"username": "bob", "password": "foobar123", "password_confirm": "foobar123", "email": "bob",
            "dn_0": "Bob", "dn_1": "Support", "san_0": "bob.shop.example", "ca": str(profile.default_ca_id),
            "certificate_profile": str(profile.default_certificate_profile_id), "token_type": "1"}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_add_form_is_generated_from_the_profile(ra_admin, shop_profile):
    r = ra_admin.get("/endentities/new/")
    assert r.status_code == 302 and r["Location"] == f"/endentities/new/?profile={shop_profile.pk}"
    html = ra_admin.get(f"/endentities/new/?profile={shop_profile.pk}").content.decode()
    assert re.search(r'<input type="text" name="dn_0"[^>]*required', html)  # required CN
    assert "must match ^.{1,10}$" in html
    assert re.search(r'<select name="dn_1"[^>]*>\s*<option value="Sales"[^>]*>Sales</option>\s*'
                     r'<option value="Support"', html)  # the ';'-separated values are a drop-down
    assert re.search(r'<input type="text" name="dn_2" value="SE"[^>]*disabled', html)  # fixed C
    assert 'name="san_0"' in html and 'name="san_1"' not in html  # rfc822Name takes the entity e-mail
    assert "Addresses of @shop.example only" in html and 'name="password_confirm"' in html
    assert "At least 55 bits" in html and "Shop staff" in html


def test_add_end_entity_with_the_form(ra_admin, shop_profile):
    r = ra_admin.post(f"/endentities/new/?profile={shop_profile.pk}", add_data(shop_profile))
    assert r.status_code == 302, r.content.decode()[-3000:]
    ee = EndEntity.objects.get(username="bob")
    assert r["Location"] == f"/endentities/{ee.pk}/"
    assert ee.subject_dn.replace(", ", ",") in ("CN=Bob,OU=Support,C=SE", "C=SE,OU=Support,CN=Bob")
    assert ee.email == "bob@shop.example" and "bob@shop.example" in ee.subject_alt_name
    assert ee.status == EndEntityStatus.NEW and ee.password_hash and "foobar123" not in ee.password_hash
    assert AuditEvent.objects.filter(event_type="RA_ADDENDENTITY", object_id="bob", actor="raadmin").exists()
    page = ra_admin.get(r["Location"]).content.decode()
    assert "CN=Bob" in page and "No certificates issued yet." in page


@pytest.mark.parametrize("changes, field, message", [
    ({"dn_0": ""}, "dn_0", "This field is required."),
    ({"dn_0": "Bobby Tables The Third"}, "dn_0", "does not match the validation regex '^.{1,10}$'"),
    ({"dn_1": "Marketing"}, "dn_1", "Select a valid choice"),
    ({"password_confirm": "foobar124"}, "password_confirm", "The passwords differ."),
    ({"password": "foobar12", "password_confirm": "foobar12"}, "password", "55"),
    ({"email": "bob@elsewhere.example"}, "email", "@shop.example"),
    ({"username": ""}, "username", "This field is required."),
    ({"dn_0": "Bob;x"}, "dn_0", "forbidden character"),
    ({"token_type": "3"}, "token_type", "Select a valid choice"),
])
def test_refusals_are_shown_on_their_field_and_nothing_is_created(ra_admin, shop_profile, changes, field, message):
    r = ra_admin.post(f"/endentities/new/?profile={shop_profile.pk}", add_data(shop_profile, **changes))
    html = html_lib.unescape(r.content.decode())
    assert r.status_code == 400
    # the error list sits in the same .field block as the input it is about
    block = field_block(html, field)
    assert 'has-error"' in block[:20] and message in block, block
    assert not EndEntity.objects.exists()


def test_a_taken_username_is_refused(ra_admin, shop_profile):
    ra_admin.post(f"/endentities/new/?profile={shop_profile.pk}", add_data(shop_profile))
    r = ra_admin.post(f"/endentities/new/?profile={shop_profile.pk}", add_data(shop_profile, dn_0="Other"))
    assert r.status_code == 409 and "already exists" in r.content.decode()
    assert EndEntity.objects.get(username="bob").subject_dn.find("Other") == -1


def test_generated_password_is_shown_once(ra_admin, ee_profile_factory, root_ca):
    p = ee_profile_factory("Generated", ca=root_ca, password_auto_generate=True)
    html = ra_admin.get(f"/endentities/new/?profile={p.pk}").content.decode()
    assert 'name="password"' not in html
    r = ra_admin.post(f"/endentities/new/?profile={p.pk}", {
        "username": "gen", "dn_0": "Gen", "ca": str(root_ca.pk), "certificate_profile":
        str(p.default_certificate_profile_id), "token_type": "1"})
    shown = re.search(r'<code class="generated-password">(\S{8,})</code>', r.content.decode())
    assert r.status_code == 200 and shown
    assert "messages" not in r.cookies  # the password never travels in a cookie
    from endentities.services.passwords import check_password

    gen = EndEntity.objects.get(username="gen")
    assert check_password(html_lib.unescape(shown.group(1)), gen.password_hash)
    assert shown.group(1) not in ra_admin.get(f"/endentities/{gen.pk}/").content.decode()


@pytest.fixture
def population(entity_factory, shop_profile, ee_profile, actor, csr_factory):
    """alice (TestEEP, NEW), carol (TestEEP, GENERATED with a certificate), dave (Shop)."""
    from endentities.services import add_end_entity, enroll_with_ra, set_status
    from endentities.validation import EndEntityInput

    entity_factory("alice")
    entity_factory("carol", subject_dn="CN=carol,O=Carol Corp,C=SE")
    csr, _ = csr_factory("CN=carol,O=Carol Corp,C=SE")
    enroll_with_ra(actor, "carol", csr=csr)
    add_end_entity(actor, EndEntityInput(username="dave", password="foobar123", subject_dn="CN=dave,OU=Sales,C=SE",
                                         email="dave"), profile=shop_profile)
    set_status(actor, "alice", EndEntityStatus.NEW)


def _usernames(html: str) -> list[str]:
    return re.findall(r'<a href="/endentities/\d+/">([^<]+)</a>', html)


@pytest.mark.parametrize("query, expected", [
    ("", ["alice", "carol", "dave"]),
    ("text=car", ["carol"]),
    ("text=Carol+Corp", ["carol"]),
    ("text=dave@shop", ["dave"]),
    ("status=40", ["carol"]),
    ("status=10", ["alice", "dave"]),
    ("profile={shop}", ["dave"]),
    ("profile={shop}&status=40", []),
])
def test_search(ra_admin, population, shop_profile, query, expected):
    r = ra_admin.get("/endentities/?" + query.format(shop=shop_profile.pk))
    assert r.status_code == 200 and _usernames(r.content.decode()) == expected


def test_view_shows_certificates_and_actions(ra_admin, population):
    carol = EndEntity.objects.get(username="carol")
    html = ra_admin.get(f"/endentities/{carol.pk}/").content.decode()
    cert = Certificate.objects.get(username="carol")
    assert cert.serial.upper() in html and "Generated" in html
    for action in ("edit/", "status/", "revoke/", "delete/"):
        assert f"/endentities/{carol.pk}/{action}" in html


def test_edit_set_status_revoke_delete(ra_admin, population, shop_profile):
    dave = EndEntity.objects.get(username="dave")
    form = ra_admin.get(f"/endentities/{dave.pk}/edit/").content.decode()
    assert re.search(r'name="dn_0" value="dave"', form) and '<option value="Sales" selected>' in form
    r = ra_admin.post(f"/endentities/{dave.pk}/edit/", add_data(shop_profile, username=None, password="",
                                                                   password_confirm="", dn_0="David"))
    assert r.status_code == 302, r.content.decode()[-2000:]
    dave.refresh_from_db()
    assert "CN=David" in dave.subject_dn and "OU=Support" in dave.subject_dn

    ra_admin.post(f"/endentities/{dave.pk}/status/", {"status": "40"})
    dave.refresh_from_db()
    assert dave.status == EndEntityStatus.GENERATED

    carol = EndEntity.objects.get(username="carol")
    ra_admin.post(f"/endentities/{carol.pk}/revoke/", {"reason": "1"})
    carol.refresh_from_db()
    assert carol.status == EndEntityStatus.REVOKED
    assert Certificate.objects.get(username="carol").status == CertificateStatus.REVOKED

    r = ra_admin.post(f"/endentities/{dave.pk}/delete/")
    assert r.status_code == 302 and not EndEntity.objects.filter(username="dave").exists()
    assert AuditEvent.objects.filter(event_type="RA_DELETEENDENTITY", object_id="dave").exists()


def test_auditor_views_but_changes_nothing_and_no_role_sees_nothing(auditor, nobody, population):
    alice = EndEntity.objects.get(username="alice")
    html = auditor.get("/endentities/").content.decode()
    assert _usernames(html) == ["alice", "carol", "dave"] and "Add end entity" not in html
    page = auditor.get(f"/endentities/{alice.pk}/").content.decode()
    assert "CN=alice" in page
    for action in ("edit/", "status/", "revoke/", "delete/"):
        assert f"/endentities/{alice.pk}/{action}" not in page
    for method, url in (("get", "/endentities/new/"), ("get", f"/endentities/{alice.pk}/edit/"),
                        ("post", f"/endentities/{alice.pk}/delete/"), ("post", f"/endentities/{alice.pk}/revoke/"),
                        ("post", f"/endentities/{alice.pk}/status/")):
        r = getattr(auditor, method)(url, {"status": "40", "reason": "1"} if method == "post" else None)
        assert r.status_code == 403 and "/ra_functionality/" in r.content.decode(), url
    for url in ("/endentities/", "/endentities/new/", f"/endentities/{alice.pk}/"):
        r = nobody.get(url)
        assert r.status_code == 403 and "/ra_functionality/" in r.content.decode()
    assert nobody.post(f"/endentities/{alice.pk}/delete/").status_code == 403
    alice.refresh_from_db()
    assert alice.status == EndEntityStatus.NEW


def test_profile_rules_limit_what_an_operator_sees_and_changes(db, population, shop_profile, ee_profile):
    """Only Shop's rules: TestEEP's end entities are not found, not shown and not changed."""
    op = ui_client("shopop", ["/administrator", "/ra_functionality", "/ca",
                              f"/endentityprofilesrules/{shop_profile.pk}"])
    assert _usernames(op.get("/endentities/").content.decode()) == ["dave"]
    alice = EndEntity.objects.get(username="alice")
    assert op.get(f"/endentities/{alice.pk}/").status_code == 404
    op.post(f"/endentities/{alice.pk}/delete/")
    assert EndEntity.objects.filter(username="alice").exists()
    chooser = op.get("/endentities/new/")
    assert chooser["Location"].endswith(f"?profile={shop_profile.pk}")  # the only profile it may use
    r = op.post(f"/endentities/new/?profile={ee_profile.pk}", {"username": "x", "dn_0": "x"})
    assert r.status_code == 400 and "Select a valid choice" in r.content.decode()
    assert not EndEntity.objects.filter(username="x").exists()


class _TagBalance(HTMLParser):
    """Records block tags closed out of order (an unclosed <fieldset> nests every later group)."""

    BLOCKS = ("fieldset", "div", "form", "table", "ul", "details", "nav", "main")

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            if self.stack and self.stack[-1] == tag:
                self.stack.pop()
            else:
                self.problems.append(f"</{tag}> at line {self.getpos()[0]} while {self.stack[-3:]} are open")


def test_every_page_is_well_formed(ra_admin, population, shop_profile):
    from endentities.services import ensure_empty_profile

    ensure_empty_profile()
    admin = ui_client("markup", ["/"])
    dave = EndEntity.objects.get(username="dave")
    cert = Certificate.objects.get(username="carol")
    urls = ["/endentityprofiles/", "/endentityprofiles/new/", f"/endentityprofiles/{shop_profile.pk}/",
            f"/endentityprofiles/{shop_profile.pk}/edit/", "/endentities/", "/endentities/new/",
            f"/endentities/new/?profile={shop_profile.pk}", f"/endentities/{dave.pk}/",
            f"/endentities/{dave.pk}/edit/", "/ra/", "/ra/enroll/", f"/ra/enroll/?profile={shop_profile.pk}",
            "/ra/enroll/username/", "/ra/endentities/", f"/ra/endentities/{dave.pk}/", "/ra/certificates/",
            f"/ra/certificates/{cert.pk}/"]
    for url in urls:
        r = admin.get(url)
        assert r.status_code == 200, url
        parser = _TagBalance()
        parser.feed(r.content.decode())
        assert not parser.problems and not parser.stack, (url, parser.problems, parser.stack)


def _queries(client, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_pages_do_not_query_per_row(ra_admin, shop_profile, actor, entity_factory):
    """The end entity lists and the profile list cost the same with 2 or 12 rows (no N+1)."""
    admin = ui_client("counter", ["/"])
    entity_factory("row0")
    entity_factory("row1")
    urls = [(ra_admin, "/endentities/"), (ra_admin, "/ra/endentities/"), (admin, "/endentityprofiles/")]
    before = [_queries(c, u) for c, u in urls]
    for i in range(2, 12):
        entity_factory(f"row{i}")
    from endentities.models import EndEntityProfile

    for i in range(5):  # the profile list grows too
        EndEntityProfile.objects.create(name=f"extra{i}",
                                        default_certificate_profile=shop_profile.default_certificate_profile)
    after = [_queries(c, u) for c, u in urls]
    assert after == before


def test_editing_an_end_entity_of_the_empty_profile_keeps_its_whole_dn(ra_admin, actor, root_ca):
    from endentities.services import add_end_entity, ensure_empty_profile
    from endentities.validation import EndEntityInput

    empty = ensure_empty_profile()
    ee = add_end_entity(actor, EndEntityInput(username="free", password="foo123", ca=root_ca,
                                              subject_dn="CN=free,OU=A,O=Free Org,C=SE",
                                              subject_alt_name="dNSName=free.example"), profile=empty)
    form = html_lib.unescape(ra_admin.get(f"/endentities/{ee.pk}/edit/").content.decode())
    assert 'name="dn_0" value="free"' in form
    extra = re.search(r'name="extra_dn" value="([^"]*)"', form).group(1)
    assert set(extra.split(",")) == {"OU=A", "O=Free Org", "C=SE"}
    assert re.search(r'name="extra_san" value="DNSNAME=free.example"', form, re.I)
