"""Temporary media (素材管理 → 上传临时素材): `POST media/upload?type=TYPE`, multipart field "media".

The real limits (developer.work.weixin.qq.com/document/path/90253): every file more than 5 bytes; image 10 MB,
JPG or PNG; voice 2 MB, AMR; video 10 MB, MP4; file 20 MB. The media_id is valid 3 days (40007 afterwards, when
a message uses it). Formats are told by their magic bytes, as a server would, not by the file name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import string

from wecom_sim import ids
from wecom_sim.cgi.base import WecomError, endpoint
from wecom_sim.corp import get_corp, now, ts
from wecom_sim.models import SimCorp, SimMedia

MB = 1024 * 1024
MEDIA_TTL = dt.timedelta(days=3)
# type -> (max bytes, errcode when larger)
SIZE_LIMITS = {"image": (10 * MB, 40009), "voice": (2 * MB, 40006), "video": (10 * MB, 40011),
               "file": (20 * MB, 40006)}
MEDIA_ID_ALPHABET = string.ascii_letters + string.digits + "-_"
MIN_BYTES = 6  # "所有文件size必须大于5个字节"
# Which media type each attachment field needs.
ATTACHMENT_MEDIA = {("image", "media_id"): "image", ("video", "media_id"): "video", ("file", "media_id"): "file",
                    ("miniprogram", "pic_media_id"): "image"}


def sniff(head: bytes) -> str:
    """The format of a file from its first bytes: jpg, png, amr, mp4 or ""."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head[4:8] == b"ftyp":
        return "mp4"
    return ""


FORMATS = {"image": {"jpg", "png"}, "voice": {"amr"}, "video": {"mp4"}}


@endpoint("media/upload", empty={"type": "", "media_id": "", "created_at": ""})
def upload(corp: SimCorp, params: dict) -> dict:
    kind = params.get("type") or ""
    if kind not in SIZE_LIMITS:
        raise WecomError(40005, "invalid type")
    files = params.get("_files")
    upload_file = files.get("media") if files is not None else None
    if upload_file is None or not upload_file.size:
        raise WecomError(44001, "media file empty")
    limit, code = SIZE_LIMITS[kind]
    if upload_file.size < MIN_BYTES:
        raise WecomError(40006, "file size must be more than 5 bytes")
    if upload_file.size > limit:
        raise WecomError(code, f"{kind} larger than {limit // MB}MB")
    digest = hashlib.sha256()
    head = b""
    for chunk in upload_file.chunks():
        head = head or chunk[:16]
        digest.update(chunk)
    if kind in FORMATS and sniff(head) not in FORMATS[kind]:
        raise WecomError(40004, f"{kind} must be {'/'.join(sorted(FORMATS[kind]))}")
    moment = now(corp)
    media = SimMedia.objects.create(
        corp=corp, media_id=ids.random_token(44, MEDIA_ID_ALPHABET), type=kind,
        filename=(upload_file.name or "media")[:255], size=upload_file.size, sha256=digest.hexdigest(),
        content_type=(upload_file.content_type or "")[:128], created_at=moment,
    )
    # The doc's example gives created_at as a string.
    return {"type": kind, "media_id": media.media_id, "created_at": str(ts(moment))}


def check_media(attachments: list, corp: SimCorp | None = None) -> None:
    """40007 for an attachment whose media_id is unknown, of another type, or older than 3 days."""
    wanted = []
    for item in attachments:
        body = item.get(item.get("msgtype")) if isinstance(item, dict) else None
        if not isinstance(body, dict):
            continue
        for (msgtype, key), kind in ATTACHMENT_MEDIA.items():
            if item["msgtype"] == msgtype and body.get(key):
                wanted.append((str(body[key]), kind))
            elif item["msgtype"] == msgtype == "image" and not body.get("pic_url") and not body.get(key):
                raise WecomError(40007, "media_id missing")
    if not wanted:
        return
    corp = corp or get_corp()
    found = {m.media_id: m for m in SimMedia.objects.filter(corp=corp, media_id__in=[w for w, _ in wanted])}
    moment = now(corp)
    for media_id, kind in wanted:
        media = found.get(media_id)
        if media is None or media.type != kind:
            raise WecomError(40007, "invalid media_id")
        if moment >= media.created_at + MEDIA_TTL:
            raise WecomError(40007, "media_id expired")
