# SPDX-License-Identifier: MIT
"""Limits and malformed input: message_size_limit, max_packet_size, max_connections,
max_keepalive, garbage bytes. A bad connection is closed; nobody else notices."""
import socket
import time

import pytest

from conftest import (HOST, Closed, PINGREQ_PKT, PINGRESP_PKT, PUBACK, PUBCOMP, PUBREC, PUBREL, Raw,
                      ack_pkt, connack_bytes, connect_pkt, publish_pkt, roundtrip_ok)


def test_message_size_limit_drops_oversize_publish_but_acks_it(broker, raw):
    b = broker("message_size_limit 10")
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("msl/#", 2)]) == [2]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("msl/big", b"x" * 11, qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    p.send(publish_pkt("msl/big", b"y" * 11, qos=0))
    p.send(publish_pkt("msl/big", b"z" * 11, qos=2, pid=2))
    p.expect(ack_pkt(PUBREC, 2))
    p.send(ack_pkt(PUBREL, 2))
    p.expect(ack_pkt(PUBCOMP, 2))
    p.send(publish_pkt("msl/ok", b"w" * 10, qos=0))
    m = s.recv_publish()
    assert (m.topic, m.payload) == ("msl/ok", b"w" * 10)
    s.no_data(0.3)
    p.send(PINGREQ_PKT)
    p.expect(PINGRESP_PKT)  # the publisher stays connected


def test_message_size_limit_oversize_retained_is_not_stored(broker, raw):
    b = broker("message_size_limit 4")
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("msl/r", b"12345", qos=1, pid=1, retain=True))
    p.expect(ack_pkt(PUBACK, 1))
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("msl/r", 0)]) == [0]
    s.no_data(0.3)


def test_a_will_over_message_size_limit_is_refused_at_connect(broker, raw):
    """As mosquitto: CONNACK 5 (MQTT 5: 0x95 Packet too large) rather than a will that could
    never be published; a will within the limit is accepted."""
    b = broker("message_size_limit 1")
    ok = raw(b.port)
    ok.send(connect_pkt("w-ok", will=("will/t", b"A", 0, False)))
    ok.expect(connack_bytes(0))
    bad = raw(b.port)
    bad.send(connect_pkt("w-bad", will=("will/t", b"AB", 0, False)))
    bad.expect(connack_bytes(5))
    assert bad.wait_closed()


def test_max_packet_size_closes_oversized_packet(broker, raw):
    b = broker("max_packet_size 100")
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("mps/t", 0)]) == [0]
    p = raw(b.port)
    p.connect("pub")
    small = publish_pkt("mps/t", b"a" * 50)
    assert len(small) < 100
    p.send(small)
    assert s.recv_publish().payload == b"a" * 50
    big = publish_pkt("mps/t", b"b" * 200)
    p.send(big)
    assert p.wait_closed()
    s.no_data(0.3)
    s.send(PINGREQ_PKT)
    s.expect(PINGRESP_PKT)


def test_max_packet_size_applies_to_connect(broker, raw):
    b = broker("max_packet_size 40")
    r = raw(b.port)
    r.send(connect_pkt("c" * 60))
    assert r.wait_closed()
    r2 = raw(b.port)
    r2.connect("short")


def test_max_connections_refuses_extra_connections(broker, raw):
    b = broker("max_connections 2")

    def admitted(cid):
        # the fixture's readiness probe may still count until the broker sees it closed
        deadline = time.monotonic() + 3
        while True:
            r = raw(b.port)
            try:
                r.connect(cid)
                return r
            except Closed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    a = admitted("one")
    c = admitted("two")
    x = Raw(b.port)
    try:
        try:
            x.send(connect_pkt("three"))
        except OSError:
            pass
        assert x.wait_closed()
        assert x.buf == b""
    finally:
        x.close()
    # the two admitted clients are unaffected
    for r in (a, c):
        r.send(PINGREQ_PKT)
        r.expect(PINGRESP_PKT)
    # when one leaves, a new one gets in
    a.send(b"\xe0\x00")
    assert a.wait_closed()
    deadline = time.monotonic() + 3
    while True:
        y = Raw(b.port)
        try:
            y.send(connect_pkt("four"))
            y.expect(connack_bytes(0), timeout=1)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            y.close()


@pytest.mark.parametrize("garbage", [
    b"\xf0\x00",                           # AUTH (type 15) does not exist in 3.1.1
    b"\x30\xff\xff\xff\xff\x7f",           # remaining length longer than 4 bytes
    b"\x00\x02\x00\x00",                   # reserved packet type 0
    b"\x62\x02\x00\x00",                   # PUBREL with packet id 0
    b"\x82\x02\x00\x01",                   # SUBSCRIBE with no filter
    b"\xa2\x02\x00\x01",                   # UNSUBSCRIBE with no filter
    b"\x30\x04\x00\x05ab",                 # topic length beyond the packet
    b"\x30\x04\x00\x02\xc3\x28",           # invalid UTF-8 topic
    b"\x30\x04\x00\x02a\x00",              # NUL in topic
])
def test_malformed_packet_closes_only_that_connection(broker, raw, garbage):
    b = broker()
    other = raw(b.port)
    other.connect("bystander")
    assert other.subscribe([("by/t", 0)]) == [0]
    bad = raw(b.port)
    bad.connect("vandal")
    bad.send(garbage)
    assert bad.wait_closed()
    assert roundtrip_ok(b.port)
    other.send(PINGREQ_PKT)
    other.expect(PINGRESP_PKT)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x10\xff\xff\xff\xff\x0f",
    b"\x10\x02\x00\x04",
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x05ab",  # client id beyond the packet
])
def test_garbage_before_connect_closes(broker, raw, garbage):
    b = broker()
    r = raw(b.port)
    r.send(garbage)
    assert r.wait_closed()
    assert roundtrip_ok(b.port)


def test_truncated_packet_then_close_does_not_harm_broker(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("trunc")
    r.send(publish_pkt("t/t", b"x" * 100)[:20])
    r.close()
    assert roundtrip_ok(b.port)


def test_packet_split_into_single_bytes_is_reassembled(broker, raw):
    b = broker()
    r = raw(b.port)
    for byte in connect_pkt("drip"):
        r.send(bytes([byte]))
        time.sleep(0.002)
    r.expect(connack_bytes(0))
    pkts = publish_pkt("drip/t", b"abc") + PINGREQ_PKT
    r.send(bytes([0x82, 11, 0, 1, 0, 6]) + b"drip/t" + b"\x00")
    r.expect(b"\x90\x03\x00\x01\x00")
    for byte in pkts:
        r.send(bytes([byte]))
    assert r.recv_publish().payload == b"abc"
    r.expect(PINGRESP_PKT)


def test_many_packets_in_one_segment(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("burst")
    assert r.subscribe([("burst/t", 1)]) == [1]
    r.send(b"".join(publish_pkt("burst/t", b"%d" % i, qos=1, pid=i + 1) for i in range(50)))
    acks, pubs = set(), []
    while len(acks) < 50 or len(pubs) < 50:
        first, body, rawb = r.recv_packet()
        if first == 0x40:
            acks.add(int.from_bytes(body, "big"))
        else:
            from conftest import Pub
            p = Pub(first, body)
            pubs.append(p.payload)
            r.send(ack_pkt(PUBACK, p.pid))
    assert acks == set(range(1, 51))
    assert pubs == [b"%d" % i for i in range(50)]


def test_max_keepalive_refuses_larger_keepalive_with_identifier_rejected(broker, raw):
    """Starling refuses a 3.1.1/3.1 client whose keepalive exceeds max_keepalive with CONNACK
    0x02 (mosquitto.conf(5) of 2.0; the 2.0.11 binary on this machine still accepts it)."""
    b = broker("max_keepalive 30")
    r = raw(b.port)
    r.send(connect_pkt("ka-big", keepalive=31))
    r.expect(connack_bytes(2))
    assert r.wait_closed()
    r = raw(b.port)
    r.send(connect_pkt("ka-old", keepalive=31, proto=3))
    r.expect(connack_bytes(2))
    assert r.wait_closed()
    ok = raw(b.port)
    ok.send(connect_pkt("ka-ok", keepalive=30))
    ok.expect(connack_bytes(0))


def test_publish_above_max_qos_disconnects(broker, raw):
    b = broker("max_qos 1")
    r = raw(b.port)
    r.connect("q2-pub")
    r.send(publish_pkt("mq/t", b"x", qos=1, pid=1))
    r.expect(ack_pkt(PUBACK, 1))
    r.send(publish_pkt("mq/t", b"x", qos=2, pid=2))
    assert r.wait_closed()


def test_broker_survives_abrupt_resets(broker, raw):
    b = broker()
    for i in range(20):
        s = socket.create_connection((HOST, b.port), timeout=5)
        s.sendall(connect_pkt(f"rst{i}") + publish_pkt("rst/t", b"x" * 1000))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    assert roundtrip_ok(b.port)


def test_large_payload_roundtrip(broker, client):
    b = broker()
    c = client(b.port, "big").connect()
    c.subscribe("big/t", 1)
    payload = bytes(range(256)) * 4096  # 1 MiB
    c.publish("big/t", payload, qos=1, timeout=10)
    m = c.wait_messages(1, timeout=10)[0]
    assert m.payload == payload
