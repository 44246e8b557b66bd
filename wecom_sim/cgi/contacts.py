"""External contacts: list, get, batch/get_by_user, remark, convert_to_openid."""

from __future__ import annotations

from wecom_sim.cgi.base import WecomError, as_list, clamp_limit, endpoint, make_cursor, page, read_cursor, require
from wecom_sim.cgi.members import active_member
from wecom_sim.corp import ts
from wecom_sim.models import SimCorp, SimFriendship, SimShopper, SimTag

FOLLOW_PAGE = 500


def shopper_or_40096(corp: SimCorp, external_userid: str) -> SimShopper:
    shopper = SimShopper.objects.filter(corp=corp, external_userid=external_userid or "").first()
    if shopper is None:
        raise WecomError(40096)
    return shopper


def contact_json(shopper: SimShopper) -> dict:
    data = {
        "external_userid": shopper.external_userid,
        "name": shopper.name,
        "type": 1,
        "avatar": shopper.avatar or "http://wx.qlogo.cn/mmhead/sim/0",
        "gender": shopper.gender,
    }
    if shopper.unionid:
        data["unionid"] = shopper.unionid
    return data


def _tags(friendship: SimFriendship) -> list[SimTag]:
    if not friendship.tag_ids:
        return []
    # A deleted corp tag is gone from every customer (the relation's list keeps the id; nobody sees it).
    return list(SimTag.objects.filter(tag_id__in=friendship.tag_ids, deleted=False).select_related("group"))


def _common(friendship: SimFriendship) -> dict:
    return {
        "userid": friendship.member.userid,
        "remark": friendship.remark,
        "description": friendship.description,
        "createtime": ts(friendship.createtime),
        "remark_corp_name": friendship.remark_company,
        "remark_mobiles": friendship.remark_mobiles,
        "oper_userid": friendship.oper_userid,
        "add_way": friendship.add_way,
        "state": friendship.state,
    }


def follow_user_json(friendship: SimFriendship) -> dict:
    tags = [{"group_name": t.group.name, "tag_name": t.name, "tag_id": t.tag_id, "type": 1}
            for t in _tags(friendship)]
    return {**_common(friendship), "tags": tags}


def follow_info_json(friendship: SimFriendship, known_tags: set[str] | None = None) -> dict:
    """known_tags: the existing tag ids among a whole page's relations (one query per page, not per relation)."""
    if known_tags is None:
        return {**_common(friendship), "tag_id": [t.tag_id for t in _tags(friendship)]}
    return {**_common(friendship), "tag_id": [t for t in friendship.tag_ids if t in known_tags]}


def live_friendships():
    """Relations the API still sees: the member has not deleted the customer (one-way ones count) and has confirmed
    a skip-verify add (before that WeCom answers 84061 for the pair)."""
    return SimFriendship.objects.filter(member_deleted=False, confirmed=True,
                                        member__resigned_at__isnull=True).select_related("member", "shopper")


@endpoint("externalcontact/list", method="GET", empty={"external_userid": []})
def contact_list(corp: SimCorp, params: dict) -> dict:
    member = active_member(corp, require(params, "userid", 40003), 40003)
    eids = live_friendships().filter(member=member).order_by("id").values_list("shopper__external_userid", flat=True)
    return {"external_userid": list(eids)}


@endpoint("externalcontact/get", method="GET", empty={"external_contact": {}, "follow_user": []})
def contact_get(corp: SimCorp, params: dict) -> dict:
    shopper = shopper_or_40096(corp, require(params, "external_userid", 40063))
    follows = list(live_friendships().filter(shopper=shopper).order_by("id"))
    if not follows:
        raise WecomError(84061)  # no (confirmed) relation with any member of the corp
    chunk, cursor = page(follows, {"cursor": params.get("cursor"), "limit": FOLLOW_PAGE},
                         {"api": "get", "eid": shopper.external_userid}, FOLLOW_PAGE, FOLLOW_PAGE)
    result = {"external_contact": contact_json(shopper), "follow_user": [follow_user_json(f) for f in chunk]}
    if cursor:
        result["next_cursor"] = cursor
    return result


@endpoint("externalcontact/batch/get_by_user",
          empty={"external_contact_list": [], "next_cursor": "", "fail_info": {"unlicensed_userid_list": []}})
def batch_get_by_user(corp: SimCorp, params: dict) -> dict:
    userids = as_list(params, "userid_list")
    if not userids:
        raise WecomError(40063, "userid_list missing")
    if len(userids) > 100:
        raise WecomError(40058, "userid_list size exceed 100")
    members = [active_member(corp, u, 40003) for u in userids]
    # Keyset paging: the cursor carries the last relation id served, so a page costs the same at 100k as at 0.
    query = {"api": "batch", "users": sorted(userids)}
    limit = clamp_limit(params, 50, 100)
    after = read_cursor(params.get("cursor"), query)
    window = list(live_friendships().filter(member__in=members, id__gt=after).order_by("id")[: limit + 1])
    chunk = window[:limit]
    cursor = make_cursor(chunk[-1].id, query) if len(window) > limit else ""
    tag_ids = {t for f in chunk for t in f.tag_ids}
    known = set(SimTag.objects.filter(tag_id__in=tag_ids, deleted=False).values_list("tag_id", flat=True)
                ) if tag_ids else set()
    return {
        "external_contact_list": [
            {"external_contact": contact_json(f.shopper), "follow_info": follow_info_json(f, known)} for f in chunk
        ],
        "next_cursor": cursor,
        "fail_info": {"unlicensed_userid_list": []},
    }


def friendship_or_84061(corp: SimCorp, userid: str, external_userid: str) -> SimFriendship:
    member = active_member(corp, userid, 40003)
    shopper = shopper_or_40096(corp, external_userid)
    friendship = SimFriendship.objects.filter(member=member, shopper=shopper, member_deleted=False,
                                              confirmed=True).first()
    if friendship is None:
        raise WecomError(84061)
    return friendship


@endpoint("externalcontact/remark")
def remark(corp: SimCorp, params: dict) -> dict:
    friendship = friendship_or_84061(corp, require(params, "userid", 40003), require(params, "external_userid"))
    fields = ("remark", "description", "remark_company", "remark_mobiles", "remark_pic_mediaid")
    if all(params.get(f) in (None, "", []) for f in fields):
        raise WecomError(40063, "nothing to change")
    limits = {"remark": 20, "description": 150, "remark_company": 20}
    for name, limit in limits.items():
        if len(str(params.get(name) or "")) > limit:
            raise WecomError(40058, f"{name} too long")
    if params.get("remark") is not None:
        friendship.remark = params["remark"]
    if params.get("description") is not None:
        friendship.description = params["description"]
    if params.get("remark_company") is not None:
        friendship.remark_company = params["remark_company"]
    if params.get("remark_mobiles") is not None:
        friendship.remark_mobiles = [m for m in as_list(params, "remark_mobiles") if m]
    friendship.save()
    return {}  # changes made through the API send no callback


@endpoint("externalcontact/convert_to_openid", empty={"openid": ""})
def convert_to_openid(corp: SimCorp, params: dict) -> dict:
    eid = require(params, "external_userid")
    if not str(eid).startswith("wm"):
        raise WecomError(40096, "only wm external_userid can be converted")
    return {"openid": shopper_or_40096(corp, eid).openid}
