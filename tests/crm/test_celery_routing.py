"""Each kind of work has its own queue, and a task lands in exactly one of them."""

from collections import Counter

import pytest

from crm.celery import app


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("crm.tasks.callbacks.process_callback", "callbacks"),
        ("crm.tasks.callbacks.drain_callbacks", "callbacks"),
        ("crm.tasks.campaigns.send_mass_message", "pushes"),
        ("crm.tasks.redpackets.pay_claim", "redpackets"),
        ("crm.tasks.contacts.send_welcome", "default"),
        ("loyalty.tasks.vip_invite", "default"),
    ],
)
def test_tasks_route_to_their_queue(task, queue):
    route = app.amqp.router.route({}, task)
    assert route["queue"].name == queue
    assert route["queue"].routing_key == queue


def test_no_two_queues_share_a_binding():
    # A direct exchange delivers a message to every queue bound under its routing key: two queues sharing a
    # (exchange, key) binding would each get a copy of every task routed to either.
    bindings = Counter((q.exchange.name, q.routing_key) for q in app.conf.task_queues)
    assert all(count == 1 for count in bindings.values()), bindings
