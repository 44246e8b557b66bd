"""Browser tests: the console driven in headless Chromium (Python playwright) against pytest-django's live server.

Every test under tests/browser/ is marked `browser` (deselect them with `-m "not browser"`).

Fixtures
- `chromium`: one headless Chromium for the session: Debian's /usr/bin/chromium through playwright's
  `executable_path` (never `playwright install`), with --no-sandbox and --disable-background-networking. Missing
  browser: the tests are skipped with the reason, except in CI (CI=true), where that is a failure.
- `console_user(username="admin", *, superuser=True, groups=(), perms=())`: a console user with password
  `PASSWORD`, holding the named groups (e.g. "marketing") and permissions ("crm.view_contact").
- `console_page(user=None, *, lang="en", password=PASSWORD)`: a new browser page signed in as `user` (a superuser
  by default) through the real login form at /admin/login/, landed on the dashboard; 10 s default timeout.
  `console_page(..., signed_in=False)` stops on the login form after posting it (for a login that must fail).
  The browser speaks `lang` ("en" or "zh-hans") in Accept-Language and carries it as the language cookie, as a
  staff member who chose it would. Each page opened this way is saved as var/screenshots/<test name>[-<n>].png
  when the test ends, passed or failed (CI keeps var/ as artifacts).
- `lang`: "en" then "zh-hans": a test that takes it runs once in each language (`console_page(lang=lang)`).
- `screenshot(page, name)`: save a named screenshot now (var/screenshots/<name>.png), e.g. mid-journey.
- `sim`, `staffed` (tests/crm/contacts/conftest.py): the simulator's admin API over HTTP on a reset world, and that
  world with staff alice, bob and carol synced in.
- `live_url`: the live server's base URL. Also take `live_stack` (tests/conftest.py; the same server, wired to the
  simulator under it) when the page must reach WeCom, and `celery_worker` when a worker must run what it queues.

Keep each test fast: one journey per test, waits on selectors (`page.wait_for_selector`, `expect`), never sleeps.
Pages expose `data-testid` attributes for tests to find them by.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.crm.contacts.conftest import sim, staffed  # noqa: F401  (fixtures: the simulated world)

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
PASSWORD = "console-pw-1"
ACCEPT_LANGUAGE = {"en": "en-US,en;q=0.9", "zh-hans": "zh-CN,zh;q=0.9"}

# Playwright's sync API runs an event loop in the test's thread; Django refuses ORM calls from a thread with a
# running loop unless told the calls are synchronous, which they are here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def live_url(live_server) -> str:
    return live_server.url


@pytest.fixture(params=["en", "zh-hans"])
def lang(request) -> str:
    return request.param


def save_screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def mark_document(page) -> None:
    """Tag the loaded document: if the page reloads or navigates, the tag is gone (see still_same_document)."""
    page.evaluate("window.__notReloaded = true")


def still_same_document(page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


@pytest.fixture
def screenshot():
    """screenshot(page, "channel-page-en") -> var/screenshots/channel-page-en.png."""
    return save_screenshot


@pytest.fixture
def console_user(django_user_model):
    """Make a console user: console_user("mia", superuser=False, groups=["marketing"], perms=["crm.view_tag"])."""
    from django.contrib.auth.models import Group, Permission

    def make(username: str = "admin", *, superuser: bool = True, groups=(), perms=()):
        user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True,
                                                     is_superuser=superuser)
        for name in groups:
            user.groups.add(Group.objects.get(name=name))
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


def _test_file_name(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")


@pytest.fixture
def console_page(request, chromium, live_server, console_user):
    """console_page(user=None, *, lang="en", password=PASSWORD, signed_in=True) -> a page signed in through the login
    form (see the module doc)."""
    contexts = []

    def open_page(user=None, *, lang: str = "en", password: str = PASSWORD, signed_in: bool = True):
        user = user or console_user(f"admin{len(contexts) or ''}")
        context = chromium.new_context(
            locale="zh-CN" if lang == "zh-hans" else "en-US",
            extra_http_headers={"Accept-Language": ACCEPT_LANGUAGE.get(lang, lang)},
            viewport={"width": 1440, "height": 960},
        )
        context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": lang, "url": live_server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", user.get_username())
        page.fill("#id_password", password)
        page.click('form [type="submit"]')
        if signed_in:
            page.wait_for_url(re.compile(r".*/admin/$"))
        else:
            page.wait_for_load_state()
        return page

    yield open_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = _test_file_name(request)
    for index, context in enumerate(contexts):
        for page in context.pages:
            try:
                page.screenshot(path=str(SCREENSHOTS / f"{base}{f'-{index}' if index else ''}.png"), full_page=True)
            except Exception:  # a page that crashed still lets the others be saved, and the test report stand
                pass
        context.close()
