"""The WeCom callback receiver and its processing service, through Django's test client and real crypto."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.db import OperationalError

from crm.models import CallbackEvent
from crm.services import callback_routing
from crm.services import callbacks as svc
from crm.tasks.callbacks import sweep_unprocessed
from tests.crm.wecom.callback_helpers import crypt, event_xml, signed_get, signed_post

pytestmark = pytest.mark.django_db
URL = "/wecom/callback"


def post(client, params, body):
    return client.post(f"{URL}?{urlencode(params)}", data=body, content_type="text/xml")


@pytest.fixture
def on_commit():
    """The enqueues registered by the test. They never run: the test's transaction is rolled back, so no task
    message leaves these tests."""
    from django.db import connection

    start = len(connection.run_on_commit)
    return lambda: connection.run_on_commit[start:]


# --- URL verification ------------------------------------------------------------------------------


def test_url_verification_answers_plaintext_echostr(client):
    response = client.get(URL, signed_get("6214872163829459327"))
    assert response.status_code == 200
    assert response.content == b"6214872163829459327"  # no quotes, no newline, no BOM


def test_url_verification_refuses_bad_signature(client):
    params = signed_get("12345")
    params["msg_signature"] = "0" * 40
    response = client.get(URL, params)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_signature"


def test_url_verification_refuses_stale_and_foreign(client):
    assert client.get(URL, signed_get("1", timestamp=int(time.time()) - 3600)).status_code == 403
    response = client.get(URL, signed_get("1", receive_id="wwsomeoneelse00000"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_receiveid"


def test_url_verification_needs_all_params(client):
    assert client.get(URL, {"msg_signature": "x", "timestamp": "1"}).status_code == 400


# --- event delivery --------------------------------------------------------------------------------


def test_valid_event_is_stored_before_the_empty_200_and_enqueued(client, on_commit):
    xml = event_xml(ExternalUserID="wmAAA", State="store-sh-001", WelcomeCode="WC1", CreateTime="1700000000")
    params, body = signed_post(xml)
    response = post(client, params, body)
    assert response.status_code == 200
    assert response.content == b""
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.RECEIVED
    assert event.raw_body == body.decode()
    assert event.decrypted_xml == xml
    assert event.event == "change_external_contact"
    assert event.change_type == "add_external_contact"
    assert event.payload["ExternalUserID"] == "wmAAA"
    assert event.payload["State"] == "store-sh-001"
    assert event.payload["WelcomeCode"] == "WC1"
    assert event.payload["CreateTime"] == "1700000000"
    assert event.event_time.timestamp() == 1700000000
    assert event.nonce == params["nonce"] and event.msg_signature == params["msg_signature"]
    assert len(on_commit()) == 1


def test_duplicate_delivery_answers_200_and_is_not_enqueued_again(client, on_commit):
    xml = event_xml()
    assert post(client, *signed_post(xml)).status_code == 200
    # WeCom's retry: same event, new nonce and signature.
    assert post(client, *signed_post(xml)).status_code == 200
    assert CallbackEvent.objects.count() == 1
    assert len(on_commit()) == 1


def test_distinct_events_in_the_same_second_are_not_merged(client, on_commit):
    now = str(int(time.time()))
    xmls = [
        event_xml(CreateTime=now, ExternalUserID="wm1"),
        event_xml(CreateTime=now, ExternalUserID="wm2"),
        event_xml(CreateTime=now, ExternalUserID="wm1", ChangeType="del_follow_user", State=None, WelcomeCode=None),
        event_xml(CreateTime=now, Event="change_external_chat", ChangeType="update", ChatId="wr1", UserID=None,
                  ExternalUserID=None, UpdateDetail="add_member", MemChangeList=["wmX"]),
        event_xml(CreateTime=now, Event="change_external_chat", ChangeType="update", ChatId="wr1", UserID=None,
                  ExternalUserID=None, UpdateDetail="del_member", MemChangeList=["wmX"]),
    ]  # fmt: skip
    for xml in xmls:
        assert post(client, *signed_post(xml)).status_code == 200
    assert CallbackEvent.objects.count() == len(xmls)


def test_replayed_request_is_refused(client, on_commit):
    params, body = signed_post(event_xml())
    assert post(client, params, body).status_code == 200
    response = post(client, params, body)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "replayed"
    assert CallbackEvent.objects.count() == 1


def test_stale_request_is_refused_and_nothing_stored(client, on_commit, settings):
    settings.WECOM_CALLBACK_MAX_AGE_SECONDS = 300
    for skew in (-301, 301, -86400):
        response = post(client, *signed_post(event_xml(), timestamp=int(time.time()) + skew))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "stale"
    assert not CallbackEvent.objects.exists()


def test_forged_and_tampered_requests_are_refused_and_nothing_stored(client, on_commit):
    params, body = signed_post(event_xml())
    forged = {**params, "msg_signature": "f" * 40}
    assert post(client, forged, body).status_code == 403
    # Tamper with the ciphertext (the signature no longer matches).
    tampered = body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A", 1)
    assert post(client, params, tampered).status_code == 403
    # Change the timestamp or nonce under the same signature.
    assert post(client, {**params, "nonce": params["nonce"] + "1"}, body).status_code == 403
    assert post(client, {**params, "timestamp": str(int(params["timestamp"]) - 1)}, body).status_code == 403
    # Signed with another token.
    from crm.wecom.crypto import WXBizMsgCrypt, signature

    other = WXBizMsgCrypt("another-token", crypt().key and "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "x")
    encrypt = other.encrypt(event_xml())
    sig = signature("another-token", params["timestamp"], "n9", encrypt)
    fake = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    assert (
        post(client, {"msg_signature": sig, "timestamp": params["timestamp"], "nonce": "n9"}, fake).status_code == 403
    )
    assert not CallbackEvent.objects.exists()
    assert on_commit() == []


def test_wrong_receiveid_is_refused(client, on_commit):
    response = post(client, *signed_post(event_xml(), receive_id="wwforeign0000000000"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "bad_receiveid"
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize("body", [b"", b"not xml", b"<xml><Encrypt></Encrypt></xml>"])
def test_malformed_body_is_refused(client, on_commit, body):
    params, _ = signed_post(event_xml())
    response = post(client, params, body)
    assert response.status_code in (400, 403)
    assert not CallbackEvent.objects.exists()


def test_missing_query_params_are_a_400(client):
    _, body = signed_post(event_xml())
    assert post(client, {"timestamp": "1"}, body).status_code == 400


def test_receiver_needs_no_csrf_and_no_login(on_commit):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    assert post(strict, *signed_post(event_xml())).status_code == 200


def test_other_methods_are_refused(client):
    assert client.put(URL).status_code == 405


def test_storage_failure_leaves_the_request_retryable(client, on_commit, monkeypatch):
    params, body = signed_post(event_xml())

    def boom(events):
        raise OperationalError("database down")

    monkeypatch.setattr(svc, "_insert_unless_stored", boom)
    refused = post(client, params, body)
    assert refused.status_code == 503  # not stored, so not acknowledged: WeCom retries
    assert refused.json()["error"]["code"] == "unavailable"
    monkeypatch.undo()
    # WeCom retries the very same request: it must get through now.
    assert post(client, params, body).status_code == 200
    assert CallbackEvent.objects.count() == 1


# --- payload parsing -------------------------------------------------------------------------------


def test_payload_keeps_tags_as_named_and_lists_member_changes():
    xml = (
        "<xml><ToUserName><![CDATA[ww1]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        "<CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrx]]></ChatId>"
        "<ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail>"
        "<JoinScene>1</JoinScene><QuitScene>0</QuitScene><MemChangeCnt>2</MemChangeCnt>"
        "<MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList><LastMemVer>9c3f</LastMemVer>"
        "<CurMemVer>71217</CurMemVer></xml>"
    )
    payload = svc.parse_event_xml(xml)
    assert payload == {
        "ToUserName": "ww1", "FromUserName": "sys", "CreateTime": "1403610513", "MsgType": "event",
        "Event": "change_external_chat", "ChatId": "wrx", "ChangeType": "update", "UpdateDetail": "add_member",
        "JoinScene": "1", "QuitScene": "0", "MemChangeCnt": "2", "MemChangeList": ["Jack", "Rose"],
        "LastMemVer": "9c3f", "CurMemVer": "71217",
    }  # fmt: skip
    old = svc.parse_event_xml("<xml><MemChangeList><![CDATA[a,b , c]]></MemChangeList></xml>")
    assert old["MemChangeList"] == ["a", "b", "c"]
    tag = svc.parse_event_xml(
        "<xml><Event>change_external_tag</Event><Id>etA</Id><TagType>tag</TagType><ChangeType>create</ChangeType>"
        "<StrategyId>1</StrategyId></xml>"
    )
    assert tag == {"Event": "change_external_tag", "Id": "etA", "TagType": "tag", "ChangeType": "create",
                   "StrategyId": "1"}  # fmt: skip


def test_dedupe_key_follows_wecom_rule_plus_ids():
    a = {"FromUserName": "sys", "CreateTime": "1", "Event": "change_external_contact", "ExternalUserID": "wm1"}
    assert svc.dedupe_key(a) == svc.dedupe_key({**a, "WelcomeCode": "other"})
    assert svc.dedupe_key(a) != svc.dedupe_key({**a, "CreateTime": "2"})
    assert svc.dedupe_key(a) != svc.dedupe_key({**a, "ExternalUserID": "wm2"})
    assert svc.dedupe_key({"MsgId": "1", "MsgType": "text"}) != svc.dedupe_key({"MsgId": "2", "MsgType": "text"})


# --- processing ------------------------------------------------------------------------------------


def _stored(client, on_commit, **fields) -> CallbackEvent:
    assert post(client, *signed_post(event_xml(**fields))).status_code == 200
    return CallbackEvent.objects.latest("id")


def test_routing_marks_routed_and_queues_the_apply_once(client, on_commit, monkeypatch):
    calls = []
    monkeypatch.setattr(callback_routing, "handle_event", lambda payload: calls.append(payload) or "routed x/y")
    event = _stored(client, on_commit, ExternalUserID="wmONE")
    before = len(on_commit())
    done = svc.callback_process(event_id=event.pk)
    # Routed is not applied: the effect is queued (after commit) and only its outcome makes the event applied.
    assert done.status == CallbackEvent.Status.ROUTED
    assert done.result == "routed x/y" and done.attempts == 0 and done.routed_at and done.applied_at is None
    assert len(on_commit()) == before + 1
    again = svc.callback_process(event_id=event.pk)
    assert again.status == CallbackEvent.Status.ROUTED and len(on_commit()) == before + 1
    assert len(calls) == 1 and calls[0]["ExternalUserID"] == "wmONE"


def test_an_event_no_handler_takes_is_applied_at_once(client, on_commit):
    event = _stored(client, on_commit, Event="crm_test_probe", ChangeType="probe")
    done = svc.callback_process(event_id=event.pk)
    assert done.status == CallbackEvent.Status.APPLIED and done.result == "ignored"
    assert done.attempts == 1 and done.applied_at and done.routed_at


def test_routing_failure_is_recorded_rolled_back_and_retried_later(client, on_commit, monkeypatch):
    from crm.models import Staff

    def failing(payload):
        Staff.objects.create(userid="written-then-rolled-back")
        raise ValueError("contact service unavailable")

    monkeypatch.setattr(callback_routing, "handle_event", failing)
    event = _stored(client, on_commit)
    failed = svc.callback_process(event_id=event.pk)
    assert failed.status == CallbackEvent.Status.FAILED and failed.failed_step == "route"
    assert failed.attempts == 1 and "contact service unavailable" in failed.error
    assert failed.next_attempt_at and svc.retry_due(failed) <= svc.retry_delay_seconds(1)
    assert not Staff.objects.filter(userid="written-then-rolled-back").exists()

    monkeypatch.setattr(callback_routing, "handle_event", lambda payload: "routed")
    done = svc.callback_process(event_id=event.pk)
    assert done.status == CallbackEvent.Status.ROUTED and done.attempts == 1 and done.error == ""
    assert done.next_attempt_at is None


def test_task_retries_a_bounded_number_of_times(client, on_commit, monkeypatch, settings):
    from celery.exceptions import Retry

    from crm.tasks.callbacks import process_callback

    settings.CALLBACK_MAX_ATTEMPTS = 3
    monkeypatch.setattr(callback_routing, "handle_event", lambda payload: 1 / 0)
    event = _stored(client, on_commit)
    for _ in range(2):
        with pytest.raises(Retry):
            process_callback.apply(args=[event.pk], throw=True)
    assert process_callback.apply(args=[event.pk]).get() == "failed"
    event.refresh_from_db()
    assert event.attempts == 3 and event.status == CallbackEvent.Status.FAILED
    assert event.next_attempt_at is None  # out of attempts: left for a person to replay
    assert svc.callback_due_for_sweep(older_than=0) == []


def test_backoff_doubles_up_to_a_minute():
    assert [svc.retry_delay_seconds(n) for n in (1, 2, 3, 5, 6, 9)] == [2, 4, 8, 32, 60, 60]


def test_sweep_finds_stale_received_routed_and_failed_due(client, on_commit, monkeypatch):
    from datetime import UTC, datetime, timedelta

    fresh = _stored(client, on_commit)
    stale = _stored(client, on_commit)
    failed = _stored(client, on_commit)
    done = _stored(client, on_commit)
    routed = _stored(client, on_commit)
    backing_off = _stored(client, on_commit)
    old = datetime.fromtimestamp(time.time() - 3600, tz=UTC)
    later = datetime.now(tz=UTC) + timedelta(minutes=5)
    CallbackEvent.objects.exclude(pk=fresh.pk).update(received_at=old)
    CallbackEvent.objects.filter(pk=failed.pk).update(status="failed", attempts=1, last_attempt_at=old,
                                                      routed_at=old, next_attempt_at=old)  # fmt: skip
    CallbackEvent.objects.filter(pk=backing_off.pk).update(status="failed", attempts=1, last_attempt_at=old,
                                                           next_attempt_at=later)  # fmt: skip
    CallbackEvent.objects.filter(pk=done.pk).update(status="applied", attempts=1, last_attempt_at=old)
    CallbackEvent.objects.filter(pk=routed.pk).update(status="routed", routed_at=old)  # its apply task was lost
    assert svc.callback_due_for_sweep(older_than=600) == [stale.pk, failed.pk, routed.pk]
    assert set(svc.callback_due_for_sweep(older_than=0)) == {fresh.pk, stale.pk, failed.pk, routed.pk}

    queued = []
    from crm.tasks import callbacks as tasks

    monkeypatch.setattr(tasks.process_callback, "delay", lambda event_id: queued.append(event_id))
    assert sweep_unprocessed(older_than=600) == 3
    assert queued == [stale.pk, failed.pk, routed.pk]


def test_admin_lists_shows_and_replays_failed_events(admin_client, admin_user, client, on_commit):
    from auditlog.models import LogEntry

    event = _stored(client, on_commit, Event="crm_test_probe")
    applied = _stored(client, on_commit, Event="crm_test_probe")
    CallbackEvent.objects.filter(pk=event.pk).update(status="failed", attempts=5, error="WeComError: -1 busy",
                                                     routed_at=event.received_at)  # fmt: skip
    CallbackEvent.objects.filter(pk=applied.pk).update(status="applied")
    listing = admin_client.get("/admin/crm/callbackevent/?status__exact=failed")
    assert listing.status_code == 200 and b"WeComError: -1 busy" in listing.content
    detail = admin_client.get(f"/admin/crm/callbackevent/{event.pk}/change/")
    assert detail.status_code == 200 and b"callback-payload" in detail.content and b"crm_test_probe" in detail.content
    before = len(on_commit())
    response = admin_client.post(
        "/admin/crm/callbackevent/", {"action": "replay", "_selected_action": [event.pk, applied.pk]}, follow=True
    )
    assert response.status_code == 200
    assert len(on_commit()) == before + 1  # the failed one only
    event.refresh_from_db()
    assert event.attempts == 0 and event.status == "failed"  # a fresh budget; the error stays until the next try
    entry = LogEntry.objects.get(object_pk=str(event.pk))
    assert entry.actor == admin_user and entry.changes_dict["status"] == ["failed", "replay requested"]
    assert not LogEntry.objects.filter(object_pk=str(applied.pk)).exists()

    # The detail page's own button, one event.
    CallbackEvent.objects.filter(pk=event.pk).update(attempts=5)
    assert f"/admin/crm/callbackevent/{event.pk}/replay/" in admin_client.get(
        f"/admin/crm/callbackevent/{event.pk}/change/").content.decode()
    assert admin_client.get(f"/admin/crm/callbackevent/{event.pk}/replay/").status_code == 302
    assert LogEntry.objects.filter(object_pk=str(event.pk)).count() == 2
    # An applied event's page offers no replay, and the action's URL refuses it.
    assert f"/admin/crm/callbackevent/{applied.pk}/replay/" not in admin_client.get(
        f"/admin/crm/callbackevent/{applied.pk}/change/").content.decode()
    assert admin_client.get(f"/admin/crm/callbackevent/{applied.pk}/replay/").status_code == 403


def test_replay_needs_the_replay_permission(client, on_commit, django_user_model):
    event = _stored(client, on_commit, Event="crm_test_probe")
    CallbackEvent.objects.filter(pk=event.pk).update(status="failed")
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_callbackevent"))
    client.force_login(viewer)
    assert client.get("/admin/crm/callbackevent/?status__exact=failed").status_code == 200
    assert client.post(f"/api/callbacks/{event.pk}/replay/").status_code == 403
    client.get(f"/admin/crm/callbackevent/{event.pk}/replay/")
    from auditlog.models import LogEntry

    assert not LogEntry.objects.filter(object_pk=str(event.pk)).exists()


def test_api_lists_failed_and_replays(admin_client, client, on_commit):
    event = _stored(client, on_commit, Event="crm_test_probe")
    CallbackEvent.objects.filter(pk=event.pk).update(status="failed", attempts=5, error="boom",
                                                     routed_at=event.received_at)  # fmt: skip
    listed = admin_client.get("/api/callbacks/?status=failed").json()
    assert [(e["id"], e["error"], e["failed_step"]) for e in listed] == [(event.pk, "boom", "apply")]
    assert listed[0]["payload"]["Event"] == "crm_test_probe"
    bad = admin_client.get("/api/callbacks/?status=processed")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "status"
    replayed = admin_client.post(f"/api/callbacks/{event.pk}/replay/")
    assert replayed.status_code == 202 and replayed.json()["attempts"] == 0
    event.refresh_from_db()
    CallbackEvent.objects.filter(pk=event.pk).update(status="applied")
    again = admin_client.post(f"/api/callbacks/{event.pk}/replay/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_replayable"
    assert admin_client.post("/api/callbacks/999999/replay/").status_code == 404
    schema = admin_client.get("/api/schema/").content.decode()
    assert "/api/callbacks/{event_id}/replay/" in schema


def test_oversized_body_is_refused_before_decrypting(client, on_commit):
    params, _ = signed_post(event_xml())
    response = post(client, params, b"<xml>" + b"x" * (svc.MAX_BODY_BYTES + 1) + b"</xml>")
    assert response.status_code == 413
    assert not CallbackEvent.objects.exists()


def test_redis_down_still_stores_before_acknowledging(client, on_commit, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert post(client, *signed_post(event_xml())).status_code == 200
    event = CallbackEvent.objects.get()
    assert event.status == CallbackEvent.Status.RECEIVED  # the sweep queues it once the broker is back
    assert svc.callback_due_for_sweep(older_than=0) == [event.pk]


# --- drains: one task per burst, not one per event ---------------------------------------------------


def test_a_burst_requests_one_drain_until_a_drain_starts(client, monkeypatch, redis_client,
                                                         django_capture_on_commit_callbacks):  # fmt: skip
    from crm.tasks import callbacks as tasks

    published = []
    monkeypatch.setattr(tasks.drain_callbacks, "delay", lambda: published.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            assert post(client, *signed_post(event_xml(ExternalUserID=f"wmB{i}"))).status_code == 200
    assert CallbackEvent.objects.count() == 5
    assert len(published) == 1
    assert 0 < redis_client.ttl(svc.DRAIN_FLAG) <= svc.DRAIN_FLAG_TTL_SECONDS

    svc.drain_started()  # a drain begins: the next event asks for another one
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, *signed_post(event_xml(ExternalUserID="wmB9"))).status_code == 200
    assert len(published) == 2


def test_drain_applies_received_events_in_arrival_order_and_schedules_failures(client, on_commit, monkeypatch,
                                                                               settings):  # fmt: skip
    from crm.tasks import callbacks as tasks

    settings.CALLBACK_MAX_ATTEMPTS = 3
    seen = []

    def handle(payload):
        seen.append(payload["ExternalUserID"])
        if payload["ExternalUserID"] == "wmBAD":
            raise ValueError("no such staff")
        return "ok"

    monkeypatch.setattr(callback_routing, "handle_event", handle)
    retried = []
    monkeypatch.setattr(tasks.process_callback, "apply_async", lambda args, countdown: retried.append(args[0]))
    monkeypatch.setattr(tasks, "DRAIN_BATCH", 2)  # several batches
    first = _stored(client, on_commit, ExternalUserID="wmA")
    bad = _stored(client, on_commit, ExternalUserID="wmBAD")
    done = _stored(client, on_commit, ExternalUserID="wmDONE")
    last = _stored(client, on_commit, ExternalUserID="wmZ")
    CallbackEvent.objects.filter(pk=done.pk).update(status="applied", attempts=1)

    assert tasks.drain_callbacks.apply().get() == 3
    assert seen == ["wmA", "wmBAD", "wmZ"]  # id order; the applied one is not routed again
    statuses = dict(CallbackEvent.objects.values_list("id", "status"))
    assert statuses == {first.pk: "routed", bad.pk: "failed", done.pk: "applied", last.pk: "routed"}
    assert retried == [bad.pk]  # retried with backoff by its own task, within the attempt budget
    assert tasks.drain_callbacks.apply().get() == 0  # nothing left received
