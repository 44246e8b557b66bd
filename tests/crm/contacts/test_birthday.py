"""Contact.birthday: optional, validated (a date, not in the future, not before 1900), editable through the
contacts API (PATCH) and the console's contact page, each change a timeline row."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from crm.errors import ApplicationError
from crm.models import Contact, ContactEvent
from crm.services.contacts import birthday_parse, contact_set_birthday

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(get_user_model().objects.create_superuser("root-bday", password="pw"))
    return client


@pytest.fixture
def mei():
    return Contact.objects.create(external_userid="wmBDAY", name="Mei")


@pytest.mark.parametrize("value", ["1990-13-01", "not a date", "2999-01-01", "1899-12-31", 19900101])
def test_a_bad_birthday_is_refused_naming_the_field(value):
    with pytest.raises(ApplicationError) as refused:
        birthday_parse(value)
    assert refused.value.field == "birthday" and refused.value.status_code == 400


def test_set_and_clear_with_a_timeline_row(mei):
    contact_set_birthday(mei, "1990-05-17")
    mei.refresh_from_db()
    assert mei.birthday == dt.date(1990, 5, 17)
    contact_set_birthday(mei, dt.date(1990, 5, 17))  # unchanged: no second row
    contact_set_birthday(mei, None)
    mei.refresh_from_db()
    assert mei.birthday is None
    kinds = list(ContactEvent.objects.filter(contact=mei).values_list("kind", flat=True))
    assert kinds == ["profile_updated", "profile_updated"]


def test_the_api_reads_and_patches_the_birthday(staff, mei):
    url = f"/api/contacts/{mei.pk}/"
    assert staff.get(url).json()["birthday"] is None
    ok = staff.patch(url, {"birthday": "1991-02-28"}, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["birthday"] == "1991-02-28"
    bad = staff.patch(url, {"birthday": "2999-01-01"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "birthday"
    cleared = staff.patch(url, {"birthday": None}, content_type="application/json")
    assert cleared.status_code == 200 and cleared.json()["birthday"] is None
    assert staff.get("/api/contacts/").json()["results"][0]["birthday"] is None
    paths = staff.get("/api/schema/?format=json").json()["paths"]
    assert "patch" in paths["/api/contacts/{contact_id}/"]


def test_the_api_needs_change_permission(client, mei):
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("viewer-bday", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_contact"))
    client.force_login(user)
    url = f"/api/contacts/{mei.pk}/"
    assert client.get(url).status_code == 200
    assert client.patch(url, {"birthday": "1990-01-01"}, content_type="application/json").status_code == 403
    page = client.get(reverse("console:contact", args=[mei.pk])).content.decode()
    assert 'data-testid="birthday-form"' not in page


def test_the_console_page_shows_and_edits_the_birthday(staff, mei):
    page_url = reverse("console:contact", args=[mei.pk])
    assert 'data-testid="birthday-form"' in staff.get(page_url).content.decode()
    post = reverse("console:contact-birthday", args=[mei.pk])
    response = staff.post(post, {"birthday": "1988-08-08"}, follow=True)
    assert response.status_code == 200 and "1988-08-08" in response.content.decode()
    mei.refresh_from_db()
    assert mei.birthday == dt.date(1988, 8, 8)
    refused = staff.post(post, {"birthday": "2999-01-01"}, follow=True)
    assert "future" in refused.content.decode()
    mei.refresh_from_db()
    assert mei.birthday == dt.date(1988, 8, 8)
