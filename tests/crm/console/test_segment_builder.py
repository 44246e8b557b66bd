"""The console's segment builder (crm/console/segment.py) and the segment list (crm/admin/segments.py): roles and
permissions, create / edit / delete through the form and the saved-segment services, a bad condition shown at the
condition the service names, delete refused while a campaign uses the segment, and the contacts list filtered by a
saved segment through the same filter language."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from crm.models import Campaign, Contact, ContactTag, Segment, Tag, TagGroup
from crm.services import segments as seg_svc

pytestmark = pytest.mark.django_db

NEW = reverse("console:segment-new")


def edit_url(segment: Segment) -> str:
    return reverse("console:segment-edit", args=[segment.pk])


def delete_url(segment: Segment) -> str:
    return reverse("console:segment-delete", args=[segment.pk])


def body(response) -> str:
    return response.content.decode()


@pytest.fixture
def world():
    group = TagGroup.objects.create(name="Level")
    vip, new = Tag.objects.create(group=group, name="VIP"), Tag.objects.create(group=group, name="New")
    contacts = {}
    for name, tags in (("Ann", [vip]), ("Bo", [vip, new]), ("Cy", [new]), ("Di", [])):
        contact = Contact.objects.create(external_userid=f"wm{name}", name=name)
        for tag in tags:
            ContactTag.objects.create(contact=contact, tag=tag)
        contacts[name] = contact
    return {"vip": vip, "new": new, **contacts}


def vip_definition(world) -> dict:
    return {"all": [{"field": "tags", "op": "any", "value": [world["vip"].id]}]}


def saved(world, name: str = "VIPs", definition: dict | None = None) -> Segment:
    from crm.services.saved_segments import segment_create

    return segment_create(name=name, definition=definition or vip_definition(world))


def post_form(client, url: str, *, name: str, definition, description: str = ""):
    raw = definition if isinstance(definition, str) else json.dumps(definition)
    return client.post(url, {"name": name, "description": description, "definition": raw})


def role_client(client, django_user_model, role: str, *, staff: bool = True):
    user = django_user_model.objects.create_user(f"{role}-user", password="pw", is_staff=staff)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


# --- permissions ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("role", "allowed"), [("admin", True), ("marketing", True), ("store_manager", False)])
def test_roles_own_segments_as_the_role_table_says(client, django_user_model, world, role, allowed):
    segment = saved(world)
    c = role_client(client, django_user_model, role)
    expected = 200 if allowed else 403
    assert c.get(NEW).status_code == expected
    assert c.get(edit_url(segment)).status_code == expected
    changelist = c.get(reverse("admin:crm_segment_changelist"))
    assert changelist.status_code == expected
    response = post_form(c, NEW, name="Made by " + role, definition={"all": []})
    assert response.status_code == (302 if allowed else 403)
    assert Segment.objects.filter(name="Made by " + role).exists() is allowed
    # The sidebar lists Segments exactly for those who may open the list.
    dashboard = body(c.get(reverse("admin:index")))
    assert (reverse("admin:crm_segment_changelist") in dashboard) is allowed


def test_a_cashier_sees_nothing(client, django_user_model, world):
    segment = saved(world)
    c = role_client(client, django_user_model, "cashier", staff=False)
    for url in (NEW, edit_url(segment), reverse("admin:crm_segment_changelist")):
        response = c.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert c.post(delete_url(segment)).status_code == 302
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_view_only_sees_the_builder_read_only_and_cannot_save_or_delete(staff_client_factory, world):
    segment = saved(world)
    c = staff_client_factory("crm.view_segment")
    page = body(c.get(edit_url(segment)))
    assert 'data-readonly="true"' in page
    assert 'name="save"' not in page and "segment-delete-form" not in page
    assert post_form(c, edit_url(segment), name="Renamed", definition={"all": []}).status_code == 403
    assert c.post(delete_url(segment)).status_code == 403
    assert Segment.objects.get(pk=segment.pk).name == "VIPs"
    assert staff_client_factory().get(edit_url(segment)).status_code == 403


# --- the builder page -----------------------------------------------------------------------------------------

def test_new_page_carries_the_catalogue_strings_and_endpoints(admin_client, world):
    response = admin_client.get(NEW)
    assert response.status_code == 200
    page = body(response)
    fields = json.loads(re.search(r'<script id="segment-fields" type="application/json">(.*?)</script>', page,
                                  re.S).group(1))
    by_name = {f["name"]: f for f in fields}
    assert {"tags", "consent", "channel", "staff", "added"} <= set(by_name)
    assert {"value": world["vip"].id, "label": str(world["vip"])} in by_name["tags"]["choices"]
    strings = json.loads(re.search(r'<script id="segment-builder-strings" type="application/json">(.*?)</script>',
                                   page, re.S).group(1))
    assert strings["ops"]["any"] and strings["add_condition"]
    assert 'data-preview-url="/api/segments/preview/"' in page
    assert f'data-contact-url="{reverse("console:contact", args=[0]).replace("/0/", "/{id}/")}"' in page
    assert "console/segment_builder.js" in page and "console/segment_builder.css" in page
    assert 'data-readonly="false"' in page


def test_the_page_speaks_chinese(admin_client, world):
    from django.conf import settings

    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    response = admin_client.get(NEW, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 200
    assert '<html lang="zh-hans"' in body(response)


def test_create_through_the_form(admin_client, world):
    definition = {"all": [{"field": "tags", "op": "any", "value": [world["vip"].id]},
                          {"not": {"field": "tags", "op": "any", "value": [world["new"].id]}}]}
    response = post_form(admin_client, NEW, name="VIP not new", description="For the spring sale",
                         definition=definition)
    assert response.status_code == 302
    segment = Segment.objects.get(name="VIP not new")
    assert response["Location"] == edit_url(segment)
    assert segment.description == "For the spring sale"
    assert list(seg_svc.resolve(seg_svc.segment_validate(segment.definition)).values_list("name", flat=True)) == [
        "Ann"]
    page = body(admin_client.get(response["Location"]))
    assert "VIP not new" in page and "saved" in page  # the success message
    # The edit page hands the saved definition to the builder.
    raw = html_lib.unescape(re.search(r'name="definition" value="([^"]*)"', page).group(1))
    assert seg_svc.segment_validate(json.loads(raw)) == seg_svc.segment_validate(definition)


def test_edit_through_the_form(admin_client, world):
    segment = saved(world)
    definition = {"any": [{"field": "tags", "op": "any", "value": [world["new"].id]}]}
    response = post_form(admin_client, edit_url(segment), name="New ones", definition=definition)
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "New ones"
    assert sorted(seg_svc.resolve(seg_svc.segment_validate(segment.definition)).values_list("name", flat=True)) == [
        "Bo", "Cy"]


def test_a_bad_condition_is_shown_inline_at_its_path_and_nothing_is_saved(admin_client, world):
    definition = {"all": [{"field": "tags", "op": "any", "value": [world["vip"].id]},
                          {"field": "tags", "op": "any", "value": [987654]}]}
    response = post_form(admin_client, NEW, name="Broken", definition=definition)
    assert response.status_code == 400
    page = body(response)
    path = html_lib.unescape(re.search(r'data-error-path="([^"]*)"', page).group(1))
    assert path.endswith("all[1].value")
    assert re.search(r'data-error-message="[^"]+"', page)
    # The form comes back with what was typed, for the builder to show the condition again.
    raw = html_lib.unescape(re.search(r'name="definition" value="([^"]*)"', page).group(1))
    assert json.loads(raw) == definition
    assert 'value="Broken"' in page
    assert not Segment.objects.filter(name="Broken").exists()

    unknown = {"all": [{"not": {"field": "shoe_size", "op": "gte", "value": 42}}]}
    page = body(post_form(admin_client, NEW, name="Broken", definition=unknown))
    assert html_lib.unescape(re.search(r'data-error-path="([^"]*)"', page).group(1)).endswith("all[0].not.field")


def test_a_segment_referring_to_itself_is_refused_at_that_condition(admin_client, world):
    segment = saved(world)
    definition = {"all": [{"field": "tags", "op": "any", "value": [world["vip"].id]},
                          {"any": [{"field": "segment", "op": "in", "value": [segment.pk]}]}]}
    response = post_form(admin_client, edit_url(segment), name="VIPs", definition=definition)
    assert response.status_code == 400
    page = body(response)
    # The service names the definition (or the condition): the builder shows it there, or above the tree.
    path = html_lib.unescape(re.search(r'data-error-path="([^"]*)"', page).group(1))
    assert re.fullmatch(r"(segment|definition)(\.all\[1\]\.any\[0\]\.value)?", path), path
    assert re.search(r'data-error-message="[^"]*loop[^"]*"', page)
    segment.refresh_from_db()
    assert segment.definition == seg_svc.segment_validate(vip_definition(world))


def test_bad_json_and_a_missing_name_are_form_errors(admin_client, world):
    response = post_form(admin_client, NEW, name="Bad", definition="{not json")
    assert response.status_code == 400
    assert 'data-testid="definition-error"' in body(response)
    response = post_form(admin_client, NEW, name="", definition={"all": []})
    assert response.status_code == 400
    assert Segment.objects.count() == 0


def test_a_name_taken_is_refused_on_the_name_field(admin_client, world):
    saved(world)
    response = post_form(admin_client, NEW, name="VIPs", definition={"all": []})
    assert response.status_code == 400
    assert Segment.objects.filter(name="VIPs").count() == 1
    assert "data-error-path" not in body(response)  # a name error, not the definition's


# --- delete ---------------------------------------------------------------------------------------------------

def test_delete_an_unused_segment(admin_client, world):
    segment = saved(world)
    response = admin_client.post(delete_url(segment))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:crm_segment_changelist")
    assert not Segment.objects.filter(pk=segment.pk).exists()
    assert admin_client.get(delete_url(segment)).status_code == 405  # POST only


def test_delete_is_refused_while_a_campaign_uses_it_with_a_message_naming_it(admin_client, world):
    segment = saved(world)
    Campaign.objects.create(name="Spring sale", text="Hello", saved_segment=segment)
    response = admin_client.post(delete_url(segment), follow=True)
    assert Segment.objects.filter(pk=segment.pk).exists()
    page = body(response)
    assert response.redirect_chain[-1][0] == edit_url(segment)
    assert "is not deleted" in page and "Spring sale" in page
    assert "Used by 1 campaign" in page
    campaign = Campaign.objects.get(name="Spring sale")
    assert f'href="{reverse("console:campaign-detail", args=[campaign.pk])}"' in page


# --- the list and the contacts filter -------------------------------------------------------------------------

def test_the_list_shows_counts_and_campaigns_and_opens_the_builder(admin_client, world):
    segment = saved(world)
    Campaign.objects.create(name="A", text="x", saved_segment=segment)
    Campaign.objects.create(name="B", text="x", saved_segment=segment)
    changelist = reverse("admin:crm_segment_changelist")
    page = body(admin_client.get(changelist))
    assert "VIPs" in page
    assert re.search(r'field-used_by[^>]*>\s*2\s*<', page)
    assert admin_client.get(reverse("admin:crm_segment_add"))["Location"] == NEW
    assert admin_client.get(reverse("admin:crm_segment_change", args=[segment.pk]))["Location"] == edit_url(segment)
    assert "delete_selected" not in page  # deletion goes through the service, one at a time


def test_the_contacts_list_filters_by_a_saved_segment(admin_client, world):
    segment = saved(world, definition={"all": [{"field": "tags", "op": "any", "value": [world["vip"].id]},
                                               {"not": {"field": "tags", "op": "any", "value": [world["new"].id]}}]})
    changelist = reverse("admin:crm_contact_changelist")
    page = body(admin_client.get(f"{changelist}?segment={segment.pk}"))
    shown = set(re.findall(r">(wm[A-Z][a-z]+)<", page))
    assert shown == {"wmAnn"}
    everyone = set(re.findall(r">(wm[A-Z][a-z]+)<", body(admin_client.get(changelist))))
    assert everyone == {"wmAnn", "wmBo", "wmCy", "wmDi"}
    assert admin_client.get(f"{changelist}?segment=999999").status_code == 200
    assert not re.findall(r">(wm[A-Z][a-z]+)<", body(admin_client.get(f"{changelist}?segment=999999")))


def test_the_segment_filter_needs_the_segment_permission(staff_client_factory, world):
    segment = saved(world)
    c = staff_client_factory("crm.view_contact")
    changelist = reverse("admin:crm_contact_changelist")
    assert segment.name not in body(c.get(changelist))  # not offered
    assert not re.findall(r">(wm[A-Z][a-z]+)<", body(c.get(f"{changelist}?segment={segment.pk}")))
