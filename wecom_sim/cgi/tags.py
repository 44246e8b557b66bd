"""Corp customer tags: get_corp_tag_list, add/edit/del_corp_tag, mark_tag."""

from __future__ import annotations

from wecom_sim import ids
from wecom_sim.cgi.base import WecomError, as_int, as_list, endpoint, require
from wecom_sim.cgi.contacts import friendship_or_84061
from wecom_sim.corp import now, ts
from wecom_sim.models import SimCorp, SimTag, SimTagGroup

MAX_TAGS = 3000


def group_json(group: SimTagGroup, tags=None) -> dict:
    tags = group.tags.filter(deleted=False).order_by("-order", "id") if tags is None else tags
    return {
        "group_id": group.group_id,
        "group_name": group.name,
        "create_time": ts(group.create_time),
        "order": group.order,
        "deleted": group.deleted,
        "tag": [{"id": t.tag_id, "name": t.name, "create_time": ts(t.create_time), "order": t.order,
                 "deleted": t.deleted} for t in tags],
    }


@endpoint("externalcontact/get_corp_tag_list", empty={"tag_group": []})
def get_corp_tag_list(corp: SimCorp, params: dict) -> dict:
    group_ids, tag_ids = as_list(params, "group_id"), as_list(params, "tag_id")
    groups = SimTagGroup.objects.filter(corp=corp).order_by("-order", "id")
    if group_ids:  # tag_id is ignored when both are given
        return {"tag_group": [group_json(g, g.tags.order_by("-order", "id")) for g in groups.filter(
            group_id__in=group_ids)]}
    if tag_ids:
        tags = SimTag.objects.filter(group__corp=corp, tag_id__in=tag_ids).select_related("group")
        by_group: dict[int, list] = {}
        for tag in tags:
            by_group.setdefault(tag.group_id, []).append(tag)
        return {"tag_group": [group_json(g, by_group[g.pk]) for g in groups if g.pk in by_group]}
    return {"tag_group": [group_json(g) for g in groups.filter(deleted=False)]}


@endpoint("externalcontact/add_corp_tag", empty={"tag_group": {}})
def add_corp_tag(corp: SimCorp, params: dict) -> dict:
    tags = as_list(params, "tag")
    if not tags or not all(isinstance(t, dict) and t.get("name") for t in tags):
        raise WecomError(40063, "tag missing")
    if any(len(t["name"]) > 30 for t in tags):
        raise WecomError(40058, "tag name too long")
    if SimTag.objects.filter(group__corp=corp, deleted=False).count() + len(tags) > MAX_TAGS:
        raise WecomError(40126)
    moment = now(corp)
    if params.get("group_id"):
        group = SimTagGroup.objects.filter(corp=corp, group_id=params["group_id"], deleted=False).first()
        if group is None:
            raise WecomError(40068)
    else:
        name = require(params, "group_name")
        group = SimTagGroup.objects.filter(corp=corp, name=name, deleted=False).first() or SimTagGroup.objects.create(
            corp=corp, group_id=ids.tag_id(), name=name, order=as_int(params, "order", 0), create_time=moment,
            by_app=True,
        )
    existing = set(group.tags.filter(deleted=False).values_list("name", flat=True))
    if any(t["name"] in existing for t in tags):
        raise WecomError(40071)
    created = [SimTag.objects.create(group=group, tag_id=ids.tag_id(), name=t["name"], order=int(t.get("order") or 0),
                                     create_time=moment, by_app=True) for t in tags]
    return {"tag_group": group_json(group, created)}


@endpoint("externalcontact/edit_corp_tag")
def edit_corp_tag(corp: SimCorp, params: dict) -> dict:
    target_id = require(params, "id")
    target = (SimTag.objects.filter(group__corp=corp, tag_id=target_id, deleted=False).first()
              or SimTagGroup.objects.filter(corp=corp, group_id=target_id, deleted=False).first())
    # An app edits only the tags it created; WeCom answers a console-made one as an invalid id [community].
    if target is None or not target.by_app:
        raise WecomError(40068)
    if params.get("name"):
        if len(params["name"]) > 30:
            raise WecomError(40058, "name too long")
        # "修改后的标签组不能和已有的标签组重名,标签也不能和同一标签组下的其他标签重名"
        siblings = (SimTag.objects.filter(group_id=target.group_id) if isinstance(target, SimTag)
                    else SimTagGroup.objects.filter(corp=corp))
        if siblings.filter(name=params["name"], deleted=False).exclude(pk=target.pk).exists():
            raise WecomError(40071)
        target.name = params["name"]
    if params.get("order") is not None:
        target.order = as_int(params, "order")
    target.save()
    return {}


@endpoint("externalcontact/del_corp_tag")
def del_corp_tag(corp: SimCorp, params: dict) -> dict:
    tag_ids, group_ids = as_list(params, "tag_id"), as_list(params, "group_id")
    if not tag_ids and not group_ids:
        raise WecomError(40063, "tag_id and group_id both empty")
    tags = SimTag.objects.filter(group__corp=corp, tag_id__in=tag_ids, deleted=False)
    groups = SimTagGroup.objects.filter(corp=corp, group_id__in=group_ids, deleted=False)
    if tags.count() != len(set(tag_ids)) or groups.count() != len(set(group_ids)):
        raise WecomError(40068)
    if tags.filter(by_app=False).exists() or groups.filter(by_app=False).exists():
        raise WecomError(40068)  # not made by this app (see edit_corp_tag)
    touched = set(tags.values_list("group_id", flat=True))
    tags.update(deleted=True)
    for group in groups:
        group.tags.update(deleted=True)
    groups.update(deleted=True)
    # A group whose last tag is deleted goes too.
    for group in SimTagGroup.objects.filter(pk__in=touched, deleted=False):
        if not group.tags.filter(deleted=False).exists():
            SimTagGroup.objects.filter(pk=group.pk).update(deleted=True)
    return {}


@endpoint("externalcontact/mark_tag")
def mark_tag(corp: SimCorp, params: dict) -> dict:
    add, remove = as_list(params, "add_tag"), as_list(params, "remove_tag")
    if not add and not remove:
        raise WecomError(40063, "add_tag and remove_tag both empty")
    known = set(SimTag.objects.filter(group__corp=corp, tag_id__in=add + remove, deleted=False)
                .values_list("tag_id", flat=True))
    if set(add + remove) - known:
        raise WecomError(40068)
    friendship = friendship_or_84061(corp, require(params, "userid", 40003), require(params, "external_userid"))
    current = [t for t in friendship.tag_ids if t not in remove]
    current += [t for t in add if t not in current]
    friendship.tag_ids = current
    friendship.save(update_fields=["tag_ids"])
    return {}
