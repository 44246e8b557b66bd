"""The WeCom client's token cache, retries and error mapping, against a scriptable stub (exact cues)."""

from __future__ import annotations

import logging
import threading

import pytest

from crm.wecom import client as client_mod
from crm.wecom.client import get_client
from crm.wecom.errors import WeComError
from tests.crm.wecom.stub_server import Stub

BUSY = {"errcode": -1, "errmsg": "system busy"}
FREQ = {"errcode": 45009, "errmsg": "api freq out of limit, hint: [1], from ip: 127.0.0.1, more info at x?e=45009"}


@pytest.fixture
def stub(settings):
    server = Stub()
    settings.WECOM_API_BASE_URL = server.base_url
    settings.WECOM_RETRY_BASE_DELAY = 0.001
    settings.WECOM_RETRY_MAX_DELAY = 0.01
    settings.WECOM_HTTP_TIMEOUT = 2.0
    settings.WECOM_MAX_RETRIES = 3
    yield server
    server.close()


def test_success_returns_the_json_and_sends_the_token_in_the_query(stub):
    client = get_client()
    assert client.post("externalcontact/remark", {"userid": "u", "remark": "好"}) == {
        "errcode": 0, "errmsg": "ok", "path": "externalcontact/remark",
    }  # fmt: skip
    request = stub.calls("externalcontact/remark")[0]
    assert request["query"]["access_token"] == "TOKEN1"
    assert request["body"] == {"userid": "u", "remark": "好"}
    assert client.get("user/get", userid="zhangsan")["path"] == "user/get"
    assert stub.calls("user/get")[0]["query"] == {"userid": "zhangsan", "access_token": "TOKEN1"}
    assert len(stub.calls("gettoken")) == 1


def test_token_is_cached_in_redis_with_a_margin(stub, redis_client, settings):
    get_client().get("user/get", userid="a")
    key = f"crm:wecom:token:{settings.WECOM_CORP_ID}"
    assert redis_client.get(key) == b"TOKEN1"
    assert 7200 - 300 - 5 <= redis_client.ttl(key) <= 7200 - 300
    # A process that starts later (new client object) reuses it.
    client_mod._client = None
    get_client().get("user/get", userid="b")
    assert len(stub.calls("gettoken")) == 1


def test_short_lived_token_keeps_a_positive_ttl(stub, redis_client, settings):
    stub.expires_in = 10
    get_client().get("user/get", userid="a")
    assert 1 <= redis_client.ttl(f"crm:wecom:token:{settings.WECOM_CORP_ID}") <= 8


@pytest.mark.parametrize("code", [40014, 42001])
def test_token_error_refreshes_once_and_repeats_the_call(stub, code):
    client = get_client()
    client.get("user/get", userid="a")
    stub.script("user/get", {"errcode": code, "errmsg": "access_token expired"})
    assert client.get("user/get", userid="a")["errcode"] == 0
    assert len(stub.calls("gettoken")) == 2
    assert stub.calls("user/get")[-1]["query"]["access_token"] == "TOKEN2"


def test_a_fresh_token_refused_again_is_refreshed_again_with_backoff(stub):
    """WeCom answers 42001 now and then even to a token just fetched: the call is not lost for it."""
    stub.script("user/get", {"errcode": 42001, "errmsg": "x"}, {"errcode": 42001, "errmsg": "x"})
    assert get_client().get("user/get", userid="a")["errcode"] == 0
    assert len(stub.calls("user/get")) == 3 and len(stub.calls("gettoken")) == 3


def test_token_errors_without_end_are_raised_after_the_retry_budget(stub):
    stub.script("user/get", *[{"errcode": 40014, "errmsg": "x"}] * 6)
    with pytest.raises(WeComError) as exc:
        get_client().get("user/get", userid="a")
    assert exc.value.errcode == 40014
    assert len(stub.calls("user/get")) == 3 + 2  # the free refresh, then WECOM_MAX_RETRIES more


def test_gettoken_answering_a_token_error_is_retried(stub):
    stub.script("gettoken", {"errcode": 42001, "errmsg": "x"})
    assert get_client().get("user/get", userid="a")["errcode"] == 0
    assert len(stub.calls("gettoken")) == 2


def test_invalidation_never_drops_a_token_another_worker_just_refreshed(stub, redis_client, settings):
    client = get_client()
    key = f"crm:wecom:token:{settings.WECOM_CORP_ID}"
    redis_client.set(key, "FRESH")
    client.invalidate_token("STALE")
    assert redis_client.get(key) == b"FRESH"
    client.invalidate_token("FRESH")
    assert redis_client.get(key) is None


@pytest.mark.parametrize(
    "failure",
    [BUSY, FREQ, {"errcode": 45033, "errmsg": "api concurrent out of limit"}, (502, b"<html>bad gateway</html>"),
     (503, b""), (200, b"<html>not json</html>")],
)  # fmt: skip
def test_transient_failures_are_retried_with_backoff(stub, failure):
    stub.script("externalcontact/mark_tag", failure, failure)
    assert get_client().mark_tag("u", "wm1", add_tag=["et1"])["errcode"] == 0
    assert len(stub.calls("externalcontact/mark_tag")) == 3


def test_retries_are_bounded_and_the_error_says_retryable(stub, settings):
    stub.script("externalcontact/mark_tag", *[BUSY] * 10)
    with pytest.raises(WeComError) as exc:
        get_client().mark_tag("u", "wm1", add_tag=["et1"])
    assert exc.value.errcode == -1 and exc.value.retryable and not exc.value.permanent
    assert exc.value.path == "externalcontact/mark_tag"
    assert len(stub.calls("externalcontact/mark_tag")) == settings.WECOM_MAX_RETRIES + 1


@pytest.mark.parametrize("code", [40003, 84061, 41051, 40096, 48002, 60020])
def test_permanent_errors_are_raised_at_once(stub, code):
    stub.script("externalcontact/remark", {"errcode": code, "errmsg": "nope", "external_userid": []})
    with pytest.raises(WeComError) as exc:
        get_client().remark("u", "wm1", remark="x")
    assert exc.value.errcode == code and exc.value.errmsg == "nope"
    assert exc.value.permanent
    assert len(stub.calls("externalcontact/remark")) == 1


@pytest.mark.parametrize("code", [41063, 41096])
def test_caller_scheduled_retryables_are_raised_at_once_marked_retryable(stub, code):
    stub.script("externalcontact/get_groupmsg_task", {"errcode": code, "errmsg": "later"})
    with pytest.raises(WeComError) as exc:
        get_client().get_groupmsg_task("msgX")
    assert exc.value.retryable
    assert len(stub.calls("externalcontact/get_groupmsg_task")) == 1


def test_timeout_is_retried_then_raised_without_the_token(stub, settings, caplog):
    settings.WECOM_HTTP_TIMEOUT = 0.2
    settings.WECOM_MAX_RETRIES = 1
    stub.script("user/get", (200, {"errcode": 0}, 0.6), (200, {"errcode": 0}, 0.6))
    with caplog.at_level(logging.INFO, logger="crm.wecom.client"), pytest.raises(WeComError) as exc:
        get_client().user_get("a")
    assert exc.value.errcode == -1 and exc.value.retryable
    assert "timeout" in exc.value.errmsg
    assert "TOKEN1" not in str(exc.value)
    assert len(stub.calls("user/get")) == 2


def test_timeout_then_success(stub, settings):
    settings.WECOM_HTTP_TIMEOUT = 0.2
    stub.script("user/get", (200, {"errcode": 0}, 0.6))
    assert get_client().user_get("a")["errcode"] == 0


def test_connection_refused_is_transport_error_without_secrets(settings):
    settings.WECOM_API_BASE_URL = "http://127.0.0.1:9/cgi-bin"
    settings.WECOM_RETRY_BASE_DELAY = 0.001
    settings.WECOM_MAX_RETRIES = 1
    with pytest.raises(WeComError) as exc:
        get_client().user_get("a")
    assert exc.value.errcode == -1 and exc.value.retryable
    assert exc.value.path == "gettoken"
    assert settings.WECOM_CORP_SECRET not in str(exc.value)


def test_http_404_is_permanent(stub):
    stub.script("user/get", (404, b"<h1>Not Found</h1>"))
    with pytest.raises(WeComError) as exc:
        get_client().user_get("a")
    assert exc.value.permanent and "404" in exc.value.errmsg


def test_bad_credentials_are_permanent(stub):
    stub.script("gettoken", {"errcode": 40001, "errmsg": "invalid secret"})
    with pytest.raises(WeComError) as exc:
        get_client().user_get("a")
    assert exc.value.errcode == 40001 and exc.value.permanent and exc.value.path == "gettoken"


def test_every_call_is_logged_without_token_or_secret(stub, settings, caplog):
    stub.script("externalcontact/mark_tag", FREQ)
    with caplog.at_level(logging.INFO, logger="crm.wecom.client"):
        get_client().mark_tag("u", "wm1", add_tag=["et1"])
    records = [r for r in caplog.records if r.name == "crm.wecom.client"]
    calls = [(r.endpoint, r.errcode, r.attempt) for r in records]
    assert calls == [("gettoken", 0, 1), ("externalcontact/mark_tag", 45009, 1), ("externalcontact/mark_tag", 0, 2)]
    assert all(isinstance(r.duration_ms, float) for r in records)
    dumped = " ".join(str(r.__dict__) for r in records)
    assert "TOKEN1" not in dumped and settings.WECOM_CORP_SECRET not in dumped


def test_fifty_threads_fetch_one_token(stub):
    stub.token_delay = 0.3  # a slow gettoken widens the race
    client = get_client()
    barrier = threading.Barrier(50)
    tokens, errors = [], []

    def work():
        try:
            barrier.wait()
            tokens.append(client.access_token())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(tokens) == {"TOKEN1"} and len(tokens) == 50
    assert len(stub.calls("gettoken")) == 1


def test_get_client_follows_settings(stub, settings):
    first = get_client()
    assert get_client() is first
    settings.WECOM_HTTP_TIMEOUT = 3.5
    second = get_client()
    assert second is not first and second.config.timeout == 3.5
    assert settings.WECOM_CORP_SECRET not in repr(second.config)


def test_iter_pages_follows_next_cursor(stub):
    stub.script(
        "externalcontact/groupchat/list",
        {"errcode": 0, "group_chat_list": [{"chat_id": "wr1"}], "next_cursor": "c1"},
        {"errcode": 0, "group_chat_list": [{"chat_id": "wr2"}], "next_cursor": "c2"},
        {"errcode": 0, "group_chat_list": [{"chat_id": "wr3"}], "next_cursor": ""},
    )
    chats = [c["chat_id"] for c in get_client().iter_groupchat_list(status_filter=0)]
    assert chats == ["wr1", "wr2", "wr3"]
    bodies = [c["body"] for c in stub.calls("externalcontact/groupchat/list")]
    assert [b.get("cursor") for b in bodies] == [None, "c1", "c2"]
    assert all(b["limit"] == 1000 and b["status_filter"] == 0 for b in bodies)


def test_iter_batch_get_by_user_chunks_userids_and_collects_unlicensed(stub):
    userids = [f"u{i}" for i in range(150)]
    stub.script(
        "externalcontact/batch/get_by_user",
        {"errcode": 0, "external_contact_list": [{"n": 1}], "next_cursor": "k",
         "fail_info": {"unlicensed_userid_list": ["u3"]}},
        {"errcode": 0, "external_contact_list": [{"n": 2}], "next_cursor": ""},
        {"errcode": 0, "external_contact_list": [{"n": 3}], "next_cursor": ""},
    )  # fmt: skip
    unlicensed: list[str] = []
    items = list(get_client().iter_batch_get_by_user(userids, unlicensed=unlicensed))
    assert [i["n"] for i in items] == [1, 2, 3]
    assert unlicensed == ["u3"]
    bodies = [c["body"] for c in stub.calls("externalcontact/batch/get_by_user")]
    assert [len(b["userid_list"]) for b in bodies] == [100, 100, 50]
    assert bodies[1]["cursor"] == "k" and "cursor" not in bodies[2]


def test_error_pickles_for_celery():
    import pickle

    err = pickle.loads(pickle.dumps(WeComError(45009, "freq", "x/y", True)))
    assert (err.errcode, err.errmsg, err.path, err.retryable) == (45009, "freq", "x/y", True)


def test_redis_down_falls_back_to_a_process_local_token(stub, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    client = get_client()
    assert client.user_get("a")["errcode"] == 0
    assert client.user_get("b")["errcode"] == 0
    assert len(stub.calls("gettoken")) == 1
    stub.script("user/get", {"errcode": 42001, "errmsg": "expired"})
    assert client.user_get("c")["errcode"] == 0
    assert len(stub.calls("gettoken")) == 2


def test_token_refresh_does_not_use_up_the_retry_budget(stub, settings, caplog):
    settings.WECOM_MAX_RETRIES = 1
    stub.script("user/get", {"errcode": 42001, "errmsg": "expired"}, BUSY)
    with caplog.at_level(logging.INFO, logger="crm.wecom.client"):
        assert get_client().user_get("a")["errcode"] == 0
    attempts = [r.attempt for r in caplog.records if getattr(r, "endpoint", "") == "user/get"]
    assert attempts == [1, 2, 3]


@pytest.mark.parametrize(
    "failure", [(200, {"errcode": 0, "msgid": "late"}, 0.6), (502, b"<html>bad gateway</html>"), (200, b"<html>")],
)
def test_a_call_that_creates_is_not_sent_again_when_wecom_may_have_acted_on_it(stub, settings, failure):
    """A second add_msg_template after a read timeout would be a second task: the customer would get the message
    twice. The client raises (retryable, maybe_applied) after one call; the caller looks the task up."""
    settings.WECOM_HTTP_TIMEOUT = 0.2
    settings.WECOM_MASS_SEND_TIMEOUT = 0.2
    stub.script("externalcontact/add_msg_template", failure, failure)
    with pytest.raises(WeComError) as exc:
        get_client().add_msg_template(chat_type="single", external_userid=["wm1"], sender="u",
                                      text={"content": "hi"})
    assert exc.value.retryable and exc.value.maybe_applied
    assert len(stub.calls("externalcontact/add_msg_template")) == 1
    # The same failure on a read is retried as before.
    stub.script("user/get", failure, failure)
    if failure[0] == 200 and isinstance(failure[1], dict):
        stub.script("user/get", failure, (200, {"errcode": 0}))
    get_client().user_get("a")
    assert len(stub.calls("user/get")) >= 2


def test_add_msg_template_waits_longer_than_the_other_calls(stub, settings):
    """10,000 recipients can take WeCom seconds to store; a timeout there would cost the send's grace (the task may
    exist), so add_msg_template has its own, longer timeout."""
    settings.WECOM_HTTP_TIMEOUT = 0.2
    settings.WECOM_MASS_SEND_TIMEOUT = 3
    stub.script("externalcontact/add_msg_template", (200, {"errcode": 0, "msgid": "slow", "fail_list": []}, 0.6))
    created = get_client().add_msg_template(chat_type="single", external_userid=["wm1"], sender="u",
                                            text={"content": "hi"})
    assert created["msgid"] == "slow"
    assert len(stub.calls("externalcontact/add_msg_template")) == 1


def test_a_refused_connection_is_safe_to_retry_even_for_a_create(settings):
    settings.WECOM_API_BASE_URL = "http://127.0.0.1:1/cgi-bin"
    settings.WECOM_RETRY_BASE_DELAY = 0.001
    settings.WECOM_RETRY_MAX_DELAY = 0.01
    with pytest.raises(WeComError) as exc:
        get_client()._request("POST", "externalcontact/add_msg_template", {}, {}, 1)
    assert exc.value.retryable and not exc.value.maybe_applied
