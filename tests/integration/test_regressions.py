# SPDX-License-Identifier: MIT
"""Regression tests for reported bugs: each test states the correct behaviour.

- Subscription Identifiers must stay with the session whose subscriptions matched, and No Local
  drops the identifier of the subscription it excludes.
- An outbound Topic Alias must not push a PUBLISH over the client's Maximum Packet Size.
- Shared subscriptions never get retained messages (MQTT 5 §4.8.2), whatever the topic.
- A WebSocket read holding a CONNECT and a close frame (the connection handed to another worker)
  does not take the broker down.
- A long auto_id_prefix: refused with file:line, or distinct assigned identifiers, promptly."""
import queue
import socket
import struct
import time

import pytest

from paho.mqtt.packettypes import PacketTypes

from conftest import IS_MOSQUITTO, Broker, Client, Closed, connect_pkt, several_workers, s16, varint
from test_v5 import V5, Raw5, props, publish5, subscribe5, u16, u32
from test_ws import OP_BIN, OP_CLOSE, OP_PING, Ws, frame, ws_broker, ws_client

# property identifiers
TOPIC_ALIAS_MAX, MAX_PACKET_SIZE = 0x22, 0x27
ASSIGNED_CLIENT_ID = 0x12


def drain(v5, first=5.0, quiet=0.5):
    """Every message a V5 client gets: waits up to 'first' seconds for one, then until nothing
    came for 'quiet' seconds (bounded)."""
    got = []
    deadline = time.monotonic() + 10
    wait = first
    while time.monotonic() < deadline:
        try:
            got.append(v5.msgs.get(timeout=wait))
        except queue.Empty:
            break
        wait = quiet
    return got


def sub_ids(m):
    return list(getattr(m.properties, "SubscriptionIdentifier", []) or [])


# --- 1. Subscription Identifiers with No Local ---------------------------------------------------

@several_workers  # it starts its own 1- and 4-worker brokers: once per build is enough
@pytest.mark.parametrize("workers", [1, 4])
@pytest.mark.parametrize("qos", [0, 1])
def test_subscription_identifiers_stay_with_their_session_and_no_local_drops_its_own(broker,
                                                                                     qos, workers):
    b = broker(workers=workers)
    s = V5(b.port, "si-s")
    # several T sessions: with several workers some share S's worker (and its routing table)
    ts = [V5(b.port, f"si-t{i}") for i in range(6)]
    try:
        s.sub("a/#", 1, noLocal=True, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=5))
        s.sub("a/b", 1, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
        for t in ts:
            t.sub("a/b", 1, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9))
        s.pub("a/b", b"from s", qos)
        for i, t in enumerate(ts):
            got_t = drain(t)
            assert [(m.topic, m.payload) for m in got_t] == [("a/b", b"from s")], got_t
            assert sub_ids(got_t[0]) == [9], \
                f"T{i}'s message carries identifiers {sub_ids(got_t[0])}, want [9]"
        got_s = drain(s)
        assert [(m.topic, m.payload) for m in got_s] == [("a/b", b"from s")], got_s
        assert sub_ids(got_s[0]) == [7], \
            f"S's message carries identifiers {sub_ids(got_s[0])}, want [7] (No Local on a/#)"
    finally:
        for c in [s] + ts:
            c.close()


# --- 2. Maximum Packet Size with outbound topic aliases ------------------------------------------

@pytest.mark.parametrize("qos", [0, 1])
def test_topic_alias_never_pushes_a_publish_over_the_maximum_packet_size(broker, qos):
    b = broker()
    topic, payload = "mps/alias/topic", b"p" * 20
    # the PUBLISH the subscriber gets: no properties from the publisher, no identifier
    body = 2 + len(topic) + (2 if qos else 0) + 1 + len(payload)
    plain = 1 + len(varint(body)) + body  # exactly what fits without a Topic Alias
    with_alias = 1 + len(varint(body + 3)) + body + 3
    assert with_alias > plain
    limit = plain
    r = Raw5(b.port)
    try:
        r.connect5("mps-alias", cprops=[(MAX_PACKET_SIZE, u32(limit)),
                                        (TOPIC_ALIAS_MAX, u16(10))])
        r.send(subscribe5(1, [(topic, qos)]))
        first, sbody, raw = r.recv_packet()
        assert first == 0x90, raw
        p = Raw5(b.port)
        p.connect5("mps-pub")
        for i in range(3):
            p.send(publish5(topic, payload, qos=qos, pid=10 + i))
            if qos:
                first, _, raw = p.recv_packet()
                assert first == 0x40, raw
        got = []
        for i in range(3):
            first, pbody, raw = r.recv_packet(timeout=3.0)
            assert len(raw) <= limit, \
                f"a packet of {len(raw)} bytes over Maximum Packet Size {limit}: {raw!r}"
            assert first >> 4 == 3, f"expected PUBLISH, got {raw!r}"
            got.append(raw)
            if qos:
                tl = struct.unpack(">H", pbody[:2])[0]
                r.send(bytes([0x40, 2]) + pbody[2 + tl:4 + tl])  # PUBACK
        for raw in got:
            assert raw.endswith(payload) and s16(topic) in raw, raw  # topic sent in full
        p.close()
    finally:
        r.close()


# --- 3. shared subscriptions never get retained messages -----------------------------------------

def test_shared_subscription_gets_no_retained_message(broker):
    b = broker()
    pub = Raw5(b.port)
    pub.connect5("ret-pub")
    pub.send(publish5("r/x", b"kept", qos=1, pid=1, retain=True))
    first, _, raw = pub.recv_packet()
    assert first == 0x40, raw
    plain = Raw5(b.port)
    plain.connect5("ret-plain")
    plain.send(subscribe5(1, [("r/x", 0)]))
    assert plain.recv_packet()[0] == 0x90
    assert plain.publish5()[3] == b"kept"  # it is retained
    m = Raw5(b.port)
    m.connect5("ret-member")
    m.send(subscribe5(1, [("$share/g/r/x", 0)]))
    first, _, raw = m.recv_packet()
    assert first == 0x90, raw
    m.no_data(1.0)  # MQTT 5 §4.8.2: no retained message for a shared subscription
    legacy = Client(b.port, "ret-legacy")
    try:
        legacy.connect()
        legacy.subscribe("$share/g/r/x", 0)
        legacy.no_messages(1.0)
    finally:
        legacy.close()


def test_retained_publish_to_a_share_topic_name_never_reaches_a_shared_subscription(broker):
    b = broker()
    pub = Raw5(b.port)
    pub.connect5("share-pub")
    pub.send(publish5("$share/g/z", b"odd", qos=1, pid=1, retain=True))
    try:  # a PUBACK (any reason), a DISCONNECT or a plain close: all are fine
        first, body, raw = pub.recv_packet(timeout=3.0)
        assert first in (0x40, 0xE0), raw
    except Closed:
        pass
    assert b.alive(), "the broker died on a PUBLISH to $share/g/z"
    pub311 = Client(b.port, "share-pub311")
    try:
        pub311.connect()
        pub311.c.publish("$share/g/z", b"odd311", 1, True)
        time.sleep(0.3)
    finally:
        pub311.close()
    assert b.alive(), "the broker died on a 3.1.1 PUBLISH to $share/g/z"
    m = Raw5(b.port)
    m.connect5("share-member")
    m.send(subscribe5(1, [("$share/g/z", 0)]))
    first, _, raw = m.recv_packet()
    assert first == 0x90, raw
    m.no_data(1.0)
    m2 = Raw5(b.port)
    m2.connect5("share-member2")
    m2.send(subscribe5(1, [("$share/g/#", 0)]))
    first, _, raw = m2.recv_packet()
    assert first == 0x90, raw
    m2.no_data(1.0)
    legacy = Client(b.port, "share-legacy")
    try:
        legacy.connect()
        legacy.subscribe("$share/g/z", 0)
        legacy.no_messages(1.0)
    finally:
        legacy.close()
    assert b.alive()


# --- 4. WebSocket: CONNECT and close frame in one read, handed to another worker ------------------

@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's listener options")
def test_ws_connect_and_close_frame_in_one_write_do_not_take_the_broker_down(broker):
    b = ws_broker(broker, workers=4)  # most client ids belong to another worker: a hand-off
    for i in range(12):
        ws = Ws(b.ws_port)
        try:
            ws.raw.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ws.send(frame(OP_BIN, connect_pkt(f"ws-cc-{i}")) +
                    frame(OP_CLOSE, struct.pack(">H", 1000)))
            time.sleep(0.05)
            try:
                ws.send(frame(OP_PING, b"still?") + frame(OP_BIN, b"\xc0\x00"))
            except OSError:
                pass  # already closed: fine
            ws.raw.wait_closed(3.0)  # whatever the answer, bounded
        finally:
            ws.close()
        assert b.alive(), f"the broker died after client ws-cc-{i}:\n{b.stderr()[-3000:]}"
    c = Client(b.port, "after-ws")
    try:
        c.connect()
        c.subscribe("after/ws", 1)
        c.publish("after/ws", b"ok", qos=1)
        assert c.wait_messages(1)[0].payload == b"ok"
    finally:
        c.close()
    w = ws_client(b.ws_port, "after-ws-paho")
    try:
        w.connect()
    finally:
        w.close()
    assert b.alive()


# --- 5. a long auto_id_prefix ----------------------------------------------------------------------

@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's worker option")
@pytest.mark.parametrize("workers", [4, 1])
def test_long_auto_id_prefix_is_refused_or_gives_distinct_ids_promptly(tmp_path, workers):
    prefix = "p" * 200
    b = Broker(tmp_path, [f"auto_id_prefix {prefix}"], workers=workers)
    # the generated file: listener, allow_anonymous, workers, then our line
    line = b.conf.read_text().splitlines().index(f"auto_id_prefix {prefix}") + 1
    try:
        b.start()
    except RuntimeError:
        err = b.stderr()
        assert f"{b.conf}:{line}" in err, f"refused without naming the file and line:\n{err}"
        b.proc.wait(5)
        b._err.close()
        return
    conns, ids = [], []
    try:
        for i in range(4):
            r = Raw5(b.port, timeout=5.0)
            conns.append(r)
            t0 = time.monotonic()
            try:
                _, rc, pr = r.connect5("", expect_rc=0)
            except TimeoutError:
                raise AssertionError(f"no CONNACK within 5 s for auto-id client {i} "
                                     f"(workers {workers})")
            assert time.monotonic() - t0 < 5.0
            assert ASSIGNED_CLIENT_ID in pr, f"no Assigned Client Identifier: {pr}"
            ids.append(pr[ASSIGNED_CLIENT_ID][0].decode())
        assert all(ids), ids
        assert len(set(ids)) == 4, f"assigned identifiers not distinct: {ids}"
    finally:
        for r in conns:
            r.close()
        stop_error = None
        try:
            rc = b.stop(timeout=5.0)  # kills it when it does not exit
        except AssertionError as e:
            stop_error = f"{e}; ids so far {ids}"
    assert stop_error is None, stop_error
    assert rc == 0, b.stderr()[-3000:]
