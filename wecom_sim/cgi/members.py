"""gettoken and the member directory (user/*, get_follow_user_list)."""

from __future__ import annotations

import datetime as dt
import hashlib

from wecom_sim import ids
from wecom_sim.cgi.base import WecomError, endpoint, page, require
from wecom_sim.corp import now
from wecom_sim.models import SimAccessToken, SimCorp, SimMember


@endpoint("gettoken", method="GET", empty={"access_token": "", "expires_in": 0}, auth=False)
def gettoken(corp: SimCorp, params: dict) -> dict:
    corpid, secret = params.get("corpid"), params.get("corpsecret")
    if not corpid:
        raise WecomError(41002)
    if not secret:
        raise WecomError(41004)
    if corpid != corp.corpid:
        raise WecomError(40013)
    if secret != corp.corpsecret:
        raise WecomError(40001)
    moment = now(corp)
    # The same token within its lifetime; a new one only after expiry or revocation.
    token = (
        SimAccessToken.objects.filter(corp=corp, revoked=False, expires_at__gt=moment).order_by("-expires_at").first()
    )
    if token is None:
        token = SimAccessToken.objects.create(corp=corp, token=ids.access_token(), created_at=moment,
                                              expires_at=moment + dt.timedelta(seconds=corp.token_expires_in))
    return {"access_token": token.token, "expires_in": max(1, int((token.expires_at - moment).total_seconds()))}


def active_member(corp: SimCorp, userid: str, code: int = 60111) -> SimMember:
    member = SimMember.objects.filter(corp=corp, userid__iexact=userid or "", resigned_at__isnull=True).first()
    if member is None:
        raise WecomError(code)
    return member


def member_json(member: SimMember) -> dict:
    return {
        "userid": member.userid,
        "name": member.name,
        "department": member.department,
        "position": member.position,
        "mobile": member.mobile,
        "gender": member.gender,
        "status": 1 if member.activated else 4,
        "main_department": (member.department or [1])[0],
    }


@endpoint("user/get", method="GET")
def user_get(corp: SimCorp, params: dict) -> dict:
    return member_json(active_member(corp, require(params, "userid", 40003)))


@endpoint("user/list_id", empty={"dept_user": [], "next_cursor": ""})
def user_list_id(corp: SimCorp, params: dict) -> dict:
    members = list(SimMember.objects.filter(corp=corp, resigned_at__isnull=True).order_by("id"))
    chunk, cursor = page(members, params, {"api": "list_id"}, 10000, 10000)
    rows = [{"userid": m.userid, "department": d} for m in chunk for d in (m.department or [1])]
    return {"dept_user": rows, "next_cursor": cursor}


@endpoint("user/list", method="GET", empty={"userlist": []})
def user_list(corp: SimCorp, params: dict) -> dict:
    members = SimMember.objects.filter(corp=corp, resigned_at__isnull=True).order_by("id")
    return {"userlist": [member_json(m) for m in members]}


@endpoint("user/simplelist", method="GET", empty={"userlist": []})
def user_simplelist(corp: SimCorp, params: dict) -> dict:
    members = SimMember.objects.filter(corp=corp, resigned_at__isnull=True).order_by("id")
    return {"userlist": [{"userid": m.userid, "name": m.name, "department": m.department} for m in members]}


@endpoint("user/convert_to_openid", empty={"openid": ""})
def user_convert_to_openid(corp: SimCorp, params: dict) -> dict:
    member = active_member(corp, require(params, "userid", 40003), 40003)
    return {"openid": "o" + hashlib.sha1(f"member:{corp.corpid}:{member.userid}".encode()).hexdigest()[:27]}


@endpoint("externalcontact/get_follow_user_list", method="GET", empty={"follow_user": []})
def get_follow_user_list(corp: SimCorp, params: dict) -> dict:
    members = SimMember.objects.filter(corp=corp, resigned_at__isnull=True, has_customer_contact=True)
    return {"follow_user": [m.userid for m in members.order_by("id")]}


@endpoint("message/send", empty={"invaliduser": "", "invalidparty": "", "invalidtag": "", "msgid": ""})
def message_send(corp: SimCorp, params: dict) -> dict:
    from wecom_sim.models import SimAppMessage

    msgtype = require(params, "msgtype")
    if msgtype not in params:
        raise WecomError(40063, f"{msgtype} missing")
    touser = [u for u in str(params.get("touser") or "").split("|") if u]
    if not touser and not params.get("toparty") and not params.get("totag"):
        raise WecomError(40063, "touser missing")
    if touser == ["@all"]:
        valid = [m.userid for m in SimMember.objects.filter(corp=corp, resigned_at__isnull=True)]
        invalid: list[str] = []
    else:
        known = {m.userid.lower(): m.userid for m in
                 SimMember.objects.filter(corp=corp, resigned_at__isnull=True)}
        valid = [known[u.lower()] for u in touser if u.lower() in known]
        invalid = [u for u in touser if u.lower() not in known]
    if not valid:
        raise WecomError(81013, "all touser invalid")
    msgid = ids.random_token(40)
    SimAppMessage.objects.create(corp=corp, msgid=msgid, touser=valid, msgtype=msgtype,
                                 body={msgtype: params.get(msgtype)}, sent_at=now(corp))
    return {"invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "", "unlicenseduser": "",
            "msgid": msgid}


