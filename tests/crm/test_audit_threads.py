"""auditlog's receivers are process-wide: a write on one thread, after that thread served a request, while another
thread is inside a request (a live server, a threaded web process), must not fail."""

from __future__ import annotations

import threading

import pytest
from auditlog.context import set_actor

from crm.models.staff import Handover, Staff

pytestmark = pytest.mark.django_db


def test_a_write_here_while_another_thread_serves_a_request(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("boss", password="pw", is_staff=True,
                                                             is_superuser=True))
    assert client.get("/admin/").status_code == 200  # this thread's audit context is now "no one's"
    inside, leave = threading.Event(), threading.Event()

    def other_request() -> None:
        with set_actor(None):  # what AuditlogMiddleware does around another thread's request
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other_request)
    thread.start()
    assert inside.wait(10)
    try:
        alice, bob = Staff.objects.create(userid="alice"), Staff.objects.create(userid="bob")
        handover = Handover.objects.create(kind="onjob", handover_staff=alice)
        handover.takeovers.set([bob])  # auditlog logs many-to-many changes whoever makes them
    finally:
        leave.set()
        thread.join()
    assert handover.takeovers.get() == bob
