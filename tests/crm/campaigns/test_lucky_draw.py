"""Lucky draw: one draw per customer (a second call returns the first result), never more prizes than stock."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from crm.models import LuckyDrawEntry
from crm.services import campaign_runs
from crm.services import campaigns as svc
from tests.crm.campaigns.conftest import make_contact, make_staff


@pytest.mark.django_db(transaction=True)
def test_concurrent_draws_respect_stock_and_one_per_customer():
    staff = make_staff()
    contacts = [make_contact(staff).id for _ in range(30)]
    campaign = svc.campaign_create(name="draw", text="Try your luck")
    draw = svc.lucky_draw_create(campaign_id=campaign.id, prizes=[{"name": "Mug", "count": 3},
                                                                  {"name": "Bag", "count": 2}])

    def play(contact_id):
        try:
            return svc.lucky_draw_play(draw_id=draw.id, contact_id=contact_id).prize
        finally:
            connection.close()

    with ThreadPoolExecutor(12) as ex:
        results = list(ex.map(play, contacts + contacts))
    entries = LuckyDrawEntry.objects.filter(draw=draw)
    assert entries.count() == 30
    won = Counter(e.prize for e in entries if e.prize)
    assert won == {"Mug": 3, "Bag": 2}  # win rate 100%: all the stock goes, and no more
    # Both taps of a customer saw the same result.
    first, second = results[:30], results[30:]
    assert first == second


@pytest.mark.django_db
def test_zero_win_rate_never_wins():
    contact = make_contact(make_staff())
    campaign = svc.campaign_create(name="nope", text="x")
    draw = svc.lucky_draw_create(campaign_id=campaign.id, prizes=[{"name": "Car", "count": 1}], win_rate_percent=0)
    assert svc.lucky_draw_play(draw_id=draw.id, contact_id=contact.id).prize == ""


@pytest.mark.django_db(transaction=True)
def test_draw_link_in_the_message_draws_once(client, settings):
    from crm.models import MassMessage

    settings.CUSTOMER_LINKS = "signed"  # the customer's own signed link (the OAuth link needs WeChat)

    staff = make_staff()
    contact = make_contact(staff)
    campaign = svc.campaign_create(name="Draw day", text="Try your luck")
    svc.lucky_draw_create(campaign_id=campaign.id, prizes=[{"name": "Mug", "count": 1}])
    campaign_runs.campaign_launch(campaign.id, enqueue=False)
    text = MassMessage.objects.get(campaign=campaign).text
    path = "/m/draw/" + text.split("/m/draw/")[1].strip()
    assert 'method="post"' in client.get(path).content.decode()
    first = client.post(path, HTTP_ACCEPT="application/json").json()
    assert first == {"status": "won", "prize": "Mug", "draw_id": first["draw_id"], "campaign": "Draw day"}
    assert client.post(path, HTTP_ACCEPT="application/json").json()["prize"] == "Mug"
    assert LuckyDrawEntry.objects.filter(contact=contact).count() == 1
    rp_token_path = path.replace("/m/draw/", "/m/rp/")
    assert client.post(rp_token_path).status_code == 403  # a draw token is not a red-packet token
