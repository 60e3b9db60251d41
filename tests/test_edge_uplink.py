"""The durable outbox and uplink against a real Mosquitto: nothing lost over broker restarts."""

import asyncio

from wire.mqtt_client import make_client
from contracts import topics
from contracts.envelope import make_envelope
from edge.alarms.journal import Journal
from edge.uplink.outbox import Priority
from edge.uplink.link import Uplink
from helpers import until


def test_outbox_survives_broker_restart_and_empties(mosquitto, tmp_path, collector_factory):
    collector = collector_factory(mosquitto.url)

    async def scenario():
        loop = asyncio.get_running_loop()
        journal = Journal(tmp_path / "edge.sqlite3", 100_000)
        uplink = Uplink(mosquitto.url, "F1", journal, loop, on_down=lambda env: None)
        uplink.start()
        sent: list[str] = []

        def enqueue(n, priority):
            with journal.transaction(durable=False):
                for _ in range(n):
                    env = make_envelope("F1", "event.device", {"n": len(sent)})
                    journal.outbox.put(topics.up("F1", env.stream), env.to_bytes(), priority)
                    sent.append(str(env.id))
            uplink.kick()

        assert await until(lambda: uplink.connected)
        enqueue(500, Priority.EVENT)
        mosquitto.restart()  # mid-stream, with messages in flight
        enqueue(500, Priority.EVENT)
        assert await until(lambda: journal.outbox.count() == 0, 30)
        assert await until(lambda: set(sent) <= collector.distinct(), 10), (
            f"{len(set(sent) - collector.distinct())} of {len(sent)} never reached the subscriber, replayed {uplink.replayed}")
        uplink.stop()
        journal.close()
        return sent

    sent = asyncio.run(scenario())
    assert len(sent) == 1000 and set(sent) <= collector.distinct()


def test_outbox_is_durable_across_agent_restart_while_cloud_away(mosquitto, tmp_path, collector_factory):
    """Written while the broker is down, the outbox is drained by the next process that opens it."""
    path = tmp_path / "edge.sqlite3"
    mosquitto.stop()
    journal = Journal(path, 1000)
    ids = []
    with journal.transaction():
        for i in range(50):
            env = make_envelope("F1", "alarm.raised" if i % 2 else "event.device",
                                {"n": i} if i % 2 == 0 else {"alarm_id": "6f1d0c9e-0000-4000-8000-%012d" % i,
                                                              "kind": "panic", "severity": "critical", "source": "z"})
            journal.outbox.put(topics.up("F1", env.stream), env.to_bytes(), Priority.ALARM)
            ids.append(str(env.id))
    journal.close()
    mosquitto.start()
    collector = collector_factory(mosquitto.url)

    async def drain():
        j = Journal(path, 1000)
        uplink = Uplink(mosquitto.url, "F1", j, asyncio.get_running_loop(), on_down=lambda env: None)
        uplink.start()
        ok = await until(lambda: j.outbox.count() == 0 and set(ids) <= collector.distinct(), 20)
        uplink.stop()
        j.close()
        return ok

    assert asyncio.run(drain())


def test_down_messages_for_another_facility_are_refused(mosquitto, tmp_path):
    got = []

    async def scenario():
        loop = asyncio.get_running_loop()
        journal = Journal(tmp_path / "e.sqlite3", 1000)
        uplink = Uplink(mosquitto.url, "F1", journal, loop, on_down=got.append)
        uplink.start()
        assert await until(lambda: uplink.down_subscribed.is_set())
        pub, addr = make_client(mosquitto.url)
        pub.connect(addr.host, addr.port)
        pub.loop_start()
        foreign = make_envelope("F2", "ack.alarm", {"alarm_id": "x"}, source="cloud")
        pub.publish(topics.down("F1", "ack"), foreign.to_bytes(), qos=1).wait_for_publish(5)
        pub.publish(topics.down("F1", "ack"), b"{garbage", qos=1).wait_for_publish(5)
        good = make_envelope("F1", "ack.alarm", {"alarm_id": "y"}, source="cloud")
        pub.publish(topics.down("F1", "ack"), good.to_bytes(), qos=1).wait_for_publish(5)
        assert await until(lambda: len(got) == 1)
        pub.loop_stop()
        uplink.stop()
        journal.close()
        return uplink.down_rejected

    assert asyncio.run(scenario()) == 2
    assert got[0].body == {"alarm_id": "y"}


def test_telemetry_backlog_is_paced_alarms_are_not(mosquitto, tmp_path, collector_factory):
    """A backlog of telemetry leaves at the uplink's pace (so the cloud's per-facility throttle does
    not drop it); an alarm queued behind it goes at once. The pace's clock is the test's."""
    from wire.token_bucket import TokenBucket

    collector = collector_factory(mosquitto.url)
    clock = [0.0]

    async def scenario():
        journal = Journal(tmp_path / "edge.sqlite3", 100_000)
        pace = TokenBucket(1.0, burst=5, clock=lambda: clock[0])
        uplink = Uplink(mosquitto.url, "F1", journal, asyncio.get_running_loop(), on_down=lambda env: None,
                        telemetry_pace=pace)
        telemetry, alarm = [], make_envelope("F1", "alarm.raised", {
            "alarm_id": "6f1d0c9e-0000-4000-8000-000000000001", "kind": "panic", "severity": "critical", "source": "z"})
        with journal.transaction(durable=False):
            for i in range(30):
                env = make_envelope("F1", "telemetry.batch", {"readings": []})
                journal.outbox.put(topics.up("F1", env.stream), env.to_bytes(), Priority.TELEMETRY)
                telemetry.append(str(env.id))
            journal.outbox.put(topics.up("F1", alarm.stream), alarm.to_bytes(), Priority.ALARM)
        uplink.start()
        try:
            def seen() -> int:
                return len(set(telemetry) & collector.distinct())

            assert await until(lambda: str(alarm.id) in collector.distinct() and seen() == 5, 20)
            await asyncio.sleep(1.5)  # the uplink re-tries on its own timer; the pace's clock has not moved
            first = seen()
            clock[0] += 10.0  # ten seconds: the bucket refills to its burst of 5, no further
            assert await until(lambda: seen() == 10, 20)
            await asyncio.sleep(1.5)
            return first, seen(), journal.outbox.count()
        finally:
            uplink.stop()
            journal.close()

    first, then, waiting = asyncio.run(scenario())
    assert (first, then, waiting) == (5, 10, 20)
