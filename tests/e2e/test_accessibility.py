"""axe-core (from its npm package, injected by the test) on every page of the admin UI and the RA portal that the
menus reach, their first detail pages and the create forms, at desktop size: no serious or critical violation."""

from __future__ import annotations

import pytest

from pki import bootstrap

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_login(monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-axe-password")
    bootstrap.run()
    return "admin", "e2e-axe-password"


def _links(page, selector: str, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all(selector, "els => els.map(a => a.href)")
    return [h.split("#")[0] for h in dict.fromkeys(hrefs) if h.startswith(base)]


def test_every_page_is_free_of_serious_axe_violations(live_server, page, admin_login, axe):
    base = live_server.url
    page.goto(base + "/login/")
    violations = axe(page)
    page.fill("#id_username", admin_login[0])
    page.fill("#id_password", admin_login[1])
    page.click("button[type=submit]")
    page.wait_for_selector("header .user")
    page.goto(base + "/")
    pages = _links(page, "nav.side a", base)
    assert len(pages) >= 10, pages
    # Detail pages and the create/action pages they link to, from each list of the menu
    for listing in list(pages):
        page.goto(listing)
        pages += _links(page, "main table a:not([href*='download']):not([href*='?'])", base)[:1]
        pages += _links(page, "main .page-head a.button, main .actions a.button", base)[:3]
    page.goto(base + "/ra/")
    pages += [base + "/ra/"] + _links(page, "header a, main a", base + "/ra/")
    for listing in (base + "/ra/certificates/", base + "/ra/endentities/"):
        page.goto(listing)
        pages += _links(page, "main table a", base)[:1]
    pages += [base + "/no-such-page/", base + "/account/"]
    visited = []
    for url in dict.fromkeys(p for p in pages if "/logout" not in p and "download" not in p):
        response = page.goto(url)
        if response is None or "attachment" in (response.headers.get("content-disposition") or ""):
            continue
        visited.append(url)
        violations += axe(page)
    assert len(visited) >= 25, visited
    assert not violations, "axe-core finds serious or critical violations:\n" + "\n".join(violations)


FOCUSED_JS = """() => { const e = document.activeElement, s = getComputedStyle(e);
  return {tag: e.tagName.toLowerCase(), id: e.id, name: e.getAttribute("name") || "",
          text: (e.textContent || "").trim(), outline: s.outlineStyle !== "none" && s.outlineWidth !== "0px"}; }"""


def _tab_to(page, matches, limit: int = 80) -> dict:
    """Press Tab until the focused element satisfies ``matches``; every stop on the way shows its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED_JS)
        if focused["tag"] not in ("body", "html"):
            assert focused["outline"], f"no visible focus on {focused}"
        if matches(focused):
            return focused
    raise AssertionError("not reachable with the Tab key")


def test_keyboard_only_login_search_and_new_user(live_server, page, admin_login):
    """No mouse: log in, search from the header box, add a local user; each focus stop is visible."""
    base = live_server.url
    page.goto(base + "/login/")
    _tab_to(page, lambda f: f["id"] == "id_username")
    page.keyboard.type(admin_login[0])
    _tab_to(page, lambda f: f["id"] == "id_password")
    page.keyboard.type(admin_login[1])
    page.keyboard.press("Enter")
    page.wait_for_selector("header .user")

    _tab_to(page, lambda f: f["name"] == "q")
    page.keyboard.type("ManagementCA")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/search/" in url or "/cas/" in url)
    assert "ManagementCA" in page.inner_text("main")

    page.goto(base + "/users/new/")
    _tab_to(page, lambda f: f["id"] == "id_username")
    page.keyboard.type("keyboard-clerk")
    _tab_to(page, lambda f: f["tag"] == "button" and "Create" in f["text"])
    page.keyboard.press("Enter")
    page.wait_for_selector("#one-time-password")
    assert "keyboard-clerk" in page.inner_text("main")
