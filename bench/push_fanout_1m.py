"""Benchmark `push_fanout_1m`: one campaign to 1M customers across 50 senders, end to end, into the simulator over
HTTP.

A throwaway PostgreSQL database gets the real schema and, server-side with generate_series (triggers off), 50 staff,
BENCH_FANOUT_RECIPIENTS (default 1,000,000) contacts each followed by one of them (round robin) with marketing
consent, and the same world in the simulator's tables (members, shoppers, friendships; the corp's per-member
customer cap raised to hold 20k each). Then real processes: the simulator served by gunicorn (BENCH_FANOUT_SIM_WORKERS
workers, 4 threads each), two Celery worker processes on the pushes queue (threads pool, BENCH_FANOUT_CONCURRENCY
each), Redis (BENCH_FANOUT_REDIS_DB, flushed before and after). The simulator's staff confirm on their own at once
(corp confirm_delay_seconds = 0). The bench stands in for beat: it queues `poll_mass_message_results` (and
`launch_due_campaigns`) at the intervals of settings.CELERY_BEAT_SCHEDULE (BENCH_FANOUT_POLL_SECONDS overrides).
WeCom's limits stay at their real values (10,000 calls/min per API, 20,000/min per IP).

Timed from `campaign_launch` (the service "send now" calls) to the last recipient's stored result:
- planned: the run has left `planning` (recipients and batches of 10,000 per sender written);
- sent: every MassMessage created in WeCom (add_msg_template answered, msgid stored);
- confirmed: every sender's task confirmed in the simulator (its results and inbox messages written);
- polled: every MassMessage done (get_groupmsg_send_result read and stored, no recipient pending).
Peak RSS (VmHWM) of each worker is read when planning ends (the planner's peak; the high-water mark is then reset
through /proc/<pid>/clear_refs) and at the end (sending and polling), with the simulator's workers. Checked: the
simulator's admin/deliveries counts exactly one delivery per recipient (duplicates 0) and the CRM holds every
recipient delivered.

Baseline, same run, same processes: one Celery task per recipient (`baseline_send` below: add_msg_template for one
external_userid, then its send result read and stored), BENCH_FANOUT_BASELINE (20,000) recipients, scaled
linearly to the campaign's size. The note also gives the floor WeCom's 10,000 calls/min would put under it.
Targets: <= 120 s end to end, >= 5x the baseline, every process < 300 MB resident, deliveries exact.
Skipped (met false) unless the runner is on PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECIPIENTS = int(os.environ.get("BENCH_FANOUT_RECIPIENTS", 1_000_000))
STAFF = int(os.environ.get("BENCH_FANOUT_STAFF", 50))
BASELINE = int(os.environ.get("BENCH_FANOUT_BASELINE", 20_000))
CONCURRENCY = int(os.environ.get("BENCH_FANOUT_CONCURRENCY", 4))
SIM_WORKERS = int(os.environ.get("BENCH_FANOUT_SIM_WORKERS", 3))
REDIS_DB = int(os.environ.get("BENCH_FANOUT_REDIS_DB", 12))
PORT = int(os.environ.get("BENCH_FANOUT_PORT", 0))  # 0: a free loopback port
TIMEOUT = float(os.environ.get("BENCH_FANOUT_TIMEOUT", 900))
TARGET_SECONDS = 120.0
TARGET_RATIO = 5.0
TARGET_RSS_MB = 300.0
TEXT = "push_fanout_1m: 12.12 members' night"
BASELINE_TEXT = "push_fanout_1m baseline: 12.12 members' night"
VENV_BIN = Path(sys.executable).parent


# --- the baseline: one Celery task per recipient (imported by the workers through --include) ------------------


@shared_task(name="bench.push_fanout_1m.baseline_send", acks_late=True)
def baseline_send(external_userid: str, userid: str) -> int:
    """What a per-recipient design does for each customer: its own add_msg_template (its own task in WeCom, its
    own confirmation), then its own send-result read, stored as one row."""
    from django.db import connection

    from crm.wecom.client import get_client

    client = get_client()
    created = client.add_msg_template(chat_type="single", external_userid=[external_userid], sender=userid,
                                      text={"content": BASELINE_TEXT})
    page = client.get_groupmsg_send_result(created["msgid"], userid, limit=1000)
    status = int((page.get("send_list") or [{}])[0].get("status") or 0)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_fanout_baseline (external_userid, msgid, status) VALUES (%s, %s, %s) "
                       "ON CONFLICT (external_userid) DO NOTHING", [external_userid, created["msgid"], status])
    return status


# --- seeding ----------------------------------------------------------------------------------------------------

_SEED_CRM = [
    "INSERT INTO crm_staff (userid, name, status, has_customer_contact, created_at, updated_at) "
    "SELECT 'staff' || lpad(i::text, 3, '0'), 'Staff ' || i, 'active', true, now(), now() "
    "FROM generate_series(0, %(staff)s - 1) i",
    "INSERT INTO crm_contact (external_userid, unionid, name, type, gender, avatar, corp_name, phone_encrypted, "
    "phone_hash, first_added_at, created_at, updated_at, tag_ids) "
    "SELECT 'wmfan' || lpad(i::text, 8, '0'), '', '', 1, i %% 3, '', '', '', '', "
    "now() - (i %% 700) * interval '1 day', now(), now(), '{}' FROM generate_series(1, %(contacts)s) i",
    # contact i follows staff (i mod 50): the same pairs as the simulator's friendships below.
    "INSERT INTO crm_followrelation (staff_id, contact_id, remark, description, state, add_way, oper_userid, "
    "wecom_tag_ids, added_at, created_at, updated_at) "
    "SELECT st.a[1 + (c.n %% %(staff)s)], c.id, '', '', '', 1, '', '[]'::jsonb, c.first_added_at, now(), now() "
    "FROM (SELECT id, first_added_at, substr(external_userid, 6)::int n FROM crm_contact) c, "
    "(SELECT array_agg(id ORDER BY userid) a FROM crm_staff) st",
    "INSERT INTO crm_consentrecord (contact_id, purpose, version, granted, source, policy_version, recorded_at) "
    "SELECT id, 'marketing', 1, true, 'card_page', '2026-01', now() - interval '1 day' FROM crm_contact",
]
_SEED_SIM = [
    "INSERT INTO wecom_sim_simmember (corp_id, userid, name, department, position, mobile, gender, "
    "has_customer_contact, activated, created_at) SELECT %(corp)s, 'staff' || lpad(i::text, 3, '0'), "
    "'Staff ' || i, '[1]'::jsonb, '', '', '0', true, true, now() FROM generate_series(0, %(staff)s - 1) i",
    "INSERT INTO wecom_sim_simshopper (corp_id, external_userid, openid, unionid, name, gender, phone, avatar, "
    "created_at) SELECT %(corp)s, 'wmfan' || lpad(i::text, 8, '0'), 'ofan' || md5(i::text), '', 'Shopper ' || i, "
    "0, '', '', now() FROM generate_series(1, %(contacts)s) i",
    "INSERT INTO wecom_sim_simfriendship (member_id, shopper_id, remark, description, remark_company, "
    "remark_mobiles, createtime, add_way, state, oper_userid, tag_ids, member_deleted, customer_deleted, confirmed) "
    "SELECT m.a[1 + (s.n %% %(staff)s)], s.id, '', '', '', '[]'::jsonb, now() - interval '30 days', 1, '', "
    "s.external_userid, '[]'::jsonb, false, false, true "
    "FROM (SELECT id, external_userid, substr(external_userid, 6)::int n FROM wecom_sim_simshopper "
    "WHERE corp_id = %(corp)s) s, (SELECT array_agg(id ORDER BY userid) a FROM wecom_sim_simmember "
    "WHERE corp_id = %(corp)s) m",
]


def _seed(connection) -> float:
    from wecom_sim.corp import get_corp
    from wecom_sim.models import SimCorp

    started = time.perf_counter()
    corp = get_corp()
    # WeCom lets an admin raise a member's customer cap (20k and more); the staff confirm at once.
    SimCorp.objects.filter(pk=corp.pk).update(friend_limit=10 * RECIPIENTS, confirm_delay_seconds=0.0,
                                              drop_rate=1.0)
    params = {"staff": STAFF, "contacts": RECIPIENTS, "corp": corp.pk}
    with connection.cursor() as cur:
        cur.execute("SET session_replication_role = replica")  # throwaway database, built consistent
        cur.execute("SET synchronous_commit = off")
        for sql in _SEED_CRM + _SEED_SIM:
            cur.execute(sql, params)
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("CREATE TABLE bench_fanout_baseline (external_userid text PRIMARY KEY, msgid text, status int)")
        cur.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


# --- processes --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    if PORT:
        return PORT
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_hwm(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class _Stack:
    def __init__(self, env: dict, tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115  (closed in stop)
        self.logs.append(log)
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: " + self.tail(name))

    def tail(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-2500:]

    def stop(self) -> None:
        import signal

        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in self.logs:
            log.close()


def _wait_http(url: str, stack: _Stack, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def _wait_workers(redis_client, hostnames: list[str], stack: _Stack, timeout: float = 90) -> None:
    from crm.heartbeat import HEARTBEAT_PREFIX

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check()
        if all(redis_client.exists(HEARTBEAT_PREFIX + h) for h in hostnames):
            return
        time.sleep(0.2)
    raise RuntimeError("the workers did not become ready: " + stack.tail("worker1"))


# --- the run ----------------------------------------------------------------------------------------------------


class _Beat:
    """Stands in for celery beat: the campaign tasks beat runs, at beat's intervals."""

    def __init__(self) -> None:
        from django.conf import settings

        schedule = settings.CELERY_BEAT_SCHEDULE
        override = os.environ.get("BENCH_FANOUT_POLL_SECONDS")
        self.poll_every = float(override) if override else float(schedule["campaigns-poll-results"]["schedule"])
        self.launch_every = float(schedule["campaigns-launch-due"]["schedule"])
        self.next_poll = self.next_launch = time.monotonic()

    def tick(self) -> None:
        from crm.tasks.campaigns import launch_due_campaigns, poll_mass_message_results

        now = time.monotonic()
        if now >= self.next_poll:
            poll_mass_message_results.delay()
            self.next_poll = now + self.poll_every
        if now >= self.next_launch:
            launch_due_campaigns.delay()
            self.next_launch = now + self.launch_every


def _campaign_run(workers: dict[str, int]) -> dict:
    from django.db.models import Count

    from crm.models import CampaignRecipient, CampaignRun, MassMessage
    from crm.services.campaign_runs import campaign_launch
    from crm.services.campaigns import campaign_create
    from wecom_sim.models import SimMassTask

    M = MassMessage.Status
    campaign = campaign_create(name="push_fanout_1m", text=TEXT, segment={})
    beat = _Beat()
    phases: dict[str, float] = {}
    planner_rss: dict[str, float] = {}
    started = time.perf_counter()
    campaign_launch(campaign.id)
    deadline = time.monotonic() + TIMEOUT
    while "polled" not in phases:
        if time.monotonic() > deadline:
            raise RuntimeError(f"campaign not complete after {TIMEOUT} s: phases {phases}")
        elapsed = time.perf_counter() - started
        run = CampaignRun.objects.filter(campaign=campaign).first()
        if "planned" not in phases and run is not None and run.status != CampaignRun.Status.PLANNING:
            phases["planned"] = elapsed
            planner_rss = {name: _hwm_mb(pid) for name, pid in workers.items()}
            for pid in workers.values():
                _reset_hwm(pid)
        if "planned" in phases:
            beat.tick()
            messages = MassMessage.objects.filter(run=run)
            if "sent" not in phases and not messages.filter(status__in=[M.PENDING, M.SENDING]).exists():
                phases["sent"] = elapsed
            if "sent" in phases and "confirmed" not in phases:
                msgids = list(messages.exclude(msgid="").values_list("msgid", flat=True))
                if not SimMassTask.objects.filter(message__msgid__in=msgids, status=0).exists():
                    phases["confirmed"] = elapsed
            if "confirmed" in phases and not messages.exclude(status=M.DONE).exists():
                phases["polled"] = time.perf_counter() - started
        time.sleep(0.25)
    run.refresh_from_db()
    campaign.refresh_from_db()
    statuses = dict(CampaignRecipient.objects.filter(run=run).order_by().values("status").annotate(n=Count("id"))
                    .values_list("status", "n"))
    return {
        "seconds": phases["polled"], "phases": phases, "planner_rss": planner_rss,
        "worker_rss": {name: _hwm_mb(pid) for name, pid in workers.items()},
        "messages": MassMessage.objects.filter(run=run).count(), "statuses": statuses,
        "campaign_status": campaign.status, "run_status": run.status,
    }


def _baseline_run(workers: dict[str, int]) -> dict:
    from django.db import connection

    contacts = [(f"wmfan{i:08d}", f"staff{i % STAFF:03d}") for i in range(1, BASELINE + 1)]
    started = time.perf_counter()
    for eid, userid in contacts:
        baseline_send.apply_async((eid, userid), queue="pushes")
    enqueued = time.perf_counter() - started
    deadline = time.monotonic() + TIMEOUT
    stored = 0
    while stored < BASELINE:
        if time.monotonic() > deadline:
            raise RuntimeError(f"baseline stored {stored} of {BASELINE} after {TIMEOUT} s")
        time.sleep(0.25)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(*) FILTER (WHERE status = 1) FROM bench_fanout_baseline")
            stored, delivered = cursor.fetchone()
    return {"seconds": time.perf_counter() - started, "enqueue_seconds": enqueued, "delivered": delivered,
            "worker_rss": {name: _hwm_mb(pid) for name, pid in workers.items()}}


def _deliveries(base: str, text: str) -> dict:
    import requests
    from django.conf import settings

    response = requests.get(f"{base}/wecom-sim/admin/deliveries", params={"text": text},
                            headers={"X-Sim-Admin-Key": settings.WECOM_SIM["ADMIN_KEY"]}, timeout=300)
    response.raise_for_status()
    return response.json()


def _redis_url(url: str) -> str:
    """The runner's Redis with the bench's own db number (its queues and rate windows are flushed)."""
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        query = "&".join([*(p for p in parsed.query.split("&") if p and not p.startswith("db=")), f"db={REDIS_DB}"])
        return urlunparse(parsed._replace(query=query))
    return urlunparse(parsed._replace(path=f"/{REDIS_DB}"))


def _measure(name: str, tmp: Path) -> dict:
    import redis
    from django.conf import settings
    from django.db import connection

    redis_url = _redis_url(settings.REDIS_URL)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    db = settings.DATABASES["default"]
    auth = (db.get("USER") or "") + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}{'@' if auth else ''}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="crm.settings", DATABASE_URL=url, REDIS_URL=redis_url,
               WECOM_SIM_ENABLED="1", WECOM_API_BASE_URL=f"{base}/wecom-sim/cgi-bin", PUBLIC_BASE_URL=base,
               WECOM_PAY_BASE_URL=f"{base}/wecom-sim/mch", WECOM_CALLBACK_URL=f"{base}/wecom/callback",
               VAR_DIR=str(tmp), DEBUG="false", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
               CELERY_TASK_ALWAYS_EAGER="false", PYTHONUNBUFFERED="1")
    settings.WECOM_API_BASE_URL = env["WECOM_API_BASE_URL"]
    settings.CELERY_BROKER_URL = redis_url
    rclient = redis.Redis.from_url(redis_url)
    rclient.flushdb()
    from crm.celery import app

    app.conf.broker_url = redis_url
    stack = _Stack(env, tmp)
    try:
        seed_seconds = _seed(connection)
        sim = stack.start("simulator", [str(VENV_BIN / "gunicorn"), "crm.wsgi", "-b", f"127.0.0.1:{port}",
                                        "--workers", str(SIM_WORKERS), "--threads", "4", "--timeout", "300",
                                        "-c", "python:crm.gunicorn_conf", "--name", "bench-wecom-sim"])
        hostnames = []
        for i in (1, 2):
            hostname = f"fanout{i}-{os.getpid()}@localhost"
            hostnames.append(hostname)
            stack.start(f"worker{i}", [sys.executable, "-m", "celery", "-A", "crm", "worker", "-Q", "pushes",
                                       "--include", "bench.push_fanout_1m", "--pool", "threads",
                                       "--concurrency", str(CONCURRENCY), "--hostname", hostname,
                                       "--loglevel", "WARNING", "--without-gossip", "--without-mingle"])
        _wait_http(f"{base}/wecom-sim/admin/", stack)
        _wait_workers(rclient, hostnames, stack)
        workers = {f"worker{i}": stack.procs[f"worker{i}"].pid for i in (1, 2)}
        campaign = _campaign_run(workers)
        stack.check()
        sim_workers = _children(sim.pid)
        campaign["sim_rss"] = max((_hwm_mb(p) for p in sim_workers), default=float("nan"))
        campaign["deliveries"] = _deliveries(base, TEXT)
        for pid in workers.values():
            _reset_hwm(pid)
        baseline = _baseline_run(workers) if BASELINE else None
        if baseline:
            baseline["deliveries"] = _deliveries(base, BASELINE_TEXT)
        return {"seed_seconds": seed_seconds, "campaign": campaign, "baseline": baseline,
                "sim_workers": len(sim_workers)}
    finally:
        stack.stop()
        rclient.flushdb()


def _skip(reason: str) -> list[dict]:
    return [{"name": "push_fanout_1m.seconds", "value": None, "unit": "s", "baseline": None, "ratio": None,
             "target": f"<= {TARGET_SECONDS:.0f} s end to end", "met": False, "note": f"skipped: {reason}"}]


def run() -> list[dict]:
    from django.conf import settings
    from django.core.management import call_command

    from bench.segment_count_1m import _admin_connection, _default_db

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        return _skip("needs PostgreSQL (set DATABASE_URL=postgres://...); the runner is on "
                     f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    tmp = Path(tempfile.mkdtemp(prefix="crm-bench-fanout-"))
    # Named after the runner's own database (its prefix is the runner's to use), unique per run.
    name = f"{settings.DATABASES['default']['NAME']}_{os.getpid()}_{secrets.token_hex(3)}"[:63]
    admin = _admin_connection(settings.DATABASES["default"])
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with _default_db(name):
            call_command("migrate", verbosity=0, interactive=False)
            data = _measure(name, tmp)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        if os.environ.get("BENCH_FANOUT_KEEP_LOGS"):
            print(f"[push_fanout_1m] logs kept in {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return _rows(data)


def _rows(data: dict) -> list[dict]:
    c, b = data["campaign"], data["baseline"]
    n = RECIPIENTS
    seconds = c["seconds"]
    rate = n / seconds
    deliveries = c["deliveries"]
    delivered = c["statuses"].get("delivered", 0)
    exact = deliveries == {"delivered": n, "shoppers": n, "duplicates": 0} and delivered == n
    phases = ", ".join(f"{k} at {v:.1f} s" for k, v in c["phases"].items())
    rss = {**{f"planner ({k})": v for k, v in c["planner_rss"].items()}, **c["worker_rss"],
           "simulator worker": c["sim_rss"]}
    if b:
        rss.update({f"{k} (baseline)": v for k, v in b["worker_rss"].items()})
    peak = max(rss.values())
    rss_text = ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items())
    note = (f"{n:,} recipients across {STAFF} senders in {c['messages']} tasks, 2 Celery workers (threads x"
            f"{CONCURRENCY}) on pushes, simulator gunicorn {SIM_WORKERS} workers x 4 threads, PostgreSQL, "
            f"{os.cpu_count()} CPUs; phases from launch: {phases}; deliveries {deliveries}, CRM {c['statuses']}; "
            f"seeded in {data['seed_seconds']:.0f} s")
    rows = [
        {"name": "push_fanout_1m.seconds", "value": round(seconds, 1), "unit": "s", "baseline": None,
         "ratio": None, "target": f"<= {TARGET_SECONDS:.0f} s end to end, every recipient delivered exactly once",
         "met": seconds <= TARGET_SECONDS and exact, "note": note},
        {"name": "push_fanout_1m.peak_rss", "value": round(peak, 1), "unit": "MB", "baseline": None, "ratio": None,
         "target": f"every process < {TARGET_RSS_MB:.0f} MB", "met": peak < TARGET_RSS_MB, "note": rss_text},
    ]
    for phase in ("planned", "sent", "confirmed", "polled"):
        rows.append({"name": f"push_fanout_1m.phase_{phase}", "value": round(c["phases"][phase], 1), "unit": "s",
                     "baseline": None, "ratio": None, "target": "reported (from launch)", "met": True,
                     "note": "seconds from campaign_launch until the phase completed"})
    if b:
        b_rate = BASELINE / b["seconds"]
        floor = n / (10_000 / 60)  # one add_msg_template a recipient under WeCom's 10,000 calls/min
        b_exact = b["deliveries"] == {"delivered": BASELINE, "shoppers": BASELINE, "duplicates": 0}
        ratio = rate / b_rate
        rows.insert(0, {
            "name": "push_fanout_1m.recipients_per_s", "value": round(rate), "unit": "recipients/s",
            "baseline": round(b_rate, 1), "ratio": round(ratio, 1),
            "target": f">= {n / TARGET_SECONDS:,.0f}/s and >= {TARGET_RATIO:.0f}x one task per recipient",
            "met": seconds <= TARGET_SECONDS and ratio >= TARGET_RATIO and exact and b_exact,
            "note": (f"baseline: one Celery task per recipient, {BASELINE:,} recipients in {b['seconds']:.1f} s "
                     f"({b['enqueue_seconds']:.1f} s to enqueue), scaled: {n / b_rate:,.0f} s for {n:,} "
                     f"(WeCom's 10,000 add_msg_template calls/min alone would need >= {floor:,.0f} s); "
                     f"deliveries {b['deliveries']}; " + note),
        })
    return rows


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    os.environ.setdefault("WECOM_SIM_ENABLED", "1")
    import django

    django.setup()
    for row in run():
        print(row)
