"""How `make run` stops: by each signal a person or make sends, at each stage (starting, seeding, ready), twice
over, and when one of its children dies while the others start. Every time, nothing of the run is left."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.make_run import READY, STOP_WITHIN, Run

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def shared_var(tmp_path_factory):
    """One var/ for the stop cases: migrated once, and each case starts from what the one before left behind
    (killed mid-seed included), which is what a newcomer's second `make run` does."""
    return tmp_path_factory.mktemp("make-run-stops")


# (when, signals, to the process group?, via make?)
STOP_CASES = [
    ("startup", [signal.SIGTERM, signal.SIGTERM], True, False),  # make forwards TERM: the supervisor gets two
    ("seed", [signal.SIGKILL], False, False),  # the supervisor dies mid-seed: its children die with it
    ("seed", [signal.SIGINT], False, False),
    ("ready", [signal.SIGTERM, signal.SIGINT, signal.SIGTERM], True, True),  # the real `make run`, to make's group
    ("ready", [signal.SIGKILL], False, False),
]
WHEN = {"startup": "started worker", "seed": "seeding demo data", "ready": READY}


@pytest.mark.parametrize(("when", "signals", "to_group", "via_make"), STOP_CASES,
                         ids=[f"{c[0]}-{'+'.join(s.name for s in c[1])}-{'group' if c[2] else 'supervisor'}"
                              f"{'-make' if c[3] else ''}" for c in STOP_CASES])
def test_stopping_is_total_and_idempotent(shared_var, when, signals, to_group, via_make):
    run = Run(shared_var, via_make=via_make)
    try:
        run.wait_for_line(WHEN[when])
        for sig in signals:
            run.signal(sig, to_group)
            time.sleep(0.05)
        code = run.proc.wait(timeout=STOP_WITHIN)
        if signal.SIGKILL not in signals and not via_make:
            assert code == 0, run.text()[-3000:]
            assert "[run] stopped" in run.text()
        run.assert_all_gone()
    finally:
        run.finish()


def test_a_child_that_dies_during_startup_stops_the_run_and_says_why(tmp_path):
    """The worker dies while the others start: the run stops at once, naming the child and showing its last log
    lines, instead of waiting for a seed that cannot finish."""
    run = Run(tmp_path)
    try:
        run.wait_for_line("started beat")
        worker = next(int(line.split("pid")[1].split()[0]) for line in run.text().splitlines()
                      if line.startswith("[run] started worker"))
        os.kill(worker, signal.SIGKILL)
        assert run.proc.wait(timeout=60) == 1
        text = run.text()
        assert "[run] error: worker exited with code -9; stopping everything" in text
        assert "Last lines of" in text and "worker.log" in text
        run.assert_all_gone()
    finally:
        run.finish()
