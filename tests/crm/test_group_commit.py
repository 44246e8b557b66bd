"""The group-commit writer on its own: order, grouping, retry on a lost connection, shutdown."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import IntegrityError, OperationalError

from crm.api.group_commit import GroupCommitWriter


def test_each_item_gets_its_own_result_and_concurrent_items_share_groups():
    groups: list[list[int]] = []
    gate = threading.Event()

    def store(items):
        gate.wait(5)  # hold the first group so that the others queue up behind it
        groups.append(list(items))
        return [item * 10 for item in items]

    writer = GroupCommitWriter(store, max_batch=16, name="test-writer")
    try:
        with ThreadPoolExecutor(20) as pool:
            futures = list(pool.map(writer.submit, range(40)))
            gate.set()
            assert [f.result(5) for f in futures] == [i * 10 for i in range(40)]
    finally:
        writer.stop()
    assert sorted(i for group in groups for i in group) == list(range(40))  # each stored once
    assert max(len(g) for g in groups) <= 16 and writer.largest_group > 1 and len(groups) < 40


def test_a_lost_connection_is_retried_once_then_reported():
    calls = []

    def store(items):
        calls.append(list(items))
        if len(calls) in (1, 3, 4):
            raise OperationalError("server closed the connection unexpectedly")
        return ["ok" for _ in items]

    writer = GroupCommitWriter(store, name="test-writer")
    try:
        assert writer.submit("a").result(5) == "ok"  # failed once, retried on a new connection
        with pytest.raises(OperationalError):
            writer.submit("b").result(5)  # failed twice: the caller must not acknowledge
        assert writer.submit("c").result(5) == "ok"  # the writer lives on
    finally:
        writer.stop()
    assert calls == [["a"], ["a"], ["b"], ["b"], ["c"]]


def test_other_errors_are_not_retried_and_do_not_stop_the_writer():
    calls = []

    def store(items):
        calls.append(list(items))
        if items == ["bad"]:
            raise IntegrityError("constraint")
        if items == ["bug"]:
            raise KeyError("bug")
        return list(items)

    writer = GroupCommitWriter(store, name="test-writer")
    try:
        with pytest.raises(IntegrityError):
            writer.submit("bad").result(5)
        with pytest.raises(KeyError):
            writer.submit("bug").result(5)
        assert writer.submit("fine").result(5) == "fine"
    finally:
        writer.stop()
    assert calls == [["bad"], ["bug"], ["fine"]]


def test_a_cancelled_item_is_left_out_and_stop_writes_what_is_queued():
    stored = []
    entered, gate = threading.Event(), threading.Event()

    def store(items):
        entered.set()
        gate.wait(5)
        stored.extend(items)
        return list(items)

    writer = GroupCommitWriter(store, name="test-writer")
    first = writer.submit("first")
    assert entered.wait(5)  # the writer holds "first" at the gate; the next two queue behind it
    gave_up = writer.submit("gave-up")
    queued = writer.submit("queued")
    assert gave_up.cancel()  # its request timed out and answered "retry"
    gate.set()
    writer.stop()
    assert not writer.alive
    assert first.result(0) == "first" and queued.result(0) == "queued"
    assert stored == ["first", "queued"]
