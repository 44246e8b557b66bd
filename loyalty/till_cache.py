"""What every till scan reads and staff rarely change, kept in process memory: stores by code, the users bound
to each store, the active earning rules, the tier ladder and the tier policy, the till users' permissions and
their API tokens (issue 12, the till hot path).

Invalidation: one version token in Redis (`loyalty:till-config` under the cache's key prefix). Any save or
delete of a Store, EarningRule, Tier, TierPolicy, JourneyStep, Group, Permission, Token or User (but a
sign-in's last_login), and any change of Store.members,
User.groups, User.user_permissions or Group.permissions (the services, the admin and the ORM all send these
signals), replaces the token with a new random one, at once and again after the writer's
transaction commits. `till_config()` reads the token once (one Redis GET) and drops what it holds when the token
changed; each part is then loaded on first use.

Why that is enough across gunicorn workers: every worker compares the token on every scan, so a change is seen
by the first scan that starts after the commit. The bump at once lets the writing process (and a test's single
transaction) see its own change; the bump after commit covers a worker that reloaded between the first bump and
the commit (it would have cached the old rows under the new token). A random token, not a counter, so a token
from a rolled-back test database or a flushed Redis never matches a newer state. Bulk `QuerySet.update()` sends
no signal: code that edits these tables goes through the services (which save the instances) or calls
`till_config_bump()` itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

VERSION_KEY = "loyalty:till-config"


def redis_client():
    """The default cache's own redis-py client, made once per cache connection (Django's RedisCache builds a new
    Redis object, with its ~170 response callbacks, for every call), or None when the cache is not Redis."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        return None
    client = getattr(backend, "_loyalty_client", None)
    if client is None:
        client = backend._loyalty_client = backend.get_client(write=True)
    return client


def _read_version() -> bytes | str:
    client = redis_client()
    key = cache.make_key(VERSION_KEY)
    if client is None:
        return cache.get_or_set(VERSION_KEY, secrets.token_hex(8), timeout=None)
    version = client.get(key)
    if version is None:
        client.set(key, secrets.token_hex(8), nx=True)
        version = client.get(key)
    return version


def _write_version() -> None:
    # A write with Redis unreachable (a `migrate` before Redis is up: post_migrate re-saves the role groups)
    # must not fail: scans cannot run without Redis either, and a Redis that comes back empty makes a new token.
    try:
        client = redis_client()
        if client is None:
            cache.set(VERSION_KEY, secrets.token_hex(8), timeout=None)
        else:
            client.set(cache.make_key(VERSION_KEY), secrets.token_hex(8))
    except RedisError as exc:
        logger.warning("till config version not bumped: %s", exc)


def till_config_bump() -> None:
    """The cached stores, bindings, rules and tiers are out of date: every process reloads them."""
    _write_version()
    _current.parts.clear()
    transaction.on_commit(_write_version)


@dataclass
class TillConfig:
    version: Any
    parts: dict[str, Any] = field(default_factory=dict)

    def _part(self, name: str, load):
        try:
            return self.parts[name]
        except KeyError:
            value = self.parts[name] = load()
            return value

    def store(self, code: str):
        """The store with this code, or None (an unknown code is not cached: a store created later is found)."""
        from loyalty.models import Store

        stores = self._part("stores", dict)
        store = stores.get(code)
        if store is None:
            store = Store.objects.filter(code=code).first()
            if store is not None:
                stores[code] = store
        return store

    def cached_store(self, code: str):
        """The store with this code if already held, else None (no query)."""
        return self.parts.get("stores", {}).get(code)

    def store_member_ids(self, store_id: int) -> frozenset[int]:
        from loyalty.models import Store

        members = self._part("members", dict)
        ids = members.get(store_id)
        if ids is None:
            through = Store.members.through
            ids = members[store_id] = frozenset(
                through.objects.filter(store_id=store_id).values_list("user_id", flat=True)
            )
        return ids

    def earning_rules(self) -> list:
        from loyalty.models import EarningRule

        return self._part("rules", lambda: list(EarningRule.objects.filter(is_active=True).order_by("id")))

    def journey_triggers(self) -> frozenset[str]:
        """The triggers some active journey step listens to (a scan asks whether 'first_purchase' is one)."""
        from loyalty.models import JourneyStep

        return self._part(
            "journeys",
            lambda: frozenset(JourneyStep.objects.filter(is_active=True).values_list("trigger", flat=True)),
        )

    def tiers(self) -> list:
        """The ladder, lowest rank first."""
        from loyalty.models import Tier

        return self._part("tiers", lambda: list(Tier.objects.order_by("rank")))

    def tier(self, tier_id: int):
        """One tier of the ladder by id (a tier deleted meanwhile: read from the database, None if gone)."""
        from loyalty.models import Tier

        by_id = self._part("tiers_by_id", lambda: {t.pk: t for t in self.tiers()})
        found = by_id.get(tier_id)
        return found if found is not None else Tier.objects.filter(pk=tier_id).first()

    def user_perms(self, user) -> frozenset[str]:
        """The user's own and group permissions ("app.codename"), as Django's ModelBackend computes them."""
        from django.contrib.auth.backends import ModelBackend

        perms = self._part("perms", dict)
        found = perms.get(user.pk)
        if found is None:
            backend = ModelBackend()
            found = perms[user.pk] = frozenset(backend.get_user_permissions(user) | backend.get_group_permissions(user))
        return found

    def token_user(self, key: str, load):
        """The (active or not) user a till's API token belongs to, as `load(key)` reads it (a row of the
        user's columns plus the token's created, or None): a token seen once costs no query until the
        configuration changes (a Token saved or deleted, a User saved or deleted bumps it). Unknown keys are
        not kept (a random key costs its query, and holds no memory)."""
        tokens = self._part("tokens", dict)
        row = tokens.get(key)
        if row is None:
            row = load(key)
            if row is not None:
                tokens[key] = row
        return row

    def tier_policy(self):
        """The tier rules; their defaults (unsaved) before the row exists: a scan writes nothing for them (the
        admin's and the API's tier_policy_get still make the row on first read)."""
        from loyalty.models import TierPolicy

        return self._part("policy", lambda: TierPolicy.objects.filter(pk=1).first() or TierPolicy(pk=1))


_current = TillConfig(version=None)
_pinned: ContextVar[TillConfig | None] = ContextVar("till_config_pinned", default=None)


def till_config() -> TillConfig:
    """The cached configuration, checked against the version token (one Redis round trip), or the one pinned
    for the operation in progress (`till_config_pinned`)."""
    global _current
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    version = _read_version()
    if _current.version != version:
        _current = TillConfig(version=version)
    return _current


@contextmanager
def till_config_pinned() -> Iterator[TillConfig]:
    """Check the version once for a whole operation (a scan): its store, binding, rules and tier lookups then
    cost no further round trip. A bump inside it (this process's own write) still empties what it holds."""
    token = _pinned.set(till_config())
    try:
        yield _pinned.get()
    finally:
        _pinned.reset(token)


def till_config_held() -> TillConfig:
    """What this process holds, its version not checked."""
    return _current


@contextmanager
def till_config_pinned_unchecked() -> Iterator[TillConfig]:
    """Pin the configuration this process holds *without* reading the version: the caller must confirm it
    (`till_config_confirm`) before anything it decides counts (the till's scan view does it in its throttles'
    Redis call, and before refusing a permission)."""
    token = _pinned.set(_current)
    try:
        yield _current
    finally:
        _pinned.reset(token)


def till_config_confirm(version=None) -> TillConfig:
    """The pinned configuration checked against `version` (as read from Redis; None: read it now): replaced
    (and re-pinned) when it changed."""
    global _current
    if version is None:
        version = _read_version()
    if _current.version != version:
        _current = TillConfig(version=version)
    if _pinned.get() is not None:
        _pinned.set(_current)
    return _current


def till_user_perms_prime(user) -> None:
    """Give ModelBackend this user's permissions from the cache (its per-request `_perm_cache`), so the till's
    has_perm checks (loyalty.use_till, loyalty.all_stores) cost no query. Active, signed-in users only: for the
    others ModelBackend answers without reading permissions."""
    if user is not None and user.is_authenticated and user.is_active and not hasattr(user, "_perm_cache"):
        user._perm_cache = till_config().user_perms(user)


def _changed(sender, **kwargs) -> None:
    till_config_bump()


def _user_changed(sender, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a console sign-in: nothing a till's token answers changed
    till_config_bump()


def _m2m_changed(sender, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        till_config_bump()


def connect_signals() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from loyalty.models import EarningRule, JourneyStep, Store, Tier, TierPolicy

    for model in (Store, EarningRule, Tier, TierPolicy, JourneyStep, Group, Permission):
        post_save.connect(_changed, sender=model, dispatch_uid=f"till-config-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"till-config-delete-{model.__name__}")
    from rest_framework.authtoken.models import Token

    users = get_user_model()
    # The till's token cache (TillConfig.token_user): a revoked token or a deactivated user is refused from
    # the next scan on, in every process.
    post_save.connect(_changed, sender=Token, dispatch_uid="till-config-save-Token")
    post_delete.connect(_changed, sender=Token, dispatch_uid="till-config-delete-Token")
    post_save.connect(_user_changed, sender=users, dispatch_uid="till-config-save-User")
    post_delete.connect(_changed, sender=users, dispatch_uid="till-config-delete-User")
    throughs = (Store.members.through, users.groups.through, users.user_permissions.through, Group.permissions.through)
    for n, through in enumerate(throughs):
        m2m_changed.connect(_m2m_changed, sender=through, dispatch_uid=f"till-config-m2m-{n}")
