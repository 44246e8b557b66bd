"""Settings for the private-domain CRM, all read from the environment (see README, "Configuration")."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _
from kombu import Exchange, Queue

from crm import embedded_redis, redisconn
from crm.env import celery_url, env_bool, env_float, env_int, env_list, env_str, redis_py_url
from crm.logconfig import JSON_FORMATTER

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "dev-insecure-change-me-" + "x" * 40)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public base URL of the CRM, used in links sent to customers (card page, red packet page).
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")
# This deployment seeds demo data (`make run`): /readyz then waits for the seed to finish.
DEMO_SEED = env_bool("DEMO_SEED", False)

DJANGO_APPS = [
    "unfold",  # the console theme; before django.contrib.admin so its templates win
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "auditlog",  # who changed what, when and from where (crm.audit)
    "axes",  # console login lockout after repeated failures
]
LOCAL_APPS = [
    "crm.apps.CrmConfig",
    "loyalty.apps.LoyaltyConfig",
    "wecom_sim.apps.WecomSimConfig",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before common (Django's order): staff by their cookie, customers' /m/ pages by the browser.
    "crm.i18n.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "crm.api.guards.PathIntegerGuard",  # a path id no row can have is a 404 before the view
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "crm.audit.AuditMiddleware",  # after authentication: the audit log's actor and remote address
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a locked-out login into its lockout page
]

ROOT_URLCONF = "crm.urls"
WSGI_APPLICATION = "crm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'crm.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default runs web, worker, beat and simulator as separate processes on one file:
    # WAL lets readers proceed during a write, IMMEDIATE takes the write lock up front (no upgrade
    # deadlocks), and the timeout waits for it instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so that worker processes started by tests see the test database.
    # Named per process so that two test runs on one machine never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and Celery -----------------------------------------------------------------------
# REDIS_URL, else the Redis a running `make run` recorded for this var/ (so commands beside it share it).
REDIS_URL = redis_py_url(env_str("REDIS_URL", "") or embedded_redis.recorded_url(VAR_DIR) or embedded_redis.DEFAULT_URL)

CACHES = {
    "default": {
        "BACKEND": "crm.cache.RedisCache",  # Django's, one client per pool (crm/cache.py)
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "crm",
        # Reconnect with backoff through a Redis restart instead of failing the request (crm/redisconn.py).
        "OPTIONS": {"retry": redisconn.retry()},
    }
}

CELERY_BROKER_URL = celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = None  # tasks write their outcome to the database; nothing reads results
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Asia/Shanghai"
CELERY_ENABLE_UTC = True
# At-least-once delivery: a task is acknowledged after it ran, and re-queued if its worker died.
# Every task is idempotent (database unique constraints), so a second run is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task published while Redis restarts waits for it (~8 s) instead of being dropped: most are published on commit,
# after the row that asks for them, and nothing would publish them again. Celery's default gives up after 0.6 s.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 10, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Separate queues so a campaign burst never starves callback handling.
# Each queue gets its own exchange and routing key: with a bare Queue(name) Celery binds every queue to the
# default exchange under the key "default", and a task routed to one queue would land in all four.
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("callbacks", "pushes", "redpackets", "default")
]
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
# A red-packet pool with a budget above this (fen) needs a second admin's approval before it can go live.
REDPACKET_APPROVAL_THRESHOLD_FEN = env_int("REDPACKET_APPROVAL_THRESHOLD_FEN", 100_000)
# How long a live pool may go unreconciled before /healthz/money calls it unwatched (beat reconciles every 2 min).
REDPACKET_RECONCILE_STALE_SECONDS = env_int("REDPACKET_RECONCILE_STALE_SECONDS", 600)
CELERY_TASK_ROUTES = {
    "crm.tasks.callbacks.*": {"queue": "callbacks"},
    "crm.tasks.campaigns.*": {"queue": "pushes"},
    "crm.tasks.planning.*": {"queue": "pushes"},
    "crm.tasks.redpackets.*": {"queue": "redpackets"},
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep the JSON logging configured below
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "campaigns-launch-due": {"task": "crm.tasks.campaigns.launch_due_campaigns", "schedule": 15.0},
    "campaigns-poll-results": {"task": "crm.tasks.campaigns.poll_mass_message_results", "schedule": 20.0},
    "campaigns-expire-unconfirmed": {"task": "crm.tasks.campaigns.expire_mass_messages", "schedule": 300.0},
    "redpackets-refund-expired": {"task": "crm.tasks.redpackets.refund_expired_pools", "schedule": 60.0},
    "redpackets-reconcile": {"task": "crm.tasks.redpackets.reconcile_pools", "schedule": 120.0},
    # Group lucky draws past closes_at: entries close -> seed revealed -> winners -> prizes fulfilled -> announced.
    "draws-close-due": {"task": "crm.tasks.draws.close_due_draws", "schedule": 30.0},
    "callbacks-sweep-unprocessed": {"task": "crm.tasks.callbacks.sweep_unprocessed", "schedule": 60.0},
    "contacts-poll-handovers": {"task": "crm.tasks.contacts.poll_handovers", "schedule": 600.0},
    "contacts-resume-stalled": {"task": "crm.tasks.contacts.resume_stalled", "schedule": 300.0},
    "dashboard-refresh-rollups": {"task": "crm.tasks.rollups.refresh_dashboard_rollups", "schedule": 60.0},
    "loyalty-dashboard-rollups": {"task": "loyalty.tasks.refresh_dashboard_rollups", "schedule": 60.0},
    "contacts-nightly-reconcile": {
        "task": "crm.tasks.contacts.nightly_reconcile",
        "schedule": crontab(hour=3, minute=30),
    },
    # Downgrades happen only here (after each card's grace period); upgrades at each credit.
    "loyalty-evaluate-tiers": {"task": "loyalty.tasks_tiers.evaluate_tiers", "schedule": crontab(hour=4, minute=0)},
    # Segment spend windows (loyalty 0011) moved on after each Shanghai midnight; counts sum the rows until then.
    "loyalty-advance-spend-rollup": {"task": "loyalty.tasks.advance_spend_rollup", "schedule": crontab(minute="*/5")},
    # Lapsed points lots -> one `expire` entry each (idempotent per lot).
    "loyalty-expire-lots": {"task": "loyalty.tasks_lots.expire_lots", "schedule": crontab(minute=5)},
    # Tmall/JD orders earn points under the earning rules (only when LOYALTY_ORDERS_EARN_POINTS; once per order).
    "loyalty-orders-earn": {"task": "loyalty.tasks_earning.orders_earn_task", "schedule": crontab(minute="*/15")},
}
# Task modules outside autodiscovery's `tasks`.
CELERY_IMPORTS = ["loyalty.tasks_tiers", "loyalty.tasks_lots", "loyalty.tasks_earning", "loyalty.tasks_coupons"]
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 5)
WORKER_HEARTBEAT_STALE_SECONDS = env_int("WORKER_HEARTBEAT_STALE_SECONDS", 30)

# --- WeCom ----------------------------------------------------------------------------------
# The CRM talks to WeCom only over HTTP. By default that is the bundled simulator, served on
# SIM_PORT; point WECOM_API_BASE_URL at https://qyapi.weixin.qq.com/cgi-bin for the real thing.
SIM_PORT = env_int("SIM_PORT", 8001)
WECOM_API_BASE_URL = env_str("WECOM_API_BASE_URL", f"http://127.0.0.1:{SIM_PORT}/wecom-sim/cgi-bin").rstrip("/")
WECOM_PAY_BASE_URL = env_str("WECOM_PAY_BASE_URL", f"http://127.0.0.1:{SIM_PORT}/wecom-sim/mch").rstrip("/")
WECOM_CORP_ID = env_str("WECOM_CORP_ID", "ww5f3c0a1d2e4b6c8d")
WECOM_CORP_SECRET = env_str("WECOM_CORP_SECRET", "demo-corp-secret-0123456789abcdefghijklmnopqr")
WECOM_AGENT_ID = env_int("WECOM_AGENT_ID", 1000002)
WECOM_CALLBACK_TOKEN = env_str("WECOM_CALLBACK_TOKEN", "demoCallbackToken2026")
# 43 characters of [A-Za-z0-9], as WeCom's admin console generates.
WECOM_ENCODING_AES_KEY = env_str("WECOM_ENCODING_AES_KEY", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")
WECOM_CALLBACK_URL = env_str("WECOM_CALLBACK_URL", f"{PUBLIC_BASE_URL}/wecom/callback")
WECOM_CALLBACK_MAX_AGE_SECONDS = env_int("WECOM_CALLBACK_MAX_AGE_SECONDS", 300)
WECOM_HTTP_TIMEOUT = env_float("WECOM_HTTP_TIMEOUT", 10.0)
# add_msg_template (10,000 recipients a call) waits longer: a timeout there is ambiguous and costs the send's grace.
# With the retries' backoff it must stay under MASS_SEND_GRACE_SECONDS.
WECOM_MASS_SEND_TIMEOUT = env_float("WECOM_MASS_SEND_TIMEOUT", 60.0)
WECOM_MAX_RETRIES = env_int("WECOM_MAX_RETRIES", 4)
WECOM_RETRY_BASE_DELAY = env_float("WECOM_RETRY_BASE_DELAY", 0.2)  # seconds; backoff doubles, with jitter
WECOM_RETRY_MAX_DELAY = env_float("WECOM_RETRY_MAX_DELAY", 10.0)
# WeCom's limits, held by the CRM itself (crm.services.push_quota, crm.wecom.ratelimit): the receive quota a
# corp admin chose ("month_days", the default; "week7"; "day1") and WeCom's per-corp rate of calls per API.
WECOM_MASS_QUOTA = env_str("WECOM_MASS_QUOTA", "month_days")
WECOM_RATE_PER_MINUTE = env_int("WECOM_RATE_PER_MINUTE", 10000)
# Campaign planning (crm.services.campaign_runs): contacts per chunk, each chunk one transaction.
CAMPAIGN_PLAN_CHUNK = env_int("CAMPAIGN_PLAN_CHUNK", 50000)
# Sending (crm.services.pushes): staff must confirm a mass message within this many hours, else it expires; a
# "sending" claim older than the grace (longer than any add_msg_template call with its retries) is taken over.
MASS_CONFIRM_DEADLINE_HOURS = env_float("MASS_CONFIRM_DEADLINE_HOURS", 24.0)
MASS_SEND_GRACE_SECONDS = env_float("MASS_SEND_GRACE_SECONDS", 120.0)
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 5)
CALLBACK_SWEEP_AFTER_SECONDS = env_int("CALLBACK_SWEEP_AFTER_SECONDS", 120)
# The ingest server answers 503 ("retry") when an event is not committed by then: inside WeCom's 5 s.
CALLBACK_INGEST_TIMEOUT_SECONDS = env_float("CALLBACK_INGEST_TIMEOUT_SECONDS", 4.0)
# Writer threads of the ingest server's red-packet claims (crm.api.claim_ingest). More than one writes a group while
# the previous one waits for its commit, but they take the GIL from the event loop: on 2 CPUs one writer answered
# ~940 claims/s, two ~640 (same run).
CLAIM_INGEST_WRITERS = env_int("CLAIM_INGEST_WRITERS", 1)
WECOM_MCH_ID = env_str("WECOM_MCH_ID", "1900000109")
WECOM_PAY_API_KEY = env_str("WECOM_PAY_API_KEY", "demoPayApiKey0123456789abcdefABCD")
WECOM_PAY_SECRET = env_str("WECOM_PAY_SECRET", "demoPaymentAppSecret0123456789")

# The bundled simulator is mounted (its URLs under /wecom-sim/ and its models in the console) only when this is on:
# make turns it on for run, test, simulate and bench; a production deployment leaves it off (crm.checks warns
# under `check --deploy` when it is on with the default admin key).
WECOM_SIM_ENABLED = env_bool("WECOM_SIM_ENABLED", False)
# The simulator's own settings (it stands for Tencent's side and reads nothing of the CRM's).
WECOM_SIM = {
    "CORP_ID": WECOM_CORP_ID,
    "CORP_SECRET": WECOM_CORP_SECRET,
    "AGENT_ID": WECOM_AGENT_ID,
    "CALLBACK_URL": WECOM_CALLBACK_URL,
    "CALLBACK_TOKEN": WECOM_CALLBACK_TOKEN,
    "ENCODING_AES_KEY": WECOM_ENCODING_AES_KEY,
    "MCH_ID": WECOM_MCH_ID,
    "PAY_API_KEY": WECOM_PAY_API_KEY,
    "PAY_SECRET": WECOM_PAY_SECRET,
    "ADMIN_KEY": env_str("WECOM_SIM_ADMIN_KEY", "sim-admin"),
    "CONFIRM_DELAY_SECONDS": env_float("WECOM_SIM_CONFIRM_DELAY_SECONDS", 1.0),
}

# --- WeChat web OAuth (crm.services.wechat_oauth) ---------------------------------------------
# Customer links: "oauth" (default) = the same link for everyone (customer_links.pool_link/draw_link/card_link), the
# visitor identified by WeChat's web OAuth, so personal campaigns batch like any other; "signed" = a signed link per
# customer (the fallback: one add_msg_template task each). Signed links are accepted in both modes.
CUSTOMER_LINKS = env_str("CUSTOMER_LINKS", "oauth")
if CUSTOMER_LINKS not in ("oauth", "signed"):
    raise ValueError(f"CUSTOMER_LINKS must be oauth or signed, not {CUSTOMER_LINKS!r}")
# The Official Account bound to the corp's open platform account (its unionids are the ones WeCom maps).
WECHAT_OAUTH_APPID = env_str("WECHAT_OAUTH_APPID", "wx5f3c0a1d2e4b6c8e")
WECHAT_OAUTH_SECRET = env_str("WECHAT_OAUTH_SECRET", "demo-oauth-secret-0123456789abcdef")
# The simulator's when it is mounted, else WeChat's own hosts.
_SIM_ROOT = f"http://127.0.0.1:{SIM_PORT}/wecom-sim"
WECHAT_OAUTH_AUTHORIZE_URL = env_str(
    "WECHAT_OAUTH_AUTHORIZE_URL",
    f"{_SIM_ROOT}/connect/oauth2/authorize"
    if WECOM_SIM_ENABLED
    else "https://open.weixin.qq.com/connect/oauth2/authorize",
)
WECHAT_SNS_BASE_URL = env_str(
    "WECHAT_SNS_BASE_URL", f"{_SIM_ROOT}/sns" if WECOM_SIM_ENABLED else "https://api.weixin.qq.com/sns"
).rstrip("/")
WECHAT_OAUTH_SCOPE = env_str("WECHAT_OAUTH_SCOPE", "snsapi_base")  # silent: no consent screen, openid + unionid
WECHAT_OAUTH_STATE_TTL_SECONDS = env_int("WECHAT_OAUTH_STATE_TTL_SECONDS", 600)
# How long a page trusts the identity OAuth put in the session before asking WeChat again (silently).
WECHAT_OAUTH_IDENTITY_MAX_AGE = env_int("WECHAT_OAUTH_IDENTITY_MAX_AGE", 7200)
# Refused callbacks (forged, replayed, stale...) per client IP per minute before it gets 429s; successes never count.
WECHAT_OAUTH_CALLBACK_RATE_PER_MINUTE = env_int("WECHAT_OAUTH_CALLBACK_RATE_PER_MINUTE", 60)
WECOM_SIM["OAUTH_APPID"] = WECHAT_OAUTH_APPID
WECOM_SIM["OAUTH_SECRET"] = WECHAT_OAUTH_SECRET

# --- Customer-facing links and secrets ------------------------------------------------------
# Keyed hash for phone matching and the key that encrypts phones at rest (Fernet, urlsafe base64).
PHONE_HASH_KEY = env_str("PHONE_HASH_KEY", "dev-phone-hash-key")
FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY", "3q2-7vR0n1l7dEbqH8J5sZc8d6QeYw9mK2xTgV4pLfA=")
CARD_QR_TTL_SECONDS = env_int("CARD_QR_TTL_SECONDS", 60)
LOYALTY_FEN_PER_POINT = env_int("LOYALTY_FEN_PER_POINT", 100)  # one point per yuan spent
# Points lots (loyalty.services.lots): each credit expires after "months:N" or at "end_of_next_year" (Shanghai days).
LOYALTY_POINTS_EXPIRY = env_str("LOYALTY_POINTS_EXPIRY", "months:12")
# Returns (loyalty.services.returns): True lets a reversal take the balance below 0; False records a shortfall.
LOYALTY_RETURN_NEGATIVE_BALANCE = env_bool("LOYALTY_RETURN_NEGATIVE_BALANCE", False)
# Segments (crm.services.segments, loyalty.segment_fields): "spend", "last purchase" and "bought" count the
# Tmall/JD order lines imported into crm alongside till receipts.
LOYALTY_SPEND_INCLUDES_ORDERS = env_bool("LOYALTY_SPEND_INCLUDES_ORDERS", True)
# Whether those orders also earn points (loyalty.services.earning.orders_earn); counting towards spend and tiers
# does not depend on it.
LOYALTY_ORDERS_EARN_POINTS = env_bool("LOYALTY_ORDERS_EARN_POINTS", False)
# Till safety (loyalty.services.velocity): a flagged scan is still credited and goes to the review queue.
LOYALTY_VELOCITY_CARD_SCANS = env_int("LOYALTY_VELOCITY_CARD_SCANS", 5)  # this many scans of one card ...
LOYALTY_VELOCITY_WINDOW_MINUTES = env_int("LOYALTY_VELOCITY_WINDOW_MINUTES", 10)  # ... within these minutes
LOYALTY_VELOCITY_MAX_AMOUNT_FEN = env_int("LOYALTY_VELOCITY_MAX_AMOUNT_FEN", 5_000_000)  # 50,000 yuan, any store
LOYALTY_VELOCITY_SAMPLE = env_int("LOYALTY_VELOCITY_SAMPLE", 1000)  # a store's last N receipts give its p99 ...
LOYALTY_VELOCITY_MIN_SAMPLE = env_int("LOYALTY_VELOCITY_MIN_SAMPLE", 200)  # ... once it has this many
LOYALTY_VELOCITY_P99_CACHE_SECONDS = env_int("LOYALTY_VELOCITY_P99_CACHE_SECONDS", 600)
# The till scan's two statements (loyalty.services._scan_statement) as prepared statements on each connection
# (parsed and planned once, not per scan). Turn off behind a transaction-mode pooler that cannot keep them
# (PgBouncer before 1.21); the rest of the project never prepares (Django's default).
LOYALTY_TILL_PREPARED_STATEMENTS = env_bool("LOYALTY_TILL_PREPARED_STATEMENTS", True)
# Till rate limits (DRF throttles on the Redis cache): per till (the cashier's user) and per card.
LOYALTY_TILL_RATE = env_str("LOYALTY_TILL_RATE", "120/min")
LOYALTY_CARD_RATE = env_str("LOYALTY_CARD_RATE", "10/min")
# Red-packet claim POSTs (crm/api/throttles.py): per visitor, and per IP (loose: carrier NAT shares addresses).
REDPACKET_CLAIM_VISITOR_RATE = env_str("REDPACKET_CLAIM_VISITOR_RATE", "10/min")
REDPACKET_CLAIM_IP_RATE = env_str("REDPACKET_CLAIM_IP_RATE", "600/min")
# Customer pages and public endpoints (crm/api/throttles.py throttle_page / page_throttles), per kind of page: a
# window per visitor (the signed link, or the contact OAuth put in the session) and one per IP. A card page polls
# its QR about once a minute; the IP rate is loose on purpose (carrier NAT shares addresses).
PAGE_THROTTLE_KINDS = ("card", "mall", "draw", "gp", "redpacket", "oauth")
PAGE_VISITOR_RATE = env_str("PAGE_VISITOR_RATE", "120/min")
PAGE_IP_RATE = env_str("PAGE_IP_RATE", "1200/min")
# WeChat OAuth's callback has no visitor yet and costs a code exchange each: per IP only, tighter.
OAUTH_CALLBACK_IP_RATE = env_str("OAUTH_CALLBACK_IP_RATE", "300/min")
PAGE_THROTTLE_RATES = {
    **{f"page_{kind}_visitor": PAGE_VISITOR_RATE for kind in PAGE_THROTTLE_KINDS},
    **{f"page_{kind}_ip": PAGE_IP_RATE for kind in PAGE_THROTTLE_KINDS},
    "page_oauth_ip": OAUTH_CALLBACK_IP_RATE,
}

# --- Audit (crm.audit) ----------------------------------------------------------------------
# What staff change in the console and the API. Personal fields are masked: an erased person must not live on
# in the audit log (crm.audit.audit_scrub_contact clears the rest when a contact is erased).
AUDITLOG_INCLUDE_TRACKING_MODELS = (
    {
        "model": "crm.Contact",
        "mask_fields": ["name", "unionid", "avatar", "corp_name", "phone_encrypted", "phone_hash"],
    },
    "crm.Channel",
    "crm.TagGroup",
    "crm.Tag",
    "crm.ContactTag",
    "crm.ConsentRecord",
    "crm.CustomerGroup",
    "crm.GroupJoinWay",
    "crm.Campaign",
    "crm.LuckyDraw",
    "crm.RedPacketPool",
    "crm.Staff",
    "crm.DataSource",
    {"model": "crm.Handover", "m2m_fields": ["takeovers"]},
    "loyalty.Tier",
    "loyalty.Reward",
    {"model": "loyalty.Store", "m2m_fields": ["members"]},
    {"model": "auth.User", "exclude_fields": ["password", "last_login"], "m2m_fields": ["groups", "user_permissions"]},
    {"model": "auth.Group", "m2m_fields": ["permissions"]},
    "django_celery_beat.PeriodicTask",
    "crm.Segment",
)
AUDITLOG_MASK_CALLABLE = "crm.audit.mask_fully"

# --- Auth, API ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/admin/login/"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "crm.api.schema.ApiSchema",  # documents every operation's error answers
    "EXCEPTION_HANDLER": "crm.errors.api_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_RATES": {
        "loyalty_till": LOYALTY_TILL_RATE, "loyalty_card": LOYALTY_CARD_RATE,
        "redpacket_claim_visitor": REDPACKET_CLAIM_VISITOR_RATE, "redpacket_claim_ip": REDPACKET_CLAIM_IP_RATE,
        **PAGE_THROTTLE_RATES,
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Private-domain CRM API",
    "DESCRIPTION": "Company-owned WeCom contacts, loyalty cards, VIP groups, campaigns and red packets.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and Swagger UI are for the brand's own staff: log in at /admin/ first.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Fields of the same name with different choices: one named enum each (otherwise a hash-suffixed name).
    "ENUM_NAME_OVERRIDES": {
        "PrizeKindEnum": "crm.models.draws.GroupDrawPrize.Kind",
        "EarningRuleKindEnum": "loyalty.models.earning.EarningRule.Kind",
        "RedPacketPoolStatusEnum": "crm.models.redpackets.RedPacketPool.Status",
        "JourneyStepActionEnum": "loyalty.models.coupons.JourneyStep.Action",
    },
}

# --- The console (django-unfold over the admin) ---------------------------------------------
UNFOLD = {
    "SITE_TITLE": _("Private-domain CRM"),
    "SITE_HEADER": _("Private-domain CRM"),
    "SITE_SUBHEADER": _("Marketing console"),
    "SITE_SYMBOL": "hub",
    "SITE_URL": "/admin/",
    "DASHBOARD_CALLBACK": "loyalty.dashboard.dashboard_callback",  # crm's panels plus tiers and points
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_LANGUAGES": True,  # English / 简体中文 in the user menu, posted to set_language (remembered in a cookie)
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        # Sections by job, each item gated by the model permission behind it (crm/admin/navigation.py).
        "navigation": "crm.admin.navigation.sidebar_navigation",
    },
}

# --- I18n, time -----------------------------------------------------------------------------
# Staff get their chosen language (cookie from set_language), else their browser's, else English; customer pages
# (/m/) follow the browser and default to Chinese (crm/i18n.py).
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
CUSTOMER_LANGUAGE_CODE = "zh-hans"
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # a staff member's choice outlives the browser session
TIME_ZONE = "Asia/Shanghai"  # shown in Shanghai time; stored in UTC (USE_TZ)
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root before collectstatic has run
# Uploaded files (campaign images): under var/, served to staff through the API, never as public static files.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# A production deployment behind TLS (HTTPS=1): HSTS, secure cookies, HTTP redirected, the proxy's scheme trusted.
# Off by default because `make run` serves plain http on 127.0.0.1, where secure cookies would never be sent back.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # Probes and the WeCom callback reach the pods over plain http inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^readyz", r"^livez"]

# Console login lockout (django-axes): AXES_FAILURE_LIMIT wrong passwords for one username from one address lock
# that pair out for AXES_COOLOFF_MINUTES. By username and address together, so that someone guessing at an admin's
# name cannot lock the admin out everywhere; a success resets the count. Attempts are kept in the database (the
# console lists them under Axes), and an admin unlocks with `manage.py axes_reset_username <name>`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_MINUTES", 15.0) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False  # registered in the console theme instead (crm/admin/security.py)
AXES_LOCKOUT_CALLABLE = "crm.lockout.lockout_response"
AXES_IPWARE_PROXY_COUNT = env_int("AXES_PROXY_COUNT", 0)  # proxies in front whose X-Forwarded-For is trusted
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else [
    "REMOTE_ADDR"]
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 50 * 1024 * 1024)

# --- Logging: one JSON object per line --------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": JSON_FORMATTER,
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}
