"""Headless Chromium (Debian's) driven by Playwright. A missing browser fails the tests; it never skips them."""

from __future__ import annotations

import os
import shutil

import pytest

# Playwright's sync API keeps an event loop running in this thread; the tests' own ORM calls are
# ordinary blocking calls, so Django's async-safety guard is told so.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(autouse=True)
def _pooled_rsa_keys():
    """Each browser test runs ``init`` (bootstrap.run) on its flushed database: ManagementCA's RSA-3072 key and the
    admin credentials' RSA-2048 come from the per-process pool (tests/support/keypool.py; keys stay distinct within
    a test) instead of a fresh prime search each time, as the CLI tests' ``init`` does."""
    from tests.support.keypool import pooled_rsa_keys

    with pooled_rsa_keys():
        yield


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    path = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    if not os.path.exists(path):
        raise AssertionError(f"Chromium not found at {path}: `make test` installs Debian's chromium package")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


# axe-core from its npm package (scripts/install-test-deps.sh puts it in the git-ignored tests/e2e/axe/node_modules);
# injected into the page under test through the DevTools protocol, so the pages' CSP (no inline script) stays on.
AXE_JS = os.path.join(os.path.dirname(__file__), "axe", "node_modules", "axe-core", "axe.min.js")
AXE_RUN = """async () => {
  const result = await window.axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " + (n.failureSummary || "").split("\\n")[1])}));
}"""


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not os.path.exists(AXE_JS):
        raise AssertionError(f"axe-core not found at {AXE_JS}: run scripts/install-test-deps.sh")
    with open(AXE_JS, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="session")
def axe(axe_source):
    """``axe(page)``: the serious and critical axe-core violations of the page as it is now (a list of strings)."""

    def check(page) -> list[str]:
        if not page.evaluate("() => Boolean(window.axe)"):
            page.evaluate(axe_source)
        found = page.evaluate(AXE_RUN)
        return [f"{page.url}: {v['impact']} {v['id']} ({v['help']}): {'; '.join(v['nodes'])}"
                for v in found if v["impact"] in ("serious", "critical")]

    return check
