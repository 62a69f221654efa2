"""Every form shows all its errors at once (a summary linking to each field, the message at the field), marks
required fields and keeps what was typed except passwords; and the small form fixes of issue 16: validity in
words, a CA DN's forbidden characters, the crypto token form's defaults and labels, confirmations."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from pki.x509.validity import ValidityError, parse_validity
from tests.pki.test_views_auth import ui_client


@pytest.fixture
def admin(db, builtin_profiles):
    return ui_client("formsadmin", ["/"])


def summary_links(html: str) -> list[str]:
    """The anchors the error summary links to, in order."""
    box = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    assert box, "no error summary"
    return re.findall(r'<a href="#([^"]+)">', box.group(0))


def test_summary_lists_every_field_error_and_keeps_values_but_not_passwords(admin):
    r = admin.post("/cryptotokens/new/", {"name": "", "token_type": "SoftCryptoToken", "auth_code": "secret-1",
                                          "auth_code_repeat": "", "allow_export": "on"})
    html = r.content.decode()
    assert r.status_code in (200, 400)
    links = summary_links(html)
    assert list(dict.fromkeys(links)) == ["id_name", "id_auth_code_repeat"]
    assert f"There are {len(links)} problems" in html
    # the message also stands at each field, tied to its input for screen readers
    assert 'id="id_name_error"' in html and 'aria-describedby="id_name_error"' in html
    # values kept: the type and the check box; the typed code is not sent back
    assert 'value="SoftCryptoToken" selected' in html
    assert re.search(r'<input type="checkbox" name="allow_export"[^>]* checked>', html)
    assert "secret-1" not in html


def test_summary_lists_a_refusal_without_field_and_field_errors_together(admin, soft_token):
    r = admin.post("/cas/new/", {"name": "", "subject_dn": "CN=Kept DN", "crypto_token": soft_token.pk,
                                 "key_source": "generate", "key_alias": "", "key_spec": "P-256", "validity": "",
                                 "crl_period_hours": "x", "crl_overlap_hours": "0.5",
                                 "delta_crl_period_hours": "0"})
    html = r.content.decode()
    assert r.status_code == 400
    assert summary_links(html) == ["id_name", "id_validity", "id_key_alias", "id_crl_period_hours"]
    assert 'value="CN=Kept DN"' in html


def test_required_fields_are_marked(admin):
    html = admin.get("/cryptotokens/new/").content.decode()
    label = re.search(r'<label for="id_name">(.*?)</label>', html, re.S).group(1)
    assert "required-mark" in label and "(required)" in label
    optional = re.search(r'<label class="check"><input type="checkbox" name="allow_export".*?</label>', html, re.S)
    assert "required-mark" not in optional.group(0)
    assert "error-summary" not in html  # a fresh form has no summary


def test_crypto_token_type_defaults_to_soft_and_activation_box_has_a_label(admin, soft_token_factory, actor):
    html = admin.get("/cryptotokens/new/").content.decode()
    assert re.search(r'<option value="SoftCryptoToken" selected>', html)
    token = soft_token_factory("Offline", auto_activate=False)
    from cryptotokens import services as token_services

    token_services.deactivate(actor, token)
    html = admin.get(f"/cryptotokens/{token.pk}/").content.decode()
    box = re.search(r'<input type="password" name="auth_code"[^>]*id="([^"]+)"', html)
    assert box and f'<label for="{box.group(1)}">Authentication code</label>' in html


def test_ca_key_alias_suggestions_name_their_token(admin, soft_token_factory, actor):
    from cryptotokens import services as token_services

    token = soft_token_factory("Keys")
    token_services.generate_key_pair(actor, token, "caKey1", "P-256")
    html = admin.get("/cas/new/").content.decode()
    assert f'<option value="caKey1" data-token="{token.pk}">' in html
    assert 'data-key-alias="1"' in html


@pytest.mark.parametrize(("text", "days"), [
    ("397d", 397), ("397 days", 397), ("397 Days", 397), ("1 day", 1), ("2 weeks", None), ("1 year", 365),
    ("1y 6mo", 546), ("1 year 6 months", 546), ("12 hours", 0.5), ("3 dayz", None),
])
def test_validity_accepts_units_written_out(text, days):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    if days is None:
        with pytest.raises(ValidityError):
            parse_validity(text, start)
    else:
        assert parse_validity(text, start) - start == timedelta(days=days)


@pytest.mark.parametrize("dn", ["CN=Bad;CA,O=Test", "CN=Bad CA,O=Te$t", "CN=Bad CA!"])
def test_ca_dn_obeys_the_forbidden_characters(admin, soft_token, dn):
    from pki.models import CertificateAuthority

    r = admin.post("/cas/new/", {"name": "BadCA", "subject_dn": dn, "crypto_token": soft_token.pk,
                                 "key_source": "generate", "key_alias": "badKey", "key_spec": "P-256",
                                 "validity": "5y", "crl_period_hours": "24", "crl_overlap_hours": "0.5",
                                 "delta_crl_period_hours": "0"})
    assert r.status_code == 400 and "forbidden character" in r.content.decode()
    assert summary_links(r.content.decode()) == ["id_subject_dn"]
    assert not CertificateAuthority.objects.filter(name="BadCA").exists()


def test_every_delete_button_asks_first():
    """Template check: each Delete/Remove submit button carries data-confirm (static/pki/confirm.js asks)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    missing = []
    for path in root.glob("*/templates/**/*.html"):
        for m in re.finditer(r"<button[^>]*>(Delete|Remove)</button>", path.read_text()):
            if "data-confirm" not in m.group(0) and 'name="op"' not in m.group(0):
                missing.append(f"{path.relative_to(root)}: {m.group(0)}")
    for path in (root / "templates").glob("**/*.html"):
        for m in re.finditer(r"<button[^>]*>(Delete|Remove)</button>", path.read_text()):
            if "data-confirm" not in m.group(0):
                missing.append(f"{path.relative_to(root)}: {m.group(0)}")
    assert not missing


def test_every_form_that_renders_fields_has_the_error_summary():
    """Template check: a form template showing fields through pki/_field.html also shows the summary (done once,
    in the shared tag, never page by page)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    paths = [*root.glob("*/templates/**/*.html"), *(root / "templates").glob("**/*.html")]
    missing = [str(p.relative_to(root)) for p in paths
               if "<form" in (text := p.read_text()) and "pki/_field.html" in text and "error_summary" not in text]
    assert not missing
