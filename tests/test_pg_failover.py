"""PostgreSQL that survives its machine: a primary and a synchronous streaming standby, the cloud
on the multi-host URL (target_session_attrs=read-write). The primary is killed under ingest load
and the standby promoted: the cloud finds the new primary by itself, and every envelope the
broker had from the publisher is stored, once."""

from __future__ import annotations

import threading
import time

import httpx
import sqlalchemy as sa

from cloud.config import TokenEntry
from cloud.store.db import envelopes
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from testing.services import postgres_replicated
from tests.test_cloud_ingest import Publisher, start_cloud, wait_until

TOKEN = "t-police-0123456789"


def stored_ids(url: str, ids: list[str]) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(envelopes.c.id).where(envelopes.c.id.in_(ids))).scalars())
    finally:
        engine.dispose()


def test_promoted_standby_takes_over_under_ingest_load(mosquitto):
    with postgres_replicated(synchronous=True) as pg:
        cloud = start_cloud(mosquitto.url, pg.url, shared_subscription=True, ingest_workers=2,
                            tokens=[TokenEntry(token=TOKEN, user="p", role="police")])
        pub = Publisher(mosquitto.url)
        sent: list[str] = []
        stop = threading.Event()

        def publish() -> None:
            # About 200 envelopes a second from 20 facilities, each confirmed by the broker.
            for i in range(100_000):
                if stop.is_set():
                    return
                fac = f"HA{i % 20:02d}"
                env = make_envelope(fac, "event.device", {"device_id": "door-1", "event": "open", "n": i})
                pub.send(up(fac, Stream.EVENT), env.to_bytes())
                sent.append(str(env.id))
                time.sleep(0.005)

        publisher = threading.Thread(target=publish, daemon=True)
        try:
            publisher.start()
            wait_until(lambda: cloud.counters["stored"] >= 300, timeout=30, what="ingest under way")
            pg.primary.kill()
            time.sleep(1.0)  # the failure is noticed (store errors) before a primary exists again
            pg.standby.promote()
            wait_until(lambda: cloud.counters["store_errors"] > 0, timeout=20, what="the failure to be seen")
            after = len(sent)
            wait_until(lambda: len(sent) >= after + 300, timeout=30, what="more envelopes after the promotion")
            stop.set()
            publisher.join(10)
            wait_until(lambda: len(stored_ids(pg.standby.url(), sent)) == len(sent), timeout=60,
                       what="every envelope the broker confirmed in the promoted standby")
            # The API process reconnected too: a page that reads the store answers.
            r = httpx.get(f"{cloud.url}/api/alarms", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert r.status_code == 200, r.text
        finally:
            stop.set()
            pub.close()
            cloud.stop()
