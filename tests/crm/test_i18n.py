"""Languages: staff choose theirs in the console (set_language, remembered in the language cookie), customer pages
follow the browser and default to Chinese (crm/i18n.py), times are shown in Asia/Shanghai."""

from __future__ import annotations

import pytest
from django.conf import settings

from crm.i18n import customer_language

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("accept_language", "expected"), [
    ("", "zh-hans"),
    ("zh-CN,zh;q=0.9", "zh-hans"),
    ("zh", "zh-hans"),
    ("zh-TW", "zh-hans"),  # no Traditional catalogue: Simplified reads better to a Taiwanese shopper than English
    ("fr-FR,fr;q=0.9", "zh-hans"),  # a language we do not have: the default, Chinese, never English
    ("*", "zh-hans"),
    ("en-US,en;q=0.9", "en"),
    ("en-GB", "en"),
    ("fr-FR,en;q=0.5", "en"),  # the first language we have, in the browser's order
    ("en;q=0.3,zh-CN;q=0.8", "zh-hans"),
])
def test_a_customer_gets_the_first_browser_language_we_have_else_chinese(accept_language, expected):
    assert customer_language(accept_language) == expected


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("lin", password="pw", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _sidebar_and_page(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def test_the_console_in_chinese_has_a_chinese_sidebar_and_page(staff_client):
    staff_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    response = staff_client.get("/admin/console/system/")
    html = _sidebar_and_page(response)
    assert response["Content-Language"] == "zh-hans"
    assert '<html lang="zh-hans"' in html
    for chinese in ("数据看板", "客户", "渠道活码", "客户群", "营销活动", "红包", "会员积分", "员工", "系统"):
        assert chinese in html, chinese  # the sidebar's sections
    for chinese in ("健康检查", "Celery 队列", "回调积压", "定时任务"):
        assert chinese in html, chinese  # the System page's cards
    for english in ("Red-packet pools", "Callback backlog", "Beat schedules", "Points ledger", "Lucky draw entrys"):
        assert english not in html, english


def test_the_console_in_english_by_default(staff_client):
    html = _sidebar_and_page(staff_client.get("/admin/console/system/"))
    assert "Red-packet pools" in html and "Callback backlog" in html
    assert "渠道活码" not in html and "回调积压" not in html


def test_set_language_remembers_the_staff_members_choice(staff_client):
    # The console's switch: a form posting to set_language, one per language, in the user menu.
    dashboard = staff_client.get("/admin/").content.decode()
    assert 'action="/i18n/setlang/"' in dashboard
    assert 'name="language" type="hidden" value="zh-hans"' in dashboard

    response = staff_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "zh-hans"
    assert int(cookie["max-age"]) >= 300 * 24 * 3600  # outlives the browser session
    # Remembered on the next pages, whatever the browser says.
    page = staff_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    assert page["Content-Language"] == "zh-hans" and "数据看板" in page.content.decode()

    staff_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})
    page = staff_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert page["Content-Language"] == "en" and "Dashboard" in page.content.decode()


def test_a_language_we_do_not_have_is_not_served(staff_client):
    # Django's set_language stores any language Django itself has a catalogue for; LANGUAGES still decides.
    staff_client.post("/i18n/setlang/", {"language": "fr", "next": "/admin/"})
    page = staff_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="fr-FR,fr;q=0.9")
    assert page["Content-Language"] == "en" and "Tableau de bord" not in page.content.decode()


def test_a_staff_member_without_a_choice_gets_their_browsers_language(staff_client):
    page = staff_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert page["Content-Language"] == "zh-hans" and "数据看板" in page.content.decode()


def test_model_field_and_choice_names_follow_the_language(staff_client):
    from django.utils import translation

    from crm.model_names import MODEL_STRINGS
    from crm.models import Campaign, Handover

    scheduled_at = Campaign._meta.get_field("scheduled_at")
    with translation.override("zh-hans"):
        assert str(Campaign._meta.verbose_name_plural) == "营销活动"
        assert str(scheduled_at.verbose_name) == "定时发送时间"
        assert str(dict(Handover._meta.get_field("kind").choices)["resigned"]) == "离职继承"
    with translation.override("en"):  # the English is what it always was (migrations see no change)
        assert str(Campaign._meta.verbose_name_plural) == "campaigns"
        assert str(scheduled_at.verbose_name) == "scheduled at"
    assert not [where for places in MODEL_STRINGS.values() for where in places if where.startswith("wecom_sim")]

    staff_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = _sidebar_and_page(staff_client.get("/admin/crm/campaign/add/"))
    assert "定时发送时间" in html and "Scheduled at" not in html  # a model form's label
    assert "增加 营销活动" in html  # Django admin's own "Add %(name)s", with the model's name in Chinese


def test_times_are_shown_in_shanghai():
    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
