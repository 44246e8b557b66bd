"""Fuzz the staff and till API over its own OpenAPI schema (issue 14.5), with schemathesis against the live server.

Every operation of /api/schema/ is called with generated input, valid (positive) and invalid (negative), as an admin
(the console's session, with its CSRF token) and as a cashier (a till's token, like tests/crm/test_roles.py). A
response fails the run when it is a 5xx, has a status the schema does not document for the operation, or a body
that does not match the schema. The CRM's WeCom client talks to the simulator under the same live server, so no
case reaches the real world.

`make test` runs a bounded pass (FUZZ_EXAMPLES cases per operation, role and mode); `make fuzz` runs the full one
(FUZZ_CASES=1000: at least that many cases per role). Failures are collected over every operation, then reported
together: one line per distinct (operation, role, status, check), with a curl to reproduce the first.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(3600)]

CSRF = "fuzzcsrf" * 4  # a CSRF secret of 32 characters: the cookie and the header carry the same value


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    return [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture
def fuzz_world(live_stack):
    """The demo roles (admin, cashier at store SH001), logged in the way each really signs in."""
    from django.test import Client
    from rest_framework.authtoken.models import Token

    from loyalty.services import tiers_ensure_defaults
    from loyalty.services.store_staff import demo_users_ensure

    tiers_ensure_defaults()
    users = demo_users_ensure()
    ids = _seed()
    console = Client()
    console.force_login(users["admin"])
    session = console.cookies["sessionid"].value
    admin_headers = {"Cookie": f"sessionid={session}; csrftoken={CSRF}", "X-CSRFToken": CSRF}
    token = Token.objects.get_or_create(user=users["cashier"])[0].key
    cashier_headers = {"Authorization": f"Token {token}"}
    raw = requests.get(f"{live_stack}/api/schema/?format=json", headers=admin_headers, timeout=30)
    assert raw.status_code == 200, raw.text[:500]
    yield {"base": live_stack, "schema": raw.json(), "ids": ids,
           "roles": {"admin": admin_headers, "cashier": cashier_headers}}
    from crm.celery import app

    app.control.purge()  # what the fuzzed writes queued: no worker of a later test takes it


def _seed() -> dict:
    """One of each object the paths name (like tests/crm/test_roles.py's world): with these ids fixed, the fuzzed
    bodies and queries reach the views' real work, not only their 404."""
    from django.utils import timezone

    from crm.models import Campaign, Channel, Contact, ContactEvent, FollowRelation, Handover, Staff
    from loyalty.services import card_get_or_create

    contact = Contact.objects.create(external_userid="wmFUZZ", name="Fuzz")
    staff = Staff.objects.create(userid="fuzz-leaver", name="Leaver")
    FollowRelation.objects.create(staff=staff, contact=contact, state="fuzz-001")
    ContactEvent.objects.create(contact=contact, kind=ContactEvent.Kind.PROFILE_UPDATED, occurred_at=timezone.now())
    return {
        "contact_id": contact.pk,
        "card_id": card_get_or_create(contact.pk).pk,
        "channel_id": Channel.objects.create(name="Fuzz", state="fuzz-001").pk,
        "campaign_id": Campaign.objects.create(name="Fuzz", text="Hello").pk,
        "handover_id": Handover.objects.create(kind="resigned", handover_staff=staff).pk,
        "source_code": "tmall",
    }


def _fuzz(world, per_operation: int, *, full: bool) -> tuple[int, Counter, dict]:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    schema = schemathesis.openapi.from_dict(world["schema"])
    checks = _checks()
    http = requests.Session()
    # Django's test server (wsgiref) now and then reads what is left of an odd case on a kept-alive connection as
    # the next request line and answers it without a status line: the next case then fails with BadStatusLine,
    # never having reached the app. It is sent again on a new connection (once), and the other cases keep theirs.
    again = Retry(total=1, connect=1, read=1, status=0, other=0, allowed_methods=None, raise_on_status=False)
    http.mount("http://", HTTPAdapter(max_retries=again))
    cases, failures, examples = 0, Counter(), {}
    operations = [result.ok() for result in schema.get_all_operations()]
    def record(case, response, role, headers):
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (FailureGroup, AssertionError) as exc:
            for failure in getattr(exc, "exceptions", [exc]):
                title = getattr(failure, "title", type(failure).__name__)
                key = (case.operation.label, role, response.status_code, str(title))
                failures[key] += 1
                if key not in examples:
                    message = getattr(failure, "message", str(failure))
                    examples[key] = (f"{case.as_curl_command(headers)}\n  -> {response.text[:400]}\n"
                                     f"  {message[:600]}")

    def runner(strategy, role, headers):
        @given(case=strategy)
        @settings(max_examples=per_operation, deadline=None, database=None, derandomize=not full,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        def run(case):
            nonlocal cases
            cases += 1
            response = case.call(base_url=world["base"], session=http, headers=headers, timeout=60)
            record(case, response, role, headers)

        return run

    for role, headers in world["roles"].items():
        for operation in operations:
            names = re.findall(r"{(\w+)}", operation.path)
            fixed = {name: world["ids"][name] for name in names if name in world["ids"]}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                # The bounded pass fixes the ids it has (the real work); the full one also fuzzes them.
                for path_parameters in ([None, fixed] if fixed and full else [fixed or None]):
                    try:
                        strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
                        runner(strategy, role, headers)()
                    except Unsatisfiable:
                        pass  # nothing invalid to generate for an operation without input
    return cases, failures, examples


def test_the_api_answers_every_generated_case_within_its_schema(fuzz_world):
    total = int(os.environ.get("FUZZ_CASES", "0"))
    operations = sum(1 for _ in fuzz_world["schema"]["paths"].values() for m in _ if m in ("get", "post", "put",
                                                                                              "patch", "delete"))
    per_operation = max(int(os.environ.get("FUZZ_EXAMPLES", "2")), math.ceil(total / operations) if total else 0)
    cases, failures, examples = _fuzz(fuzz_world, per_operation, full=bool(total))
    report = "\n".join(f"{count}x {op} as {role}: {status} {title}\n  {examples[(op, role, status, title)]}"
                       for (op, role, status, title), count in failures.most_common())
    print(f"fuzz: {operations} operations, {cases} cases")
    assert not failures, f"{sum(failures.values())} failing cases of {cases}:\n{report}"
    if total:
        assert cases >= 2 * total, f"only {cases} cases generated, fewer than {total} per role"
