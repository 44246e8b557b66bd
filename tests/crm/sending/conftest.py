"""Helpers for the sender's tests: a simulated world of many shoppers made in bulk, mirrored into the CRM."""

from __future__ import annotations

import pytest
import requests

from crm.models import Staff
from tests.crm.campaigns.conftest import Sim, admin_client, make_staff, sim  # noqa: F401 (fixtures, re-exported)
from tests.crm.planning.conftest import bulk_contacts

ADD = "externalcontact/add_msg_template"


def world(userids: list[str], per_sender: int) -> tuple[list[Staff], list[str]]:
    """`per_sender` shoppers befriending each member in the simulator (rows made directly, no callbacks) and the
    same contacts, follows and marketing consent in the CRM; (staff, external_userids)."""
    import hashlib

    from wecom_sim import ids
    from wecom_sim import world as sim_world
    from wecom_sim.corp import get_corp, now
    from wecom_sim.models import SimFriendship, SimShopper

    corp = get_corp()
    members = [sim_world.create_member(corp, u) for u in userids]
    # In bulk, as wecom_sim.world.create_shopper and befriend(event=False) make them one by one.
    shoppers = []
    for i in range(per_sender * len(members)):
        eid = ids.external_userid()
        shoppers.append(SimShopper(corp=corp, external_userid=eid, name=f"Shopper {i}",
                                   openid="o" + hashlib.sha1(("openid:" + eid).encode()).hexdigest()[:27]))
    SimShopper.objects.bulk_create(shoppers, batch_size=1000)
    eids = [s.external_userid for s in shoppers]
    pks = dict(SimShopper.objects.filter(external_userid__in=eids).values_list("external_userid", "pk"))
    moment = now(corp)
    SimFriendship.objects.bulk_create(
        [SimFriendship(member=members[i % len(members)], shopper_id=pks[eid], createtime=moment, confirmed=True,
                       oper_userid=eid) for i, eid in enumerate(eids)], batch_size=1000)
    staff = [make_staff(u) for u in userids]
    bulk_contacts(len(eids), staff, eids=eids)  # contact i followed by staff[i % n], as in the simulator
    return staff, eids


def add_calls(simulator: Sim) -> int:
    """add_msg_template calls the simulator has answered (its admin stats)."""
    return int(simulator.call("GET", "stats")["calls"].get(ADD, 0))


def mass_deliveries(simulator: Sim, eids: list[str], text: str) -> dict[str, int]:
    """Per shopper, how many mass messages with this text reached their WeChat: the simulator's delivered
    messages (GET admin/deliveries when the simulator has it, else each shopper's inbox)."""
    response = requests.get(f"{simulator.base}/deliveries", params={"text": text}, headers=simulator.headers,
                            timeout=30)
    rows = response.json().get("deliveries") if response.status_code == 200 else None
    if isinstance(rows, list) and rows and all(isinstance(r, dict) and "external_userid" in r for r in rows):
        counts = dict.fromkeys(eids, 0)
        for row in rows:
            if row["external_userid"] in counts:
                counts[row["external_userid"]] += 1
        return counts
    counts = {}
    for eid in eids:
        inbox = simulator.call("GET", f"shoppers/{eid}/inbox")["messages"]
        counts[eid] = sum(1 for m in inbox if m["kind"] == "mass" and m["text"] == text)
    return counts


@pytest.fixture
def postgres_only():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("concurrent claims need PostgreSQL (DATABASE_URL=postgres://...)")
