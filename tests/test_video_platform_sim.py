"""The simulated police video platform of `make run`: digest-authenticated REGISTER over UDP, a
refusal for a wrong password, an unknown device and a datagram that is not SIP (each counted),
and the platform still serving after them."""

from __future__ import annotations

import asyncio

from firmware_sim.video_platform import SimulatedVideoPlatform
from wire import sip

PLATFORM, DOMAIN, DEVICE = "37081100002000000001", "3708110000", "37081100001180000001"


class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.answers: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.answers.put_nowait(data)


def register(local_port: int, device: str = DEVICE, authorization: str | None = None) -> bytes:
    req = sip.build_request(
        "REGISTER", f"sip:{PLATFORM}@{DOMAIN}", via=sip.Via("UDP", "127.0.0.1", local_port, {"branch": sip.new_branch()}),
        from_addr=sip.Address(sip.SipUri(device, DOMAIN), {"tag": sip.new_tag()}),
        to_addr=sip.Address(sip.SipUri(device, DOMAIN)), call_id=sip.new_call_id(), cseq=1,
        extra=[("Expires", "3600")] + ([("Authorization", authorization)] if authorization else []))
    return sip.encode(req)


def test_registration_with_digest_and_refusals():
    async def scenario():
        platform = await SimulatedVideoPlatform(PLATFORM, DOMAIN, {DEVICE: "right"}).start()
        transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
            Client, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", platform.port))
        port = transport.get_extra_info("sockname")[1]

        async def ask(data: bytes) -> sip.SipResponse:
            transport.sendto(data)
            return sip.parse_datagram(await asyncio.wait_for(client.answers.get(), 5))

        def creds(password: str, challenge: sip.DigestChallenge, device: str = DEVICE) -> str:
            return sip.authorize(challenge, device, password, "REGISTER", f"sip:{PLATFORM}@{DOMAIN}").encode()

        try:
            first = await ask(register(port))
            assert first.status == 401
            challenge = sip.parse_challenge(first.headers.get("www-authenticate"))
            assert challenge.realm == DOMAIN
            assert (await ask(register(port, authorization=creds("wrong", challenge)))).status == 403
            stranger = "37081100001180000099"
            assert (await ask(register(port, stranger, creds("right", challenge, stranger)))).status == 403
            transport.sendto(b"\x00not sip at all")
            ok = await ask(register(port, authorization=creds("right", challenge)))
            assert ok.status == 200 and ok.headers.get("expires") == "3600"
            assert set(platform.registered) == {DEVICE} and platform.counters["refused"] == 3
        finally:
            transport.close()
            await platform.close()

    asyncio.run(scenario())
