"""Event XML as WeCom sends it, written to the durable outbox. Only simulated client actions emit events."""

from __future__ import annotations

from xml.sax.saxutils import escape

from django.utils import timezone

from wecom_sim import corp as corp_mod
from wecom_sim.models import SimCallback, SimCorp


def _cdata(value: str) -> str:
    return "<![CDATA[" + str(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _element(name: str, value) -> str:
    if isinstance(value, list):
        return f"<{name}>" + "".join(f"<Item>{_cdata(v)}</Item>" for v in value) + f"</{name}>"
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    return f"<{name}>{_cdata(value)}</{name}>"


def event_xml(corp: SimCorp, event: str, fields: dict) -> str:
    head = {
        "ToUserName": corp.corpid,
        "FromUserName": "sys",
        "CreateTime": corp_mod.ts(corp_mod.now(corp)),
        "MsgType": "event",
        "Event": event,
    }
    body = "".join(_element(escape(k), v) for k, v in {**head, **fields}.items() if v is not None)
    return f"<xml>{body}</xml>"


def emit(corp: SimCorp, event: str, change_type: str, **fields) -> SimCallback:
    xml = event_xml(corp, event, {"ChangeType": change_type, **fields})
    callback = SimCallback.objects.create(
        corpid=corp.corpid, event=event, change_type=change_type, xml=xml, next_attempt_at=timezone.now()
    )
    from wecom_sim import delivery  # late: delivery imports requests and threads

    delivery.notify()
    return callback


def contact_event(corp: SimCorp, change_type: str, userid: str, external_userid: str, **extra) -> SimCallback:
    return emit(
        corp, "change_external_contact", change_type, UserID=userid, ExternalUserID=external_userid, **extra
    )


def chat_event(corp: SimCorp, change_type: str, chat_id: str, **extra) -> SimCallback:
    return emit(corp, "change_external_chat", change_type, ChatId=chat_id, **extra)
