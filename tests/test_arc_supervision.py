"""The receiver's account supervision: an account that falls silent gets a communications failure
recorded (SIA YC) once per silence, and a restoral (YK) when an authenticated frame comes again;
frames that fail authentication do not count as heard."""

from __future__ import annotations

import asyncio

from arc.receiver import ArcAccount, ArcLimits, ArcReceiver
from contracts.timefmt import utcnow
from wire import dc09
from tests.test_arc_server import KEY, KEYED, PLAIN, Peer, reframe


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _path_events(receiver: ArcReceiver, want: int) -> list[tuple[str, str]]:
    """(account, code) of the stored path events once `want` of them are there (bounded wait)."""
    for _ in range(200):
        events = [(a.account, a.code) for a in receiver.store.alarms() if a.protocol == "ARC"]
        if len(events) >= want:
            return events
        await asyncio.sleep(0.02)
    return events


def test_a_silent_account_is_recorded_once_and_restored_when_heard_again():
    async def scenario():
        accounts = {PLAIN: ArcAccount(plaintext=True, facility="F001", silence_s=30),
                    KEYED: ArcAccount(key=KEY.hex(), facility="F002")}
        receiver = ArcReceiver(accounts, limits=ArcLimits(account_silence_s=3600))
        await receiver.start()
        peer = await Peer().open(receiver.port)  # KEYED is heard
        try:
            later = asyncio.get_running_loop().time() + 31
            assert receiver.check_silence(later) == [PLAIN]
            assert receiver.check_silence(later + 10) == []  # once per silence
            assert await _path_events(receiver, 1) == [(PLAIN, "YC")]
            # A frame in PLAIN's name that fails its CRC is not PLAIN being heard.
            good = dc09.encode_null(account=PLAIN, seq=1, now=utcnow())
            body = good[9:-1].decode()
            assert await peer.unanswered(reframe(body)[:1] + b"0000" + reframe(body)[5:], probe_seq=2)
            assert receiver.counters["path_restorals"] == 0
            assert (await peer.ask(good)).kind == "ACK"
            events = await _path_events(receiver, 2)
            assert events == [(PLAIN, "YC"), (PLAIN, "YK")]
            assert receiver.counters["path_failures"] == 1 and receiver.counters["path_restorals"] == 1
            (failure,) = [a for a in receiver.store.alarms() if a.code == "YC"]
            assert failure.facility == "F001" and "no authenticated frame for" in failure.content
        finally:
            peer.close()
            await receiver.close()

    run(scenario())


def test_the_receiver_supervises_on_its_own_timer():
    async def scenario():
        accounts = {PLAIN: ArcAccount(plaintext=True, silence_s=0.2), KEYED: ArcAccount(key=KEY.hex())}
        receiver = ArcReceiver(accounts, limits=ArcLimits(account_silence_s=3600))
        await receiver.start()
        try:
            return await _path_events(receiver, 1)
        finally:
            await receiver.close()

    assert run(scenario()) == [(PLAIN, "YC")]
