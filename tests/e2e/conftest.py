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
