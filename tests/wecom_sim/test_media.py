"""Temporary media: media/upload over HTTP (multipart "media"), WeCom's type/size/format errcodes, and the 3-day
validity of a media_id when a mass message or a welcome message uses it."""

from __future__ import annotations

import pytest
import requests

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
MB = 1024 * 1024


def upload(wx, kind: str, content: bytes | None, filename: str = "a.png", field: str = "media") -> dict:
    files = {field: (filename, content, "application/octet-stream")} if content is not None else {"x": ("x", b"")}
    response = requests.post(f"{wx.base}/media/upload", params={"access_token": wx.token, "type": kind},
                             files=files, timeout=30)
    assert response.status_code == 200
    return response.json()


def _mass(wx, eid, attachments):
    return wx.post("externalcontact/add_msg_template", {
        "chat_type": "single", "external_userid": [eid], "text": {"content": "new arrivals"},
        "attachments": attachments})


def test_upload_answers_type_media_id_and_created_at(sim, wx):
    for kind, content in (("image", PNG), ("image", JPG), ("file", b"hello world"), ("voice", b"#!AMR\n" + b"1" * 9),
                          ("video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 8)):
        body = upload(wx, kind, content)
        assert body["errcode"] == 0, body
        assert body["type"] == kind and len(body["media_id"]) == 44
        assert abs(int(body["created_at"]) - sim.clock()) < 5


@pytest.mark.parametrize(
    ("kind", "content", "errcode"),
    [
        ("picture", PNG, 40005),  # no such type
        ("image", b"GIF89a" + b"\x00" * 20, 40004),  # GIF is not JPG/PNG
        ("image", b"plain text, not an image", 40004),
        ("voice", PNG, 40004),  # voice must be AMR
        ("image", b"\x89PNG", 40006),  # 5 bytes or fewer
        ("image", b"\x89PNG\r\n\x1a\n" + b"\x00" * (10 * MB), 40009),  # over 10 MB
        ("voice", b"#!AMR\n" + b"\x00" * (2 * MB), 40006),  # over 2 MB
        ("image", None, 44001),  # no "media" part
    ],
)
def test_bad_uploads_answer_wecoms_errcodes(sim, wx, kind, content, errcode):
    body = upload(wx, kind, content)
    assert body["errcode"] == errcode, body
    assert body["media_id"] == ""


def test_upload_needs_a_token(sim, wx):
    response = requests.post(f"{wx.base}/media/upload", params={"type": "image"}, files={"media": ("a.png", PNG)},
                             timeout=30)
    assert response.json()["errcode"] == 41001


def test_media_id_valid_three_days_in_attachments(sim, wx, world):
    sim.configure(confirm_delay_seconds=None, receive_quota="month_days")
    eid = world["eid"]
    media_id = upload(wx, "image", PNG)["media_id"]
    image = [{"msgtype": "image", "image": {"media_id": media_id}}]
    assert _mass(wx, eid, image)["errcode"] == 0
    cover = [{"msgtype": "miniprogram", "miniprogram": {"title": "Shop", "pic_media_id": media_id,
                                                       "appid": "wx123", "page": "/index"}}]
    assert _mass(wx, eid, cover)["errcode"] == 0
    # Unknown, or of another type (a file is no image): 40007.
    assert _mass(wx, eid, [{"msgtype": "image", "image": {"media_id": "nope"}}])["errcode"] == 40007
    file_id = upload(wx, "file", b"hello world", "a.txt")["media_id"]
    assert _mass(wx, eid, [{"msgtype": "image", "image": {"media_id": file_id}}])["errcode"] == 40007
    assert _mass(wx, eid, [{"msgtype": "file", "file": {"media_id": file_id}}])["errcode"] == 0
    sim.advance(3 * 86400 - 60)
    assert _mass(wx, eid, image)["errcode"] == 0  # still inside its 3 days
    sim.advance(120)
    expired = _mass(wx, eid, image)
    assert expired["errcode"] == 40007 and expired["msgid"] == ""
    welcome = wx.post("externalcontact/send_welcome_msg", {"welcome_code": "x", "attachments": image})
    assert welcome["errcode"] == 40007
    assert _mass(wx, eid, [{"msgtype": "image", "image": {"media_id": upload(wx, "image", JPG)["media_id"]}}])[
        "errcode"] == 0
