"""Chromium signed in to the console in a language, for the contact, channel and pool page tests, until they move
onto the shared harness (tests/browser/conftest.py). The same shape as live_pages.py beside it: a browser per module,
a session made by Django's test client copied into the browser, the language on the cookie and Accept-Language."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
LANGUAGES = {"en": "en-US,en;q=0.9", "zh-hans": "zh-CN,zh;q=0.9"}


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture(params=sorted(LANGUAGES))
def lang(request) -> str:
    return request.param


@pytest.fixture
def console_page(chromium, live_stack, lang, django_user_model):
    """A page signed in as a console admin, speaking `lang`; 10 s default timeout."""
    user = django_user_model.objects.create_user("boss", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    context = chromium.new_context(locale="zh-CN" if lang == "zh-hans" else "en-US",
                                   extra_http_headers={"Accept-Language": LANGUAGES[lang]})
    host = live_stack.split("//", 1)[1].split(":")[0]
    context.add_cookies([
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
         "domain": host, "path": "/"},
        {"name": settings.LANGUAGE_COOKIE_NAME, "value": lang, "domain": host, "path": "/"},
    ])
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
