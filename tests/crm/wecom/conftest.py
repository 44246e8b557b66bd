"""Fixtures for the WeCom client and callback tests: the simulator, reset, driven through its admin API."""

from __future__ import annotations

import pytest

from tests.crm.wecom.sim_helpers import SimAdmin


@pytest.fixture
def sim(live_stack, settings):
    """A freshly reset simulator behind the live stack; the client retries fast in tests."""
    settings.WECOM_RETRY_BASE_DELAY = 0.01
    settings.WECOM_RETRY_MAX_DELAY = 0.05
    admin = SimAdmin(live_stack)
    admin.reset()
    yield admin
    try:
        admin.delete("faults")
    except Exception:
        pass
