"""PoliceLink against pysiaalarm's asyncio TCP receiver, an implementation we did not write."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from pysiaalarm import SIAAccount
from pysiaalarm.aio import SIAClient

from testing.services import LOOPBACK, free_port
from contracts.alarms import AlarmKind
from contracts.dc09_codes import CID_CODES
from contracts.timefmt import utcnow
from edge.config import PoliceConfig
from edge.police.dc09_link import PoliceEvent, PoliceLink

ACCOUNT = "A1B2C3"
# pysiaalarm uses the key's characters as the AES key bytes, so the keys are hex-digit text; our
# config carries the same bytes in hex.
KEY128 = "0123456789ABCDEF"
KEY256 = "0123456789ABCDEF0123456789ABCDEF"


async def _deliver(protocol: str, key: str | None, kind: AlarmKind, restore: bool, zone: int):
    got: asyncio.Queue = asyncio.Queue()

    async def on_event(event):
        await got.put(event)

    port = free_port()
    receiver = SIAClient(LOOPBACK, port, [SIAAccount(ACCOUNT, key)], on_event)
    await receiver.async_start()
    cfg = PoliceConfig(account=ACCOUNT, protocol=protocol, key=key.encode().hex() if key else None,
                       receiver_number="1", receivers=[{"host": LOOPBACK, "port": port}], ack_timeout_s=2)
    link = PoliceLink(cfg)
    try:
        event = PoliceEvent(alarm_id=uuid.uuid4(), kind=kind, restore=restore, zone=zone,
                            ts=utcnow() - timedelta(seconds=2))
        delivery = await asyncio.wait_for(link.send(event), 10)
        received = await asyncio.wait_for(got.get(), 5)
        return event, delivery, received, port
    finally:
        await link.close()
        await receiver.async_stop()


@pytest.mark.parametrize("protocol, key, kind, restore, zone, code", [
    ("SIA-DCS", None, AlarmKind.PANIC, False, 7, "PA"),
    ("SIA-DCS", KEY128, AlarmKind.PANIC, True, 12, "PR"),
    ("SIA-DCS", KEY256, AlarmKind.FIRE, False, 999, "FA"),
    ("ADM-CID", None, AlarmKind.PANIC, False, 3, "PA"),
    ("ADM-CID", KEY128, AlarmKind.INTRUSION, False, 41, "BA"),
    ("ADM-CID", KEY256, AlarmKind.TAMPER, False, 5, "TA"),
])
def test_pysiaalarm_receives_event(protocol, key, kind, restore, zone, code):
    event, delivery, received, port = asyncio.run(_deliver(protocol, key, kind, restore, zone))
    assert delivery.receiver == f"{LOOPBACK}:{port}"
    assert delivery.attempts == 1
    assert received.account == ACCOUNT
    assert received.code == code
    assert received.sequence == f"{delivery.seq:04d}"
    assert received.encrypted is (key is not None)
    texts = {x.identifier: x.value for x in received.extended_data or []}
    assert texts["I"] == str(event.alarm_id)
    if protocol == "SIA-DCS":
        assert int(received.message) == zone  # Nri<area>/<code><zone>
        assert texts["H"] == event.ts.strftime("_%H:%M:%S,%m-%d-%Y")
    else:
        assert int(received.ri) == zone  # Contact ID: Q EEE PP ZZZ
        assert received.event_qualifier + received.event_type == CID_CODES[(kind, restore)]


def test_pysiaalarm_acks_null_supervision():
    async def scenario():
        async def on_event(event):
            pass

        port = free_port()
        receiver = SIAClient(LOOPBACK, port, [SIAAccount(ACCOUNT, KEY128)], on_event)
        await receiver.async_start()
        ups: asyncio.Queue = asyncio.Queue()
        # No receiver number: pysiaalarm then answers with an odd route ("None" for R); still an ACK.
        cfg = PoliceConfig(account=ACCOUNT, key=KEY128.encode().hex(), receivers=[{"host": LOOPBACK, "port": port}],
                           supervision_interval_s=0.1)
        link = PoliceLink(cfg, on_path_change=lambda name, up, reason: ups.put_nowait((name, up)))
        await link.start()
        try:
            assert await asyncio.wait_for(ups.get(), 5) == (f"{LOOPBACK}:{port}", True)
            assert link.path_states() == {f"{LOOPBACK}:{port}": True}
        finally:
            await link.close()
            await receiver.async_stop()
    asyncio.run(asyncio.wait_for(scenario(), 20))
