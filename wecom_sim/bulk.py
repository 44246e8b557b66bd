"""Bulk seeding of the simulated world: many members, customers and follow relations in a few INSERTs.

For benchmarks and large tests. It writes the world's own tables directly (no callbacks: the customers were added
long ago, before the CRM was connected) and is deterministic from its seed: ids, names, remarks, states, tags and
add times come from the seed alone, so two runs with the same seed hold the same world."""

from __future__ import annotations

import datetime as dt
import hashlib
import random

from django.db import connection, transaction

from wecom_sim.models import SimCorp, SimFriendship, SimMember, SimShopper, SimTag, SimTagGroup
from wecom_sim.scenario import GIVEN, SURNAMES
from wecom_sim.world import WorldError

BATCH = 2000
# Add times spread over the year before this instant (fixed, so the seed alone decides them).
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPREAD_SECONDS = 365 * 86400


def _digest(*parts: object) -> str:
    return hashlib.sha1(":".join(str(p) for p in parts).encode()).hexdigest()


def _tags(corp: SimCorp, seed: int, count: int) -> list[str]:
    """One corp tag group with `count` tags (reused when the same seed already made them); -> tag ids."""
    group_id = "et" + _digest(corp.corpid, seed, "group")[:30]
    group, _ = SimTagGroup.objects.get_or_create(
        group_id=group_id, defaults={"corp": corp, "name": f"bulk-{seed}", "create_time": EPOCH}
    )
    tags = [
        SimTag(group=group, tag_id="et" + _digest(corp.corpid, seed, "tag", i)[:30], name=f"tag-{i:02d}", order=i,
               create_time=EPOCH)
        for i in range(count)
    ]
    SimTag.objects.bulk_create(tags, ignore_conflicts=True)
    return [t.tag_id for t in tags]


@transaction.atomic
def seed_contacts(corp: SimCorp, *, staff: int = 50, contacts: int = 100_000, seed: int = 1,
                  shared_rate: float = 0.2, states: int = 20, tags: int = 10) -> dict:
    """`staff` members (userids staff000...) with customer contact, `contacts` new customers each followed by one
    member, a `shared_rate` share of them by a second one; remarks, descriptions, contact-way states and 0-2 corp
    tags per relation. Relations are inserted member by member (as WeCom lists them), so a shared customer shows
    up on two different pages of batch/get_by_user.

    Respects the corp's per-member customer cap (WorldError friend_limit, nothing written). -> a summary."""
    if staff < 1 or contacts < 0 or not 0 <= shared_rate <= 1:
        raise WorldError("staff >= 1, contacts >= 0 and 0 <= shared_rate <= 1", "invalid", "staff")
    if shared_rate and staff < 2:
        raise WorldError("a shared customer needs two members", "invalid", "staff")
    rng = random.Random(seed)
    userids = [f"staff{i:03d}" for i in range(staff)]
    SimMember.objects.bulk_create(
        [SimMember(corp=corp, userid=u, name=f"Staff {i:03d}", department=[1]) for i, u in enumerate(userids)],
        ignore_conflicts=True,
    )
    members = {m.userid: m for m in SimMember.objects.filter(corp=corp, userid__in=userids)}
    tag_ids = _tags(corp, seed, tags) if tags else []

    shoppers, relations = [], []  # relations: (member index, shopper index, fields)
    for i in range(contacts):
        digest = _digest(corp.corpid, seed, "shopper", i)
        name = SURNAMES[int(digest[:4], 16) % len(SURNAMES)] + GIVEN[int(digest[4:8], 16) % len(GIVEN)]
        shoppers.append(SimShopper(
            corp=corp, external_userid="wm" + digest[:30], openid="o" + digest[10:37], unionid="ou" + digest[8:36],
            name=name, gender=1 + int(digest[8], 16) % 2,
        ))
        first = rng.randrange(staff)
        owners = [first]
        if rng.random() < shared_rate:
            owners.append((first + 1 + rng.randrange(staff - 1)) % staff)
        for owner in owners:
            relations.append((owner, i, {
                "remark": f"{name}-{i % 1000:03d}" if rng.random() < 0.5 else "",
                "description": f"seed {seed} customer {i}" if rng.random() < 0.2 else "",
                "state": f"store-{rng.randrange(states):03d}" if states and rng.random() < 0.8 else "",
                "add_way": rng.choice((1, 1, 1, 2, 3)),
                "createtime": EPOCH - dt.timedelta(seconds=rng.randrange(SPREAD_SECONDS)),
                "tag_ids": sorted(rng.sample(tag_ids, rng.randint(0, min(2, len(tag_ids))))),
            }))
    per_member = [0] * staff
    for owner, _, _ in relations:
        per_member[owner] += 1
    if per_member and max(per_member) > corp.friend_limit:
        raise WorldError(f"a member would hold {max(per_member)} customers (cap {corp.friend_limit})", "friend_limit",
                         "contacts", 409)

    SimShopper.objects.bulk_create(shoppers, batch_size=BATCH)
    if any(s.pk is None for s in shoppers):  # a backend that returns no ids from a bulk insert
        pks = dict(SimShopper.objects.filter(corp=corp).values_list("external_userid", "pk"))
        for s in shoppers:
            s.pk = pks[s.external_userid]
    relations.sort(key=lambda r: (r[0], r[1]))
    SimFriendship.objects.bulk_create(
        [SimFriendship(member=members[userids[owner]], shopper=shoppers[i], oper_userid=shoppers[i].external_userid,
                       **fields) for owner, i, fields in relations],
        batch_size=BATCH,
    )
    if connection.vendor == "postgresql":
        # Fresh statistics: the planner would otherwise take 100k rows for a handful and plan pages badly.
        with connection.cursor() as cursor:
            for model in (SimMember, SimShopper, SimFriendship):
                cursor.execute(f'ANALYZE "{model._meta.db_table}"')
    return {
        "members": userids,
        "contacts": contacts,
        "relations": len(relations),
        "shared": len(relations) - contacts,
        "tags": tag_ids,
        "tagged_relations": sum(1 for _, _, f in relations if f["tag_ids"]),
        "max_per_member": max(per_member) if per_member else 0,
    }
