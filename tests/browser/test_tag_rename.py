"""Renaming a corp tag in the console, in Chromium, in English and in Chinese: the rename reaches WeCom and the page
says so; a tag WeCom's admin console made is refused with the reason, and nothing changes."""

from __future__ import annotations

import pytest

from crm.models import Tag
from crm.services.tags import tags_sync_from_wecom
from crm.wecom.client import get_client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(150)]

PUSHED = {"en": "WeCom was updated too.", "zh-hans": "企业微信也已同步更新。"}
NOT_OWNER = {"en": "made in WeCom's admin console", "zh-hans": "企业微信管理后台创建"}


def _wecom_name(tag_id: str) -> str:
    return get_client().get_corp_tag_list(tag_id=[tag_id])["tag_group"][0]["tag"][0]["name"]


def test_rename_a_tag_in_the_console_pushes_it_to_wecom(staffed, console_page, lang, live_stack, screenshot):
    sim = staffed
    gold_id = get_client().add_corp_tag([{"name": "Gold"}], group_name="Tier")["tag_group"]["tag"][0]["id"]
    tea_id = sim.post("corp_tags", {"group_name": "Interest", "tag": ["Tea"]})["tag"][0]["id"]
    tags_sync_from_wecom()
    gold, tea = Tag.objects.get(wecom_id=gold_id), Tag.objects.get(wecom_id=tea_id)

    page = console_page(lang=lang)
    page.goto(f"{live_stack}/admin/crm/tag/{gold.pk}/change/")
    page.fill('input[name="name"]', f"Gold {lang}")
    page.click('button[name="_save"]')
    page.wait_for_load_state()
    assert PUSHED[lang] in page.content()
    screenshot(page, f"tag-renamed-{lang}")
    assert _wecom_name(gold_id) == f"Gold {lang}"
    assert Tag.objects.get(pk=gold.pk).name == f"Gold {lang}"

    page.goto(f"{live_stack}/admin/crm/tag/{tea.pk}/change/")
    page.fill('input[name="name"]', "Oolong")
    page.click('button[name="_save"]')
    page.wait_for_load_state()
    assert NOT_OWNER[lang] in page.content()
    screenshot(page, f"tag-rename-refused-{lang}")
    assert _wecom_name(tea_id) == "Tea" and Tag.objects.get(pk=tea.pk).name == "Tea"
