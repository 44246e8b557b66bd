"""Console users for the admin tests: a superuser, and staff users holding only the permissions a test gives."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_user("root", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_with(django_user_model):
    """staff_with("crm.view_contact", ...): an active staff user (not superuser) holding exactly these permissions."""

    def make(*perms: str, username: str = "clerk"):
        user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return django_user_model.objects.get(pk=user.pk)  # fresh: no stale permission cache

    return make
