"""A broker URL naming several brokers (a cluster's nodes): parsed strictly, and a client (as the
edge uplink and the cloud downlink make it) moves to the next broker when its own goes away."""

from __future__ import annotations

import threading

import pytest

from testing.services import Mosquitto
from tests.test_cloud_ingest import wait_until
from wire.mqtt_client import BrokerAddress, make_client, parse_broker_urls


def test_several_brokers_in_one_url():
    assert parse_broker_urls("mqtt://u:p%40ss@a:1884,b,[::1]:1885") == [
        BrokerAddress("a", 1884, "u", "p@ss"), BrokerAddress("b", 1883, "u", "p@ss"),
        BrokerAddress("::1", 1885, "u", "p@ss")]
    # Over TLS every node gets the same trust and client certificate.
    assert parse_broker_urls("mqtts://MQ1,mq2:8884?cafile=/ca.pem&certfile=/c.pem&keyfile=/k.pem") == [
        BrokerAddress("mq1", 8883, None, None, True, "/ca.pem", "/c.pem", "/k.pem"),
        BrokerAddress("mq2", 8884, None, None, True, "/ca.pem", "/c.pem", "/k.pem")]


@pytest.mark.parametrize("url, message", [("http://a", "scheme must be mqtt://"), ("mqtt://a,,b", "no host"),
                                          ("mqtt://a:99999", "port '99999'"), ("mqtt://a:x", "port 'x'")])
def test_bad_broker_urls_name_the_fault(url, message):
    with pytest.raises(ValueError, match=message):
        parse_broker_urls(url)


def test_client_moves_to_the_next_broker():
    first, second = Mosquitto(), Mosquitto()
    with first, second:
        client, _ = make_client(f"mqtt://127.0.0.1:{first.port},127.0.0.1:{second.port}", "failover-test")
        ports: list[int] = []
        connected = threading.Event()

        def on_connect(c, userdata, flags, rc, props):
            ports.append(c.port)
            connected.set()

        client.on_connect = on_connect
        client.connect_async("127.0.0.1", first.port)
        client.loop_start()
        try:
            assert connected.wait(10) and ports == [first.port]
            first.stop()  # the node goes away
            wait_until(lambda: second.port in ports, timeout=20, what="a connection to the second broker")
            info = client.publish("t", b"x", qos=1)
            info.wait_for_publish(5)
            assert info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()
