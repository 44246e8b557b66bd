"""The bulk seeder: deterministic from its seed, shaped as asked, and served by batch/get_by_user like any world."""

import pytest

from wecom_sim.bulk import seed_contacts
from wecom_sim.corp import get_corp
from wecom_sim.models import SimFriendship, SimMember, SimShopper, SimTag
from wecom_sim.world import WorldError


def _world() -> set[tuple]:
    rows = SimFriendship.objects.values_list("member__userid", "shopper__external_userid", "shopper__name", "remark",
                                             "description", "state", "add_way", "createtime", "tag_ids")
    return {(*row[:-1], tuple(row[-1])) for row in rows}


def test_seed_shape_and_determinism(sim):
    corp = get_corp()
    summary = seed_contacts(corp, staff=6, contacts=300, seed=5, shared_rate=0.25, tags=4)
    assert summary["members"] == [f"staff{i:03d}" for i in range(6)]
    assert SimShopper.objects.count() == 300 and SimMember.objects.count() == 6 and SimTag.objects.count() == 4
    relations = SimFriendship.objects.count()
    assert relations == summary["relations"] == 300 + summary["shared"]
    assert 40 < summary["shared"] < 110  # about a quarter of 300
    holders = set(SimShopper.objects.values_list("friendships__member", flat=True))
    assert len(holders) == 6 and None not in holders  # every member holds customers, every customer a member
    pairs = list(SimFriendship.objects.values_list("member_id", "shopper_id"))
    assert len(set(pairs)) == len(pairs)  # a shared customer has two distinct members
    assert SimFriendship.objects.exclude(remark="").exists() and SimFriendship.objects.exclude(state="").exists()
    assert summary["tagged_relations"] == sum(1 for t in SimFriendship.objects.values_list("tag_ids", flat=True) if t)
    first = _world()

    # The same seed in a fresh world gives the same world; another seed does not.
    SimShopper.objects.all().delete()
    SimTag.objects.all().delete()
    seed_contacts(corp, staff=6, contacts=300, seed=5, shared_rate=0.25, tags=4)
    assert _world() == first
    SimShopper.objects.all().delete()
    seed_contacts(corp, staff=6, contacts=300, seed=6, shared_rate=0.25, tags=4)
    assert _world().isdisjoint(first)


def test_refuses_over_the_customer_cap_and_bad_input(sim):
    sim.configure(friend_limit=10)
    corp = get_corp()
    with pytest.raises(WorldError) as exc:
        seed_contacts(corp, staff=2, contacts=30, seed=1)
    assert exc.value.code == "friend_limit" and exc.value.field == "contacts"
    assert SimShopper.objects.count() == 0 and SimMember.objects.count() == 0  # nothing written
    with pytest.raises(WorldError) as exc:
        seed_contacts(corp, staff=1, contacts=3, seed=1, shared_rate=0.5)
    assert exc.value.field == "staff"


def test_seeded_world_is_listed_by_batch_get_by_user(sim, wx):
    summary = seed_contacts(get_corp(), staff=3, contacts=250, seed=9, shared_rate=0.2, tags=3)
    seen, cursor, pages = [], None, 0
    while True:
        body = {"userid_list": summary["members"], "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = wx.post("externalcontact/batch/get_by_user", body)
        assert page["errcode"] == 0, page
        seen += [(i["follow_info"]["userid"], i["external_contact"]["external_userid"],
                  tuple(sorted(i["follow_info"]["tag_id"]))) for i in page["external_contact_list"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = {(u, e, tuple(t)) for u, e, t in
                SimFriendship.objects.values_list("member__userid", "shopper__external_userid", "tag_ids")}
    assert len(seen) == summary["relations"] and set(seen) == expected
    assert pages == -(-summary["relations"] // 100)
    # Relations come member by member: each member's customers are one contiguous run.
    owners = [u for u, _, _ in seen]
    assert owners == sorted(owners)
