"""A console sign-in locked after repeated wrong passwords, in Chromium, in English and in Chinese."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]
TEXT = {"en": "Sign-in locked", "zh-hans": "登录已锁定"}


def test_wrong_passwords_lock_the_sign_in(console_page, console_user, lang, live_url, screenshot, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = console_user(f"locked-{lang}")
    for _ in range(2):
        page = console_page(user, lang=lang, password="wrong", signed_in=False)
        expect(page.locator("#id_password")).to_be_visible()  # the form again, with its error
    page = console_page(user, lang=lang, password="wrong", signed_in=False)
    expect(page.locator('[data-testid="login-locked"]')).to_contain_text(TEXT[lang])
    screenshot(page, f"login-locked-{lang}")
    # The right password is refused too while locked.
    page = console_page(user, lang=lang, signed_in=False)
    expect(page.locator('[data-testid="login-locked"]')).to_be_visible()
