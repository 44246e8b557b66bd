"""Fixtures for the console's product pages: users with and without the pages' permissions."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission


def make_user(username: str, *perms: str, superuser: bool = False):
    """A console (is_staff) user holding exactly `perms` ("app_label.codename")."""
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("boss", superuser=True))
    return client


@pytest.fixture
def staff_client_factory(client):
    """A logged-in client for a staff user with the given permissions (none: the 403 case)."""

    seq = itertools.count(1)

    def login(*perms: str):
        client.force_login(make_user(f"staff{next(seq)}", *perms))
        return client

    return login
