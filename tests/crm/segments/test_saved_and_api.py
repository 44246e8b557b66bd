"""Saved segments (services, audit), the /api/segments/ endpoints (CRUD, preview, fields; marketing's), and the
contacts list filtered through the same language (?filter, ?segment, and the old parameters)."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from crm.errors import ApplicationError, Conflict
from crm.models import Campaign, Segment
from crm.services import saved_segments
from crm.services.roles import MARKETING, STORE_MANAGER, user_role_set

pytestmark = pytest.mark.django_db


def c(field, op, value, **extra) -> dict:
    return {"field": field, "op": op, "value": value, **extra}


@pytest.fixture
def api(world):
    user = get_user_model().objects.create_user("mkt", password="pw")
    user_role_set(user, MARKETING)
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=user.pk))
    return client


def test_create_update_definition_and_delete(world):
    seg = saved_segments.segment_create(name=" Gold buyers ", definition={"tags": [world.gold.id]},
                                        description="legacy shape")
    assert seg.name == "Gold buyers" and seg.last_count == 2 and seg.counted_at is not None
    assert seg.definition == {"all": [c("tags", "any", [world.gold.id])]}
    assert saved_segments.segment_definition(seg) == seg.definition
    seg = saved_segments.segment_update(seg.pk, definition=c("tier", "in", [world.gold_tier.id]), name="Gold tier")
    assert seg.last_count == 1 and Segment.objects.get().name == "Gold tier"
    with pytest.raises(ApplicationError) as err:
        saved_segments.segment_update(seg.pk, definition={"all": [c("tags", "any", [987654])]})
    assert err.value.field == "definition.all[0].value"
    assert Segment.objects.get().definition == c("tier", "in", [world.gold_tier.id])  # nothing written
    with pytest.raises(ApplicationError) as err:
        saved_segments.segment_create(name="Gold tier", definition={})
    assert err.value.field == "name" and Segment.objects.count() == 1
    with pytest.raises(ApplicationError) as err:
        saved_segments.segment_create(name="  ", definition={})
    assert err.value.field == "name"
    saved_segments.segment_delete(seg.pk)
    assert not Segment.objects.exists()


def test_delete_refused_while_used_and_no_self_reference(world):
    seg = saved_segments.segment_create(name="s", definition={})
    other = saved_segments.segment_create(name="t", definition=c("segment", "in", [seg.pk]))
    with pytest.raises(Conflict):
        saved_segments.segment_delete(seg.pk)  # "t" refers to it
    with pytest.raises(ApplicationError) as err:
        saved_segments.segment_update(seg.pk, definition={"not": c("segment", "in", [other.pk])})
    assert err.value.field == "definition"
    saved_segments.segment_delete(other.pk)
    Campaign.objects.create(name="c", text="hi", saved_segment=seg)
    with pytest.raises(Conflict) as err:
        saved_segments.segment_delete(seg.pk)
    assert err.value.status_code == 409 and Segment.objects.filter(pk=seg.pk).exists()


def test_api_crud_preview_and_fields(api, world):
    created = api.post("/api/segments/", {"name": "VIP or tea", "definition": {"any": [
        c("vip_group", "is", True), c("bought", "any", {"categories": ["tea"]})]}}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["last_count"] == 2 and body["created_by"] == "mkt"
    assert LogEntry.objects.filter(object_pk=str(body["id"]), content_type__model="segment").exists()
    listed = api.get("/api/segments/").json()
    assert [s["name"] for s in listed] == ["VIP or tea"]
    patched = api.patch(f"/api/segments/{body['id']}/", {"description": "d"}, format="json")
    assert patched.status_code == 200 and patched.json()["description"] == "d"
    assert api.get(f"/api/segments/{body['id']}/").json()["definition"]["any"][0]["field"] == "vip_group"
    assert api.get("/api/segments/424242/").status_code == 404

    preview = api.post("/api/segments/preview/", {"definition": {"all": [
        c("segment", "in", body["id"]), {"not": c("consent", "withdrawn", "marketing")}]}}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["count"] == 1 and [s["name"] for s in preview.json()["sample"]] == ["ann"]
    everyone = api.post("/api/segments/preview/", {"definition": {}}, format="json").json()
    assert everyone["count"] == 4 and len(everyone["sample"]) == 4

    fields = api.get("/api/segments/fields/").json()["fields"]
    assert {"tags", "spend", "bought", "consent", "source"} <= {f["name"] for f in fields}

    Campaign.objects.create(name="c", text="hi", saved_segment_id=body["id"])
    assert api.delete(f"/api/segments/{body['id']}/").status_code == 409
    Campaign.objects.all().delete()
    assert api.delete(f"/api/segments/{body['id']}/").status_code == 204


@pytest.mark.parametrize(("definition", "path"), [
    ({"all": [{"field": "spend", "op": "gte", "value": 1, "days": "x"}]}, "definition.all[0].days"),
    ({"any": [{"field": "nope", "op": "in", "value": []}]}, "definition.any[0].field"),
    ({"not": {"field": "tags", "op": "any", "value": [424242]}}, "definition.not.value"),
    ("tags", "definition"),
])
def test_api_bad_definition_is_400_naming_the_path_nothing_written(api, world, definition, path):
    created = api.post("/api/segments/", {"name": "bad", "definition": definition}, format="json")
    assert created.status_code == 400 and created.json()["error"]["field"] == path
    assert not Segment.objects.exists()
    preview = api.post("/api/segments/preview/", {"definition": definition}, format="json")
    assert preview.status_code == 400 and preview.json()["error"]["field"] == path


def test_roles_marketing_owns_segments_store_manager_does_not(api, world):
    manager = get_user_model().objects.create_user("sm", password="pw")
    user_role_set(manager, STORE_MANAGER)
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=manager.pk))
    assert client.get("/api/segments/").status_code == 403
    assert client.post("/api/segments/preview/", {"definition": {}}, format="json").status_code == 403
    assert api.get("/api/segments/").status_code == 200


def _names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(r["name"] for r in response.json()["results"])


def test_contacts_list_filters_in_the_language(api, world):
    url = "/api/contacts/"
    nested = {"all": [c("tags", "any", [world.gold.id]), {"not": c("consent", "withdrawn", "marketing")}]}
    assert _names(api.get(url, {"filter": json.dumps(nested)})) == ["ann"]
    assert _names(api.get(url, {"filter": json.dumps(c("spend", "lte", 10_000))})) == ["cy", "dee"]
    seg = saved_segments.segment_create(name="tmall", definition=c("source", "in", ["tmall", "jd"]))
    assert _names(api.get(url, {"segment": seg.pk})) == ["ben", "cy"]
    # Combined with the old parameters (each one a condition of the same language) and the search box.
    assert _names(api.get(url, {"segment": seg.pk, "channel": world.web_ch.id})) == ["ben"]
    assert _names(api.get(url, {"segment": seg.pk, "q": "cy"})) == ["cy"]
    assert _names(api.get(url, {"tag": [world.gold.id, world.silver.id]})) == ["ann"]
    assert _names(api.get(url, {"staff": "ALICE"})) == ["ann"]
    bad = api.get(url, {"filter": json.dumps({"all": [c("tags", "any", "x")]})})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "filter.all[0].value"
    assert api.get(url, {"filter": "{not json"}).json()["error"]["field"] == "filter"
    assert api.get(url, {"segment": 424242}).json()["error"]["field"] == "segment"
    assert api.get(url, {"staff": "nobody"}).json()["error"]["field"] == "staff"
    csv = api.get("/api/contacts/export.csv", {"filter": json.dumps(c("vip_group", "is", True))})
    assert b"wmann" in b"".join(csv.streaming_content) if csv.status_code == 200 else csv.status_code == 403
