"""The benchmarks' police receiver on a thread of its own (testing/server_thread.py): a panic sent
from this (synchronous) thread is recorded by zone, a restore is not, and stop frees the port."""

import socket

from arc.receiver import ArcAccount, ArcReceiver
from contracts.timefmt import utcnow
from testing.server_thread import PanicArrivals, ServerThread
from testing.services import LOOPBACK
from wire import dc09


def send(port: int, code: str, zone: int, seq: int) -> dc09.Response:
    frame = dc09.encode_event(dc09.EventData(code=code, zone=zone), protocol="SIA-DCS", account="1234", seq=seq,
                              now=utcnow())
    with socket.create_connection((LOOPBACK, port), timeout=5) as s:
        s.sendall(frame)
        reply = b""
        while not reply.endswith(b"\r"):
            chunk = s.recv(1024)
            assert chunk, "receiver hung up without a reply"
            reply += chunk
    return dc09.decode_response(reply)


def test_receiver_on_its_thread_records_panics_by_zone_and_stops():
    arrivals = PanicArrivals()
    with ServerThread(ArcReceiver({"1234": ArcAccount(plaintext=True)}, on_alarm=arrivals), name="arc") as arc:
        port = arc.server.port
        assert port > 0 and arc.thread.is_alive()
        assert send(port, "PA", 7, 1).kind == "ACK"
        assert send(port, "PR", 8, 2).kind == "ACK"
        assert send(port, "PA", 7, 3).kind == "ACK"
        assert list(arrivals.arrived) == [7]
        first = arrivals.arrived[7]
    assert arrivals.arrived[7] == first  # the first arrival is kept
    assert not arc.thread.is_alive() and arc.loop.is_closed()
    with socket.socket() as s:
        assert s.connect_ex((LOOPBACK, port)) != 0
