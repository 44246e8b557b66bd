"""Benchmark `contacts_full_sync`: the CRM's full sync of 100k contacts from the simulator, end to end.

A child process gets a throwaway database (PostgreSQL when the runner uses it, else SQLite) and a separate Redis
db (13), serves the CRM and the simulator on a loopback port (`crm.localstack.ServerThread`, real HTTP between
them) and seeds the simulator's own tables in bulk (`wecom_sim.bulk.seed_contacts`: 50 members, 20% of customers
followed by two, remarks, states, tags; deterministic from the seed). The CRM then mirrors staff and corp tags and:

1. baseline: fetch-only. The same pages as the sync (100 userids, cursor, limit 100) through the same client
   (`crm.wecom.client`) over HTTP, not applied: what WeCom's paging alone costs.
2. `crm.services.sync.full_sync()`: the real run (sync_start + sync_run), each page applied with its checkpoint.

Afterwards the CRM must hold exactly the seeded contacts and every relation with its remark, description, state
and tags, one `added` timeline row per relation, and the contact tags; `met` needs that and the time target.
Frequency limits stay at WeCom's documented values (10,000 calls/min and 150,000/hour per API; the sync makes
about 1,200 calls for 100k contacts): nothing is raised for the bench.

Size: BENCH_SYNC_CONTACTS (default 100000); BENCH_SYNC_STAFF (50); BENCH_SYNC_SEED (1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
CONTACTS = int(os.environ.get("BENCH_SYNC_CONTACTS", 100_000))
STAFF = int(os.environ.get("BENCH_SYNC_STAFF", 50))
SEED = int(os.environ.get("BENCH_SYNC_SEED", 1))
SHARED_RATE = 0.2
BENCH_REDIS_DB = 13
TARGET_SECONDS_PER_100K = 300.0  # the product's "100k contacts in minutes"


def _bench_redis_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        parts = [p for p in parsed.query.split("&") if p and not p.startswith("db=")]
        return urlunparse(parsed._replace(query="&".join([*parts, f"db={BENCH_REDIS_DB}"])))
    return urlunparse(parsed._replace(path=f"/{BENCH_REDIS_DB}"))


# --- the child: everything below runs against the throwaway database ------------------------------------------


def _fetch_only() -> tuple[int, int, float]:
    """Page through batch/get_by_user exactly as sync_run does, applying nothing. -> (items, pages, seconds)."""
    from crm.models.contacts import SyncRun
    from crm.services.sync import PAGE_LIMIT, USERIDS_PER_CALL, sync_start
    from crm.wecom.client import get_client

    client = get_client()
    run = sync_start(SyncRun.Kind.FULL)  # the same staff list the sync will read; deleted right after
    staff = run.checkpoint["staff"]
    run.delete()
    items = pages = 0
    started = time.perf_counter()
    for start in range(0, len(staff), USERIDS_PER_CALL):
        cursor = None
        while True:
            page = client.batch_get_by_user(staff[start : start + USERIDS_PER_CALL], cursor=cursor, limit=PAGE_LIMIT)
            listed = page.get("external_contact_list") or []
            items += sum(1 for it in listed if it.get("follow_info", {}).get("userid"))
            pages += 1
            cursor = page.get("next_cursor") or None
            if not cursor:
                break
    return items, pages, time.perf_counter() - started


def _verify(summary: dict, report: dict) -> list[str]:
    """What the CRM holds against what the simulator holds; -> the differences (empty when exact)."""
    from crm.models import Contact, FollowRelation
    from crm.models.contacts import ContactEvent
    from crm.models.tags import ContactTag
    from wecom_sim.models import SimFriendship

    problems = []
    contacts = Contact.objects.count()
    if contacts != summary["contacts"]:
        problems.append(f"{contacts} contacts, expected {summary['contacts']}")
    sim_rows = SimFriendship.objects.values_list("member__userid", "shopper__external_userid", "remark",
                                                 "description", "state", "tag_ids")
    expected = {(u, e, r, d, s, tuple(sorted(t))) for u, e, r, d, s, t in sim_rows.iterator(chunk_size=5000)}
    crm_rows = FollowRelation.objects.filter(deleted_by_staff_at__isnull=True).values_list(
        "staff__userid", "contact__external_userid", "remark", "description", "state", "wecom_tag_ids")
    held = {(u, e, r, d, s, tuple(sorted(t))) for u, e, r, d, s, t in crm_rows.iterator(chunk_size=5000)}
    if held != expected:
        problems.append(f"relations differ: {len(expected - held)} missing or different, {len(held - expected)} extra")
    added = ContactEvent.objects.filter(kind=ContactEvent.Kind.ADDED).count()
    if added != summary["relations"]:
        problems.append(f"{added} 'added' timeline rows, expected {summary['relations']}")
    tagged = {(e, t) for _, e, _, _, _, tags in expected for t in tags}
    contact_tags = ContactTag.objects.count()
    if contact_tags != len(tagged):
        problems.append(f"{contact_tags} contact tags, expected {len(tagged)}")
    counts = report.get("counts", {})
    if counts.get("contacts_created") != summary["contacts"] or counts.get("follows_created") != summary["relations"]:
        problems.append(f"report counts {counts}")
    return problems


def child() -> dict:
    import django

    django.setup()
    from crm.localstack import wire_settings
    from crm.models.contacts import SyncRun
    from crm.services.staff import staff_sync
    from crm.services.sync import full_sync
    from crm.services.tags import tags_sync_from_wecom
    from wecom_sim.bulk import seed_contacts
    from wecom_sim.corp import get_corp

    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        wire_settings(server.stdout.readline().strip())
        started = time.perf_counter()
        summary = seed_contacts(get_corp(), staff=STAFF, contacts=CONTACTS, seed=SEED, shared_rate=SHARED_RATE)
        seed_seconds = time.perf_counter() - started
        staff_sync()
        tags_sync_from_wecom()

        fetched, fetch_pages, fetch_seconds = _fetch_only()
        started = time.perf_counter()
        report = full_sync()
        sync_seconds = time.perf_counter() - started
        run = SyncRun.objects.get()
        problems = _verify(summary, report)
        if fetched != summary["relations"]:
            problems.append(f"fetch-only saw {fetched} relations, expected {summary['relations']}")
    finally:
        server.terminate()
        server.wait(15)
    return {
        "contacts": summary["contacts"], "relations": summary["relations"], "staff": len(summary["members"]),
        "seed_seconds": seed_seconds, "fetch_seconds": fetch_seconds, "fetch_pages": fetch_pages,
        "sync_seconds": sync_seconds, "sync_pages": run.pages, "problems": problems,
    }


def serve() -> None:
    """The CRM and the simulator on a free loopback port, in a process of its own: WeCom is another machine, so
    its work must not share the syncing process's interpreter lock. Prints the base URL, serves until killed."""
    import django

    django.setup()
    from crm.localstack import ServerThread, wire_settings

    server = ServerThread().start()
    wire_settings(server.url)
    print(server.url, flush=True)
    server.thread.join()


# --- the runner side ---------------------------------------------------------------------------------------------


def run() -> list[dict]:
    import redis
    from django.conf import settings

    from bench.callback_ingest import _BenchDatabase

    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-sync-"))
    database = _BenchDatabase(tmp)
    redis_url = _bench_redis_url(settings.REDIS_URL)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="crm.settings", DATABASE_URL=database.url, REDIS_URL=redis_url,
               VAR_DIR=str(tmp), DEBUG="false", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
               CELERY_TASK_ALWAYS_EAGER="false", PYTHONUNBUFFERED="1")
    log = open(tmp / "bench.log", "wb")  # noqa: SIM115  (closed in finally)
    redis.Redis.from_url(redis_url).flushdb()
    try:
        database.create(env, log)
        out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=log, timeout=3600)
        if out.returncode != 0:
            log.flush()
            raise RuntimeError((tmp / "bench.log").read_text(errors="replace")[-3000:])
        data = json.loads(out.stdout.decode().strip().splitlines()[-1])
    finally:
        log.close()
        database.drop()
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(tmp, ignore_errors=True)
    return _rows(data, "PostgreSQL" if database.postgres else "SQLite")


def _rows(data: dict, engine: str) -> list[dict]:
    n = data["contacts"]
    rate = n / data["sync_seconds"]
    fetch_rate = n / data["fetch_seconds"]
    limit_s = TARGET_SECONDS_PER_100K * n / 100_000
    exact = not data["problems"]
    verdict = "CRM holds exactly the seeded contacts and relations" if exact else "MISMATCH: " + "; ".join(
        data["problems"])
    note = (
        f"{n} contacts, {data['relations']} relations over {data['staff']} staff, {engine}; "
        f"sync {data['sync_pages']} pages in {data['sync_seconds']:.1f} s, "
        f"fetch-only {data['fetch_pages']} pages in {data['fetch_seconds']:.1f} s; "
        f"simulator seeded in {data['seed_seconds']:.1f} s; {verdict}"
    )
    return [
        {
            "name": "contacts_full_sync.contacts_per_s", "value": round(rate, 1), "unit": "contacts/s",
            "baseline": round(fetch_rate, 1), "ratio": round(rate / fetch_rate, 3),
            "target": f">= {100_000 / TARGET_SECONDS_PER_100K:.0f}/s (100k in <= 300 s), CRM exact",
            "met": exact and data["sync_seconds"] <= limit_s, "note": note,
        },
        {
            "name": "contacts_full_sync.seconds", "value": round(data["sync_seconds"], 1), "unit": "s",
            "baseline": round(data["fetch_seconds"], 1),
            "ratio": round(data["sync_seconds"] / data["fetch_seconds"], 3),
            "target": f"<= {limit_s:.0f} s for {n // 1000}k (300 s per 100k)",
            "met": exact and data["sync_seconds"] <= limit_s, "note": note,
        },
    ]


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    sys.path.insert(0, str(ROOT))
    if "--serve" in sys.argv:
        serve()
    elif "--child" in sys.argv:
        print(json.dumps(child()), flush=True)
    else:
        import django

        django.setup()
        for row in run():
            print(row)
