"""Rate-limited reject logging: a line per kind per interval, the rest counted in the next line."""

import logging

from contracts.reject_log import RejectLog


def test_one_line_per_kind_per_interval_naming_what_was_left_out(caplog):
    now = [0.0]
    reject = RejectLog(logging.getLogger("test.reject"), "rejected %s: %s", interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.reject"):
        assert reject("crc", "peer-a", "bad crc") is True
        assert [reject("crc", "peer-a", "bad crc") for _ in range(999)] == [False] * 999
        assert reject("length", "peer-b", "too long") is True  # another kind has its own interval
        now[0] = 10.0
        assert reject("crc", "peer-c", "bad crc") is True
    assert [r.getMessage() for r in caplog.records] == [
        "rejected peer-a: bad crc", "rejected peer-b: too long",
        "rejected peer-c: bad crc (and 999 more crc rejects unlogged since the last line)"]
