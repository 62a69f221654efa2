"""The admin UI and the RA portal on a phone (390x844, Chromium): the side menu collapses behind a Menu button,
and no page reachable from the menus scrolls sideways (``scrollWidth <= innerWidth``)."""

from __future__ import annotations

import pytest

from pki import bootstrap

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
OVERFLOW_JS = "[document.documentElement.scrollWidth, window.innerWidth]"


@pytest.fixture
def admin_login(monkeypatch):
    monkeypatch.setenv("PKI_ADMIN_PASSWORD", "e2e-phone-password")
    bootstrap.run()
    return "admin", "e2e-phone-password"


@pytest.fixture
def phone(browser):
    # Not is_mobile: mobile emulation zooms out to fit a too-wide page, so innerWidth would grow with the overflow
    context = browser.new_context(viewport=PHONE, has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def _log_in(page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login/")
    page.fill("#id_username", user)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("header .user")


def _overflow(page) -> tuple[int, int]:
    scroll_width, inner_width = page.evaluate(OVERFLOW_JS)
    return scroll_width, inner_width


def _links(page, selector: str, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all(selector, "els => els.map(a => a.href)")
    return [h for h in dict.fromkeys(hrefs) if h.startswith(base)]


def test_side_menu_collapses_behind_a_button_on_a_phone(live_server, phone, admin_login):
    _log_in(phone, live_server.url, *admin_login)
    phone.goto(live_server.url + "/")
    toggle = phone.locator("button.nav-toggle")
    nav = phone.locator("nav.side")
    assert toggle.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not nav.is_visible(), "the menu must not fill the first screen of a phone"
    assert phone.locator("main h1").first.is_visible()
    toggle.click()
    assert nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert nav.locator("a").first.is_visible()
    toggle.click()
    assert not nav.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    # Keyboard: the button is reachable and opens the menu with Enter
    toggle.focus()
    phone.keyboard.press("Enter")
    assert nav.is_visible()


def test_side_menu_stays_open_on_a_desktop(live_server, page, admin_login):
    _log_in(page, live_server.url, *admin_login)
    page.goto(live_server.url + "/")
    assert page.locator("nav.side").is_visible()
    assert not page.locator("button.nav-toggle").is_visible()


def test_no_page_of_the_menus_scrolls_sideways_on_a_phone(live_server, phone, admin_login):
    base = live_server.url
    _log_in(phone, base, *admin_login)
    phone.goto(base + "/")
    pages = _links(phone, "nav.side a", base)
    assert len(pages) >= 10, pages
    # Detail pages with long DNs, serials and fingerprints: the first entries of the CA and certificate lists
    for listing, row_link in [("/cas/", "main table a"), ("/certificates/", "main table a")]:
        phone.goto(base + listing)
        pages += _links(phone, row_link, base)[:2]
    phone.goto(base + "/ra/")
    pages += [base + "/ra/"] + _links(phone, "header a, main a", base + "/ra/")
    pages.append(base + "/no-such-page/")
    overflowing = []
    for url in dict.fromkeys(pages):
        phone.goto(url)
        scroll_width, inner_width = _overflow(phone)
        assert inner_width == PHONE["width"], url
        if scroll_width > inner_width:
            overflowing.append(f"{url[len(base):]}: {scroll_width} > {inner_width}")
    assert not overflowing, "pages scroll sideways at 390 px:\n" + "\n".join(overflowing)


def test_404_page_keeps_the_navigation_and_echoes_nothing(live_server, page, admin_login):
    _log_in(page, live_server.url, *admin_login)
    response = page.goto(live_server.url + "/no-such-page/%3Cscript%3Ealert(1)%3C%2Fscript%3E/")
    assert response.status == 404
    assert page.locator("nav.side a").count() >= 10  # the menu of a logged-in user stays
    assert page.locator("main a.button").get_attribute("href") == "/start/"
    assert page.locator("link[rel=icon]").count() == 1
    assert "<script>alert(1)" not in page.content() and "alert(1)" not in page.inner_text("main")


def test_404_page_of_an_anonymous_visitor_offers_the_login(live_server, page, admin_login):
    response = page.goto(live_server.url + "/cas/999999/nothing/")
    assert response.status == 404
    assert page.locator("nav.side").count() == 0
    assert page.locator("main a.button").get_attribute("href") == "/login/"


def test_500_page_links_home_and_shows_nothing_of_the_error(rf):
    from django.views.defaults import server_error

    response = server_error(rf.get("/cas/1/"))
    body = response.content.decode()
    assert response.status_code == 500
    assert 'href="/"' in body and 'rel="icon"' in body and 'name="viewport"' in body
    assert "Traceback" not in body and "/cas/1/" not in body


def test_keyboard_focus_is_visible(live_server, phone, admin_login):
    _log_in(phone, live_server.url, *admin_login)
    phone.goto(live_server.url + "/")
    phone.keyboard.press("Tab")
    focused = phone.evaluate("""() => { const e = document.activeElement, s = getComputedStyle(e);
        return [e.className, s.outlineStyle, s.outlineWidth]; }""")
    assert focused[0] == "nav-toggle"  # the Menu button is the first stop on a phone
    assert focused[1] != "none" and focused[2] != "0px", focused


@pytest.mark.parametrize("path, section, entry", [
    ("/cas/new/", "CA Functions", "/cas/"),
    ("/approvalprofiles/new/", "System", "/approvalprofiles/"),
    ("/profiles/new/", None, "/profiles/"),
])
def test_create_pages_highlight_their_section_and_show_breadcrumbs(live_server, page, admin_login, path, section,
                                                                   entry):
    _log_in(page, live_server.url, *admin_login)
    page.goto(live_server.url + path)
    active = page.locator("nav.side a.active")
    assert active.count() == 1
    assert active.get_attribute("href") == entry
    crumbs = page.locator(".breadcrumbs li")
    assert crumbs.locator(f"a[href='{entry}']").count() == 1
    assert crumbs.last.get_attribute("aria-current") == "page"
    assert crumbs.last.inner_text().strip() == page.locator("main h1").first.evaluate(
        "h => Array.from(h.childNodes).filter(n => n.nodeType === 3).map(n => n.textContent).join('')"
        ".replace(/\\s+/g, ' ').trim()")
    if section:
        assert crumbs.first.inner_text().strip().lower() == section.lower()


def test_detail_page_highlights_its_section_and_menu_pages_get_no_breadcrumbs(live_server, page, admin_login):
    _log_in(page, live_server.url, *admin_login)
    page.goto(live_server.url + "/cas/")
    assert page.locator(".breadcrumbs").count() == 0
    assert page.locator("nav.side a.active").get_attribute("aria-current") == "page"
    page.locator("main table a[href^='/cas/']").first.click()
    page.wait_for_url("**/cas/*/")
    assert page.locator("nav.side a.active").get_attribute("href") == "/cas/"
    assert page.locator(".breadcrumbs a[href='/cas/']").is_visible()
    # the dashboard ("/") is a prefix of every path but never the section of another page
    assert page.locator("nav.side a.active[href='/']").count() == 0
