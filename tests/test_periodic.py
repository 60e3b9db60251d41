"""cloud.periodic: a failing pass is logged and counted, and the passes go on."""

import logging

from cloud.periodic import PeriodicTask
from helpers import sync_until


def test_a_failing_pass_is_counted_and_the_next_one_runs(caplog):
    calls = []

    def one_pass():
        calls.append(len(calls))
        if len(calls) == 1:
            raise ValueError("the store went away")

    task = PeriodicTask("test-periodic", 0.01, one_pass, logger=logging.getLogger("test.periodic"),
                        what="test pass")
    with caplog.at_level(logging.ERROR, logger="test.periodic"):
        task.start()
        try:
            assert sync_until(lambda: len(calls) >= 3, 5, step=0.01)
        finally:
            task.stop()
    assert task.errors == 1
    assert [r.getMessage() for r in caplog.records] == ["test pass failed; trying again in 0.01 s"]
    assert "the store went away" in caplog.text
    # A stopped task can be started again.
    stopped_at = len(calls)
    task.start()
    try:
        assert sync_until(lambda: len(calls) > stopped_at, 5, step=0.01)
    finally:
        task.stop()
