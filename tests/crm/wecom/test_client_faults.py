"""The client under the simulator's injected faults: retries, backoff bounds, token refresh, one shared token."""

from __future__ import annotations

import threading

import pytest

from crm.wecom.client import ClientConfig, WeComClient, get_client
from crm.wecom.errors import WeComError

PATH = "externalcontact/get_follow_user_list"


@pytest.fixture
def member(sim):
    sim.post("members", {"userid": "zhangsan", "name": "张三"})
    return "zhangsan"


def calls(sim, path=PATH) -> int:
    return sim.stats()["calls"].get(path, 0)


@pytest.mark.parametrize("kind", ["45009", "-1", "5xx"])
def test_transient_faults_are_retried_until_success(sim, member, kind):
    sim.fault(PATH, kind, count=2)
    assert get_client().get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert calls(sim) == 3


def test_timeout_is_retried(sim, member, settings):
    settings.WECOM_HTTP_TIMEOUT = 0.5
    sim.fault(PATH, "timeout", count=1, delay_ms=1500)
    assert get_client().get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert calls(sim) == 2


def test_slow_answer_within_timeout_is_fine(sim, member, settings):
    settings.WECOM_HTTP_TIMEOUT = 2
    sim.fault(PATH, "slow", count=1, delay_ms=300)
    assert get_client().get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert calls(sim) == 1


def test_persistent_rate_limit_gives_up_after_bounded_attempts(sim, member, settings):
    settings.WECOM_MAX_RETRIES = 3
    sim.fault(PATH, "45009")
    with pytest.raises(WeComError) as exc:
        get_client().get_follow_user_list()
    assert exc.value.errcode == 45009 and exc.value.retryable and not exc.value.permanent
    assert "api freq out of limit" in exc.value.errmsg
    assert calls(sim) == 4


def test_real_rate_limit_window(sim, member, settings):
    """The simulator's own sliding window (not an injected fault): past the limit the call fails with 45009."""
    settings.WECOM_MAX_RETRIES = 1
    sim.patch("corp", {"rate_limit_per_minute": 3})
    client = get_client()
    for _ in range(3):
        client.get_follow_user_list()
    with pytest.raises(WeComError) as exc:
        client.get_follow_user_list()
    assert exc.value.errcode == 45009


@pytest.mark.parametrize("kind", ["42001", "40014"])
def test_token_fault_refreshes_once(sim, member, kind):
    client = get_client()
    client.get_follow_user_list()
    sim.fault(PATH, kind, count=1)
    assert client.get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert sim.stats()["gettoken_calls"] == 2


def test_revoked_token_is_replaced(sim, member):
    client = get_client()
    client.get_follow_user_list()
    sim.post("tokens/revoke")
    assert client.get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert sim.stats()["gettoken_calls"] == 2


@pytest.mark.parametrize("errcode", [42001, 40014])
def test_token_expired_early_by_the_server_clock(sim, member, errcode):
    sim.patch("corp", {"expired_token_errcode": errcode})
    client = get_client()
    client.get_follow_user_list()
    sim.post("clock/advance", {"seconds": 7300})  # our Redis TTL still holds the token; WeCom says it expired
    assert client.get_follow_user_list()["follow_user"] == ["zhangsan"]
    assert sim.stats()["gettoken_calls"] == 2


def test_permanent_error_is_not_retried(sim, member):
    with pytest.raises(WeComError) as exc:
        get_client().externalcontact_list("nobody")
    assert exc.value.permanent
    assert calls(sim, "externalcontact/list") == 1


def test_wrong_secret_is_permanent(sim, settings):
    settings.WECOM_CORP_SECRET = "wrong"
    with pytest.raises(WeComError) as exc:
        get_client().get_follow_user_list()
    assert exc.value.errcode == 40001 and exc.value.permanent
    assert sim.stats()["gettoken_calls"] == 1


def test_fifty_workers_starting_at_once_fetch_one_token(sim, member):
    """Fifty independent clients (own HTTP session and Redis connection, like fifty worker processes)."""
    sim.fault("gettoken", "slow", delay_ms=300)  # a slow gettoken widens the race
    config = ClientConfig.from_settings()
    clients = [WeComClient(config) for _ in range(50)]
    barrier = threading.Barrier(50)
    results, errors = [], []

    def work(client):
        try:
            barrier.wait()
            results.append(client.get_follow_user_list()["follow_user"])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert results == [["zhangsan"]] * 50
    assert sim.stats()["gettoken_calls"] == 1
