"""Fixtures for the campaign service: CRM rows, images, and (for live tests) the simulator over HTTP."""

from __future__ import annotations

import pytest

from crm.models import CustomerGroup, Tag, TagGroup
from tests.crm.campaigns.conftest import (  # noqa: F401  (fixtures and helpers shared with the campaign tests)
    Sim,
    admin_client,
    befriend,
    later,
    make_contact,
    make_staff,
    plain_staff_client,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 64
GIF = b"GIF89a" + b"\x00" * 64


@pytest.fixture
def sim(live_stack) -> Sim:
    return Sim(live_stack)


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def make_tag(name: str = "VIP") -> Tag:
    group, _ = TagGroup.objects.get_or_create(wecom_id="etgroup-test", defaults={"name": "Test"})
    return Tag.objects.create(group=group, wecom_id=f"et-{name}", name=name)


def make_group(chat_id: str, *, owner=None, vip: bool = False, status: str = "active") -> CustomerGroup:
    return CustomerGroup.objects.create(chat_id=chat_id, name=chat_id, owner=owner, is_vip=vip, status=status)


def files_under(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
