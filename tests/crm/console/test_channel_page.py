"""The console's channel page: the contact-me QR as real PNG and SVG downloads (the QR of the channel's link), adds
per Shanghai day over 30 days, and the adds with their attribution."""

from __future__ import annotations

import html as html_lib
import json
import re
import struct
import zlib
from datetime import UTC, date, datetime, timedelta

import pytest
import segno
from django.urls import reverse
from django.utils import timezone

from crm.models import Channel, Contact, FollowRelation, Staff
from crm.selectors.channel_page import SHANGHAI, channel_page_daily_adds

pytestmark = pytest.mark.django_db

LINK = "https://wework.qq.com/q/abcdefghijklmnopqrstuvwx"


@pytest.fixture
def channel():
    alice = Staff.objects.create(userid="alice", name="Alice")
    channel = Channel.objects.create(name="Store SH 1", state="store-sh-001", config_id="cfg1", qr_code=LINK)
    channel.staff.set([alice])
    return channel


def add(channel: Channel, name: str, at: datetime, staff: Staff | None = None) -> Contact:
    contact = Contact.objects.create(external_userid=f"wm{name}", name=name, channel=channel, first_added_at=at)
    FollowRelation.objects.create(staff=staff or Staff.objects.get(userid="alice"), contact=contact,
                                  state=channel.state, added_at=at)
    return contact


def png_pixels(data: bytes) -> tuple[int, int, list[list[int]]]:
    """Decode a 1-bit greyscale PNG (what segno writes) with the stdlib: (width, height, rows of 0/1 pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (1, 0)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = (width + 7) // 8
    rows, prior = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        assert kind in (0, 1, 2), kind  # none, sub, up: what segno uses for a 1-bit image
        for i in range(stride):
            if kind == 1 and i:
                line[i] = (line[i] + line[i - 1]) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + prior[i]) & 0xFF
        prior = bytes(line)
        rows.append([(line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
    return width, height, rows


def test_page_shows_qr_chart_and_attributed_adds(admin_client, channel):
    now = timezone.now()
    mei = add(channel, "Mei", now - timedelta(days=1))
    add(channel, "Lei", now - timedelta(days=40))  # attributed, but outside the chart's 30 days
    Contact.objects.create(external_userid="wmOther", name="Other")  # another channel's: not listed
    response = admin_client.get(reverse("console:channel", args=[channel.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "unfold/css/styles.css" in html and "Store SH 1" in html and "store-sh-001" in html
    assert '<svg' in html.split('data-testid="channel-qr"')[1][:200]
    assert reverse("console:channel-qr", args=[channel.pk, "png"]) in html
    assert reverse("console:channel-qr", args=[channel.pk, "svg"]) in html
    # The chart: 30 Shanghai days, one add in them.
    chart = json.loads(html_lib.unescape(re.search(r'data-type="bar" data-value="([^"]+)"', html).group(1)))
    assert len(chart["labels"]) == 30 and sum(chart["datasets"][0]["data"]) == 1
    assert 'data-adds="1"' in html
    # The adds: both attributed contacts, newest first, each with the staff member they added through it.
    rows = html.split('data-testid="channel-adds"')[1].split("</table>")[0]
    assert rows.count('data-testid="channel-add-row"') == 2
    assert rows.index("Mei") < rows.index("Lei") and "Other" not in rows and "Alice" in rows
    assert reverse("console:contact", args=[mei.pk]) in rows


def test_adds_are_paginated(admin_client, channel):
    base = timezone.now() - timedelta(days=2)
    for i in range(27):
        add(channel, f"C{i:02d}", base + timedelta(minutes=i))
    first = admin_client.get(reverse("console:channel", args=[channel.pk])).content.decode()
    assert first.count('data-testid="channel-add-row"') == 25 and 'data-testid="page-nav"' in first
    second = admin_client.get(reverse("console:channel", args=[channel.pk]), {"page": 2}).content.decode()
    assert second.count('data-testid="channel-add-row"') == 2 and "C01" in second and "C00" in second


def test_daily_adds_count_shanghai_days(channel):
    today = date(2026, 3, 10)
    # 15:59 UTC is 23:59 in Shanghai (the 9th); 16:00 UTC is already the 10th there.
    add(channel, "Late", datetime(2026, 3, 9, 15, 59, tzinfo=UTC))
    add(channel, "Midnight", datetime(2026, 3, 9, 16, 0, tzinfo=UTC))
    add(channel, "Morning", datetime(2026, 3, 10, 1, 0, tzinfo=UTC))
    add(channel, "Old", datetime(2026, 2, 1, tzinfo=UTC))
    days = channel_page_daily_adds(channel, days=30, today=today)
    assert len(days) == 30 and days[0]["day"] == date(2026, 2, 9) and days[-1]["day"] == today
    by_day = {d["day"]: d["adds"] for d in days}
    assert by_day[date(2026, 3, 9)] == 1 and by_day[date(2026, 3, 10)] == 2
    assert sum(by_day.values()) == 3
    assert SHANGHAI.key == "Asia/Shanghai"


def test_png_download_is_the_qr_of_the_channel_link(admin_client, channel):
    response = admin_client.get(reverse("console:channel-qr", args=[channel.pk, "png"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'attachment; filename="channel-store-sh-001-qr.png"'
    width, height, rows = png_pixels(response.content)
    qr = segno.make(LINK, error="m", micro=False)
    size = qr.symbol_size(scale=1, border=0)[0]
    scale = width // (size + 8)
    assert width == height == (size + 8) * scale
    # Every module of the expected symbol, sampled at its centre: dark is 0 (black) in the PNG.
    for y, line in enumerate(qr.matrix):
        for x, dark in enumerate(line):
            pixel = rows[(y + 4) * scale + scale // 2][(x + 4) * scale + scale // 2]
            assert pixel == (0 if dark else 1), (x, y)


def test_svg_download(admin_client, channel):
    response = admin_client.get(reverse("console:channel-qr", args=[channel.pk, "svg"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response["Content-Disposition"].startswith("attachment;")
    body = response.content.decode()
    assert "<svg" in body and "</svg>" in body and "Store SH 1" in body  # titled for the print shop
    assert "<path" in body


def test_unregistered_channel_has_no_qr_yet(admin_client, channel):
    Channel.objects.filter(pk=channel.pk).update(qr_code="", config_id="")
    html = admin_client.get(reverse("console:channel", args=[channel.pk])).content.decode()
    assert 'data-testid="channel-qr-missing"' in html
    assert admin_client.get(reverse("console:channel-qr", args=[channel.pk, "png"])).status_code == 404


def test_permissions_and_unknown_ids(admin_client, staff_client_factory, channel):
    assert admin_client.get(reverse("console:channel", args=[999999])).status_code == 404
    assert admin_client.get(reverse("console:channel-qr", args=[999999, "png"])).status_code == 404
    assert admin_client.get(reverse("console:channel-qr", args=[channel.pk, "gif"])).status_code == 404
    nobody = staff_client_factory()
    assert nobody.get(reverse("console:channel", args=[channel.pk])).status_code == 403
    assert nobody.get(reverse("console:channel-qr", args=[channel.pk, "png"])).status_code == 403
    viewer = staff_client_factory("crm.view_channel")
    assert viewer.get(reverse("console:channel", args=[channel.pk])).status_code == 200
