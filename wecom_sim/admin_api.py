"""The admin/control API under /wecom-sim/admin/: a contract other engineers, tests and benchmarks code against."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import wraps

import requests
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from wecom_sim import clockwork, delivery, faults, limits, world
from wecom_sim.corp import advance, callback_config, get_corp, now
from wecom_sim.models import (
    SimAccessToken,
    SimCallback,
    SimCorp,
    SimMassMessage,
    SimRedPack,
)
from wecom_sim.pay import redpack_json

PATCHABLE = {
    "callback_url": str, "callback_token": str, "encoding_aes_key": str,
    "confirm_delay_seconds": float, "receive_quota": str, "token_expires_in": int, "expired_token_errcode": int,
    "callback_timeout": float, "callback_retries": int, "callback_retry_delay": float,
    "rate_limit_per_minute": int, "concurrency_limit": int, "friend_limit": int, "group_size_limit": int,
    "merchant_balance_fen": int, "duplicate_rate": float, "reorder": bool, "drop_rate": float,
    "welcome_code_ttl": int, "transfer_wait_seconds": int, "redpack_refund_seconds": int,
    "mass_dispatch_seconds": float, "add_confirm_seconds": float, "welcome_send_delay_ms": int,
    "ip_rate_limit_per_minute": int, "groupchat_visible_limit": int, "redpack_query_delay_seconds": float,
}
NULLABLE = {"confirm_delay_seconds", "add_confirm_seconds"}


def error(status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, "field": field}}, status=status)


def admin_view(methods: set[str]) -> Callable:
    """Checks the admin key and the method, parses JSON, turns WorldError into 4xx JSON."""

    def decorate(func):
        @csrf_exempt
        @wraps(func)
        def view(request: HttpRequest, **kwargs):
            if request.headers.get("X-Sim-Admin-Key") != settings.WECOM_SIM["ADMIN_KEY"]:
                return error(403, "forbidden", "missing or wrong X-Sim-Admin-Key")
            if request.method not in methods:
                return error(405, "method_not_allowed", f"use {' or '.join(sorted(methods))}")
            try:
                data = json.loads(request.body or b"{}") if request.method in ("POST", "PATCH") else {}
            except ValueError:
                return error(400, "invalid_json", "body is not JSON")
            if not isinstance(data, dict):
                return error(400, "invalid_json", "body must be a JSON object")
            delivery.notify()
            try:
                result = func(request, data, **kwargs)
            except world.WorldError as exc:
                return error(exc.status, exc.code, exc.message, exc.field)
            except (KeyError, ValueError, TypeError) as exc:
                return error(400, "invalid", f"bad input: {exc}")
            return result if isinstance(result, JsonResponse) else JsonResponse(result, safe=False)

        return view

    return decorate


def _required(data: dict, name: str):
    if data.get(name) in (None, ""):
        raise world.WorldError(f"{name} is required", "required", name)
    return data[name]


def corp_json(corp: SimCorp) -> dict:
    url, token, aes = callback_config(corp)
    return {
        "corpid": corp.corpid, "corpsecret": corp.corpsecret, "agentid": corp.agentid, "token": token,
        "encoding_aes_key": aes, "callback_url": url, "mch_id": corp.mch_id, "now": now(corp).timestamp(),
        **{k: getattr(corp, k) for k in PATCHABLE if k not in ("callback_url", "callback_token", "encoding_aes_key")},
    }


# --- corp, clock, reset -----------------------------------------------------------------------


@admin_view({"POST"})
def reset(request, data):
    from wecom_sim import models as m

    with transaction.atomic():
        for model in (m.SimCallback, m.SimRedPack, m.SimTransfer, m.SimAppMessage, m.SimCorp):
            model.objects.all().delete()  # the corp cascades to the whole world
    faults.clear()
    client = faults.client()
    keys = list(client.scan_iter(match="wecomsim:*", count=1000))
    if keys:
        client.delete(*keys)
    return corp_json(get_corp())


@admin_view({"GET", "PATCH"})
def corp_view(request, data):
    corp = get_corp()
    if request.method == "PATCH":
        for key, value in data.items():
            if key not in PATCHABLE:
                raise world.WorldError(f"unknown setting {key}", "unknown_field", key)
            if value is None and key in NULLABLE:
                setattr(corp, key, None)
            elif value is None:
                raise world.WorldError(f"{key} cannot be null", "invalid", key)
            else:
                setattr(corp, key, PATCHABLE[key](value))
        if corp.receive_quota not in ("month_days", "week7", "day1"):
            raise world.WorldError("receive_quota must be month_days, week7 or day1", "invalid", "receive_quota")
        corp.save()
    return corp_json(corp)


@admin_view({"GET"})
def clock_view(request, data):
    return {"now": now().timestamp()}


@admin_view({"POST"})
def clock_advance(request, data):
    corp = advance(float(_required(data, "seconds")))
    clockwork.settle(corp)
    return {"now": now(corp).timestamp()}


# --- members, shoppers, groups ----------------------------------------------------------------


def member_json(member) -> dict:
    return {"userid": member.userid, "name": member.name, "has_customer_contact": member.has_customer_contact,
            "activated": member.activated, "resigned": member.resigned_at is not None}


@admin_view({"POST"})
def members(request, data):
    member = world.create_member(get_corp(), _required(data, "userid"), data.get("name", ""),
                                 has_customer_contact=bool(data.get("has_customer_contact", True)),
                                 activated=bool(data.get("activated", True)))
    return member_json(member)


@admin_view({"POST"})
def member_resign(request, data, userid):
    corp = get_corp()
    member = world.get_member(corp, userid)
    world.resign_member(corp, member)
    return member_json(member)


@admin_view({"POST"})
def member_delete_customer(request, data, userid):
    corp = get_corp()
    world.member_deletes_customer(corp, world.get_member(corp, userid), _required(data, "external_userid"))
    return {"ok": True}


@admin_view({"POST"})
def member_confirm_add(request, data, userid):
    corp = get_corp()
    return world.member_confirms_add(corp, world.get_member(corp, userid), _required(data, "external_userid"))


@admin_view({"POST"})
def member_edit_customer(request, data, userid):
    corp = get_corp()
    world.member_edits_customer(corp, world.get_member(corp, userid), _required(data, "external_userid"),
                                data.get("remark"), data.get("description"), data.get("add_tag"),
                                data.get("remove_tag"))
    return {"ok": True}


@admin_view({"POST"})
def corp_tags(request, data):
    return world.console_add_tags(get_corp(), _required(data, "group_name"), list(_required(data, "tag")))


@admin_view({"POST"})
def corp_tag_delete(request, data, tag_id):
    world.console_delete_tag(get_corp(), tag_id)
    return {"ok": True}


@admin_view({"POST"})
def corp_tag_edit(request, data, tag_id):
    world.console_edit_tag(get_corp(), tag_id, str(_required(data, "name")))
    return {"ok": True}


@admin_view({"POST"})
def shoppers(request, data):
    shopper = world.create_shopper(get_corp(), _required(data, "name"), int(data.get("gender") or 0),
                                   data.get("unionid") or "", data.get("phone") or "", data.get("external_userid"))
    return {"external_userid": shopper.external_userid, "openid": shopper.openid, "name": shopper.name}


@admin_view({"POST"})
def shopper_scan(request, data, eid):
    corp = get_corp()
    return world.scan_contact_way(corp, world.get_shopper(corp, eid), data.get("config_id"), data.get("state"))


@admin_view({"POST"})
def shopper_delete_staff(request, data, eid):
    corp = get_corp()
    world.delete_staff(corp, world.get_shopper(corp, eid), _required(data, "userid"))
    return {"ok": True}


@admin_view({"POST"})
def shopper_refuse_transfer(request, data, eid):
    corp = get_corp()
    return {"refused": world.refuse_transfer(corp, world.get_shopper(corp, eid))}


@admin_view({"POST"})
def shopper_join_group(request, data, eid):
    corp = get_corp()
    return world.join_group(corp, world.get_shopper(corp, eid), data.get("config_id"), data.get("state"),
                            data.get("qr_code"))


@admin_view({"POST"})
def shopper_leave_group(request, data, eid):
    corp = get_corp()
    world.leave_group(corp, world.get_shopper(corp, eid), _required(data, "chat_id"))
    return {"ok": True}


@admin_view({"GET"})
def shopper_inbox(request, data, eid):
    corp = get_corp()
    shopper = world.get_shopper(corp, eid)
    clockwork.confirm_due(corp)
    return {"messages": [
        {"id": m.pk, "kind": m.kind, "from_userid": m.from_userid, "text": m.text, "attachments": m.attachments,
         "ref": m.ref, "received_at": m.received_at.timestamp()}
        for m in shopper.inbox.order_by("id")
    ]}


@admin_view({"POST"})
def shopper_open_link(request, data, eid):
    world.get_shopper(get_corp(), eid)
    return open_link(eid, _required(data, "url"), data.get("method", "GET"), data.get("data"))


def open_link(eid: str, url: str, method: str = "GET", data: dict | None = None) -> dict:
    """The shopper's WeChat browser makes a real HTTP request (keeping its cookies, through WeChat OAuth too)."""
    from wecom_sim.oauth import browse

    try:
        response = browse(eid, url, method, data)
    except requests.RequestException as exc:
        raise world.WorldError(f"request failed: {exc}", "unreachable", "url", 502)
    return {"status": response.status_code, "content_type": response.headers.get("Content-Type", ""),
            "body": response.text, "url": response.url}


@admin_view({"POST"})
def groupchats(request, data):
    chat = world.create_groupchat(get_corp(), _required(data, "owner"), data.get("name", ""))
    return {"chat_id": chat.chat_id}


@admin_view({"POST"})
def groupchat_dismiss(request, data, chat_id):
    world.dismiss_group(get_corp(), chat_id)
    return {"ok": True}


@admin_view({"POST"})
def groupchat_add_member(request, data, chat_id):
    world.owner_adds_member(get_corp(), chat_id, _required(data, "external_userid"))
    return {"ok": True}


@admin_view({"POST"})
def groupchat_remove_member(request, data, chat_id):
    world.owner_removes_member(get_corp(), chat_id, _required(data, "external_userid"))
    return {"ok": True}


@admin_view({"POST"})
def groupchat_rename(request, data, chat_id):
    world.owner_renames_group(get_corp(), chat_id, str(_required(data, "name"))[:128])
    return {"ok": True}


# --- mass messages, faults, tokens, stats, callbacks ------------------------------------------


@admin_view({"POST"})
def groupmsg_confirm(request, data, msgid):
    corp = get_corp()
    message = SimMassMessage.objects.filter(corp=corp, msgid=msgid).first()
    if message is None:
        raise world.WorldError("unknown msgid", "not_found", "msgid", 404)
    return {"confirmed": clockwork.confirm_message(corp, message, data.get("userids"))}


INBOX_KINDS = {"mass", "group", "welcome"}


@admin_view({"GET"})
def deliveries(request, data):
    """The exactly-once count: messages that reached shoppers' inboxes, filtered by `ref` (msgids, comma
    separated), `text` (a prefix of the content) and/or `since` (unix seconds, simulated clock); `kind` mass
    (default), group or welcome. duplicates = shoppers holding the same content (text and attachments) more than
    once."""
    from django.db.models import Count

    from wecom_sim.models import SimInboxMessage

    corp = get_corp()
    clockwork.confirm_due(corp)  # senders due to confirm have confirmed (as shopper_inbox does)
    kind = request.GET.get("kind") or "mass"
    if kind not in INBOX_KINDS:
        raise world.WorldError(f"kind must be one of {sorted(INBOX_KINDS)}", "invalid", "kind")
    rows = SimInboxMessage.objects.filter(shopper__corp=corp, kind=kind)
    refs = [r for r in (request.GET.get("ref") or "").split(",") if r.strip()]
    if refs:
        rows = rows.filter(ref__in=[r.strip() for r in refs])
    if request.GET.get("text"):
        rows = rows.filter(text__startswith=request.GET["text"])
    if request.GET.get("since"):
        try:
            since = dt.datetime.fromtimestamp(float(request.GET["since"]), tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise world.WorldError("since must be unix seconds", "invalid", "since")
        rows = rows.filter(received_at__gte=since)
    repeated = (rows.values("shopper_id", "text", "attachments").annotate(n=Count("id")).filter(n__gt=1)
                .values("shopper_id").distinct())
    return {"delivered": rows.count(), "shoppers": rows.values("shopper_id").distinct().count(),
            "duplicates": repeated.count()}


@admin_view({"POST", "DELETE", "GET"})
def faults_view(request, data):
    if request.method == "DELETE":
        faults.clear()
        return {"ok": True}
    if request.method == "GET":
        return {"faults": faults.rules()}
    kind = str(_required(data, "kind"))
    if kind not in faults.KINDS:
        raise world.WorldError(f"kind must be one of {sorted(faults.KINDS)}", "invalid", "kind")
    rate = data.get("rate")
    if rate is not None and not 0 <= float(rate) <= 1:
        raise world.WorldError("rate must be within 0..1", "invalid", "rate")
    return faults.add(str(_required(data, "path")), kind, rate, data.get("count"), data.get("delay_ms"))


@admin_view({"POST"})
def tokens_revoke(request, data):
    return {"revoked": SimAccessToken.objects.filter(revoked=False).update(revoked=True)}


@admin_view({"GET"})
def stats(request, data):
    gettoken_calls, calls = limits.stats()
    return {"gettoken_calls": gettoken_calls, "calls": calls, "callbacks": delivery.counts()}


@admin_view({"POST"})
def callbacks_drain(request, data):
    return delivery.drain(float(data.get("timeout", 10)))


@admin_view({"GET"})
def callbacks_list(request, data):
    rows = SimCallback.objects.order_by("-id")[: int(request.GET.get("limit", 200))]
    return {"callbacks": [{"id": c.pk, "event": c.event, "change_type": c.change_type, "status": c.status,
                           "attempts": c.attempts, "last_status": c.last_status, "last_error": c.last_error,
                           "xml": c.xml} for c in rows]}


@admin_view({"POST"})
def callbacks_verify_url(request, data):
    return delivery.verify_url(get_corp())


# --- scenario, pay ----------------------------------------------------------------------------


@admin_view({"POST"})
def scenario_run(request, data):
    from wecom_sim.scenario import Scenario

    options = {k: v for k, v in data.items() if k not in ("seed", "customers")}
    return Scenario(seed=int(data.get("seed", 1))).run(customers=int(data.get("customers", 10)), **options)


@admin_view({"GET"})
def pay_redpacks(request, data):
    corp = get_corp()
    clockwork.settle_redpacks(corp)
    corp.refresh_from_db()
    return {"merchant_balance_fen": corp.merchant_balance_fen,
            "redpacks": [redpack_json(p) for p in SimRedPack.objects.order_by("id")]}


@admin_view({"POST"})
def pay_redpack_receive(request, data, billno):
    corp = get_corp()
    if not SimRedPack.objects.filter(mch_billno=billno).exists():
        raise world.WorldError("unknown bill number", "not_found", "billno", 404)
    if not SimRedPack.objects.filter(mch_billno=billno, status="SENT").update(status="RECEIVED", rcv_time=now(corp)):
        raise world.WorldError("red packet is not waiting to be received", "invalid_state", "billno", 409)
    return redpack_json(SimRedPack.objects.get(mch_billno=billno))


def index(request: HttpRequest) -> JsonResponse:
    """GET /wecom-sim/admin/: what the control API offers. Lists paths only, so it needs no key; every endpoint it
    lists does."""
    from wecom_sim.urls import admin_urls

    base = request.build_absolute_uri("/wecom-sim/")
    return JsonResponse({
        "auth": "send the header X-Sim-Admin-Key (WECOM_SIM_ADMIN_KEY; `manage.py simulator_info` prints it)",
        "endpoints": [base + str(pattern.pattern) for pattern in admin_urls],
    })
