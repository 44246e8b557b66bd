"""Switching the console to Chinese in Chromium, through the user menu's language switch: the sidebar and the page
turn Chinese, and the choice is remembered on the next visit (set_language's cookie), whatever the browser says."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import SCREENSHOTS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

SECTIONS_ZH = ["数据看板", "客户", "渠道活码", "客户群", "营销活动", "红包", "会员积分", "数据源", "员工", "系统"]


def _sections(page) -> list[str]:
    return [t.strip() for t in page.locator("#nav-sidebar-apps h2").all_inner_texts()]


def _switch_to(page, language_name: str) -> None:
    page.locator("#nav-sidebar-apps").wait_for()
    page.locator("[x-data*='openUserLinks'] > div.cursor-pointer").click()  # the user menu, bottom of the sidebar
    page.locator("form[action='/i18n/setlang/'] button", has_text=language_name).click()


def test_switch_the_console_to_chinese_and_it_stays_chinese(console_page, live_url):
    page = console_page(lang="en")  # an English browser (Accept-Language en-US)
    assert _sections(page)[0] == "Dashboard"

    _switch_to(page, "简体中文")
    page.wait_for_function("document.documentElement.lang === 'zh-hans'")
    assert _sections(page) == SECTIONS_ZH
    assert page.locator("#nav-sidebar-apps a", has_text="红包池").is_visible()

    page.click('#nav-sidebar-apps a:has-text("健康与队列")')
    page.wait_for_selector('[data-testid="system-page"]')
    assert "健康检查" in page.locator('[data-testid="system-page"]').inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "language-switch-zh-system.png"), full_page=True)

    # Remembered: a new tab of the same browser, still sending Accept-Language en-US, opens in Chinese.
    again = page.context.new_page()
    again.goto(f"{live_url}/admin/")
    assert again.evaluate("document.documentElement.lang") == "zh-hans"
    assert _sections(again) == SECTIONS_ZH
    again.close()

    # And back to English the same way.
    _switch_to(page, "English")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert re.search(r"Health", page.locator('[data-testid="system-page"]').inner_text())
    assert _sections(page)[0] == "Dashboard"
