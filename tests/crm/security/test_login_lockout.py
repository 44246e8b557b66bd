"""The console's login is locked after AXES_FAILURE_LIMIT wrong passwords for one username from one address: 429 with
Retry-After, even for the right password then; another account, and the same one after an admin unlocks it, sign in."""

from __future__ import annotations

import pytest
from axes.utils import reset

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def _login(client, username: str, password: str, lang: str = "en"):
    return client.post(LOGIN, {"username": username, "password": password}, HTTP_ACCEPT_LANGUAGE=lang)


def test_lockout_after_repeated_failures(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("ann", password="right-pw-1", is_staff=True, is_superuser=True)
    django_user_model.objects.create_user("bo", password="right-pw-2", is_staff=True, is_superuser=True)

    for _ in range(2):
        assert _login(client, "ann", "wrong").status_code == 200  # the form again, with its error
    locked = _login(client, "ann", "wrong")
    assert locked.status_code == 429 and int(locked["Retry-After"]) == 15 * 60
    assert "Too many wrong passwords (3)" in locked.content.decode()

    # Locked: the right password is refused too, and nothing signs in.
    again = _login(client, "ann", "right-pw-1", lang="zh-CN")
    assert again.status_code == 429 and "登录已锁定" in again.content.decode()
    assert "_auth_user_id" not in client.session

    # Locked by username and address together: a colleague at the same till signs in.
    assert _login(client, "bo", "right-pw-2").status_code == 302
    client.logout()

    reset(username="ann")  # what `manage.py axes_reset_username ann` does
    assert _login(client, "ann", "right-pw-1").status_code == 302


def test_a_success_resets_the_count(client, django_user_model, settings):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("cy", password="right-pw-3", is_staff=True)
    for _ in range(2):
        _login(client, "cy", "wrong")
    assert _login(client, "cy", "right-pw-3").status_code == 302
    client.logout()
    for _ in range(2):
        assert _login(client, "cy", "wrong").status_code == 200
