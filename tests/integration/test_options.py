# SPDX-License-Identifier: MIT
"""More mosquitto 2.0 behaviour: $SYS, option effects, CONNECT details."""
import time

import pytest

from conftest import (IS_MOSQUITTO, PINGREQ_PKT, PINGRESP_PKT, PUBACK, ack_pkt, connack_bytes,
                      connect_pkt, packet, publish_pkt, s16, unsubscribe_pkt)


# --- $SYS ------------------------------------------------------------------------------------

def test_sys_tree_is_retained_and_has_mosquitto_topics(broker, raw):
    b = broker("sys_interval 1")
    time.sleep(1.3)
    r = raw(b.port)
    r.connect("sysall")
    assert r.subscribe([("$SYS/#", 0)]) == [0]
    seen = {}
    want = ["$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
            "$SYS/broker/messages/sent", "$SYS/broker/bytes/sent",
            "$SYS/broker/subscriptions/count", "$SYS/broker/load/bytes/received/1min"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not all(t in seen for t in want):
        try:
            p = r.recv_publish(0.5)
        except TimeoutError:
            break
        seen.setdefault(p.topic, p)
    for t in want:
        assert t in seen, f"{t} missing from {sorted(seen)}"
    # what arrives first on subscribing is the retained copy
    assert seen["$SYS/broker/version"].retain
    assert seen["$SYS/broker/clients/connected"].payload.isdigit()


def test_sys_interval_0_disables_sys(broker, raw):
    b = broker("sys_interval 0")
    r = raw(b.port)
    r.connect("nosys")
    assert r.subscribe([("$SYS/#", 0)]) == [0]
    r.no_data(1.5)


def test_sys_connected_clients_count_follows_connections(broker, raw):
    b = broker("sys_interval 1")
    others = []
    for i in range(3):
        o = raw(b.port)
        o.connect(f"cnt{i}")
        others.append(o)
    r = raw(b.port)
    r.connect("counter")
    assert r.subscribe([("$SYS/broker/clients/connected", 0)]) == [0]
    deadline = time.monotonic() + 4
    value = None
    while time.monotonic() < deadline:
        value = int(r.recv_publish(3).payload)
        if value == 4:
            break
    assert value == 4


# --- option effects --------------------------------------------------------------------------

def test_upgrade_outgoing_qos_delivers_at_subscription_qos(broker, raw):
    b = broker("upgrade_outgoing_qos true")
    s = raw(b.port)
    s.connect("up")
    assert s.subscribe([("up/t", 1)]) == [1]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("up/t", b"x", qos=0))
    m = s.recv_publish()
    assert (m.payload, m.qos) == (b"x", 1)
    s.send(ack_pkt(PUBACK, m.pid))


@pytest.mark.skipif(IS_MOSQUITTO, reason="reads Starling's log format")
def test_auto_id_prefix_is_used_for_assigned_ids(broker, raw):
    b = broker("auto_id_prefix zz-")
    r = raw(b.port)
    r.send(connect_pkt("", clean=True))
    r.expect(connack_bytes(0))
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)
    assert b.wait_log(" as zz-"), b.stderr()


@pytest.mark.skipif(IS_MOSQUITTO, reason="reads Starling's log format")
def test_connection_messages_false_hides_connect_lines(broker, raw):
    b = broker("connection_messages false")
    r = raw(b.port)
    r.connect("quiet-one")
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)
    r.send(publish_pkt("noise/t", b"x", qos=0))
    time.sleep(0.5)  # let the logging thread write whatever it would
    assert "quiet-one" not in b.stderr()


def test_keepalive_0_means_no_timeout(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("forever", keepalive=0)
    time.sleep(2.0)
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)


# --- CONNECT details -------------------------------------------------------------------------

def test_username_and_password_accepted_with_allow_anonymous(broker, raw):
    b = broker()
    r = raw(b.port)
    r.send(connect_pkt("userful", username="alice", password="secret"))
    r.expect(connack_bytes(0))


def test_long_client_id_is_accepted(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("x" * 200)
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)


def test_will_qos_without_will_flag_closes(broker, raw):
    b = broker()
    r = raw(b.port)
    body = s16("MQTT") + bytes([4, 0x02 | 0x08]) + b"\x00\x3c" + s16("badwill")
    r.send(packet(0x10, body))
    assert r.wait_closed()


def test_will_qos_3_closes(broker, raw):
    b = broker()
    r = raw(b.port)
    r.send(connect_pkt("w3", will=("w/t", b"x", 3, False)))
    assert r.wait_closed()


def test_password_without_username_closes(broker, raw):
    b = broker()
    r = raw(b.port)
    r.send(connect_pkt("pw-only", password="x"))
    assert r.wait_closed()


def test_invalid_utf8_client_id_closes(broker, raw):
    b = broker()
    r = raw(b.port)
    body = s16("MQTT") + bytes([4, 0x02]) + b"\x00\x3c" + b"\x00\x02\xc3\x28"
    r.send(packet(0x10, body))
    assert r.wait_closed()


def test_publish_with_empty_topic_closes(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("empty-topic")
    r.send(publish_pkt("", b"x"))
    assert r.wait_closed()


def test_puback_for_unknown_id_is_ignored(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("stray")
    r.send(ack_pkt(PUBACK, 999))
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)


def test_unsubscribe_during_inflight_still_completes_flow(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("unsub-if")
    assert s.subscribe([("uif/t", 1)]) == [1]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("uif/t", b"x", qos=1, pid=1))
    m = s.recv_publish()
    s.send(unsubscribe_pkt(3, ["uif/t"]))
    s.expect(b"\xb0\x02\x00\x03")
    s.send(ack_pkt(PUBACK, m.pid))
    p.send(publish_pkt("uif/t", b"y", qos=1, pid=2))
    s.no_data(0.3)


def test_subscribers_on_every_worker_get_one_copy_each(broker, raw):
    b = broker()
    subs = []
    for i in range(12):
        s = raw(b.port)
        s.connect(f"fan-{i}")
        assert s.subscribe([("fan/#", 1)]) == [1]
        subs.append(s)
    p = raw(b.port)
    p.connect("fan-pub")
    for i in range(5):
        p.send(publish_pkt("fan/t", b"%d" % i, qos=1, pid=i + 1))
        p.expect(ack_pkt(PUBACK, i + 1))
    for s in subs:
        got = []
        for _ in range(5):
            m = s.recv_publish()
            got.append(m.payload)
            s.send(ack_pkt(PUBACK, m.pid))
        assert got == [b"%d" % i for i in range(5)]
        s.no_data(0.05)
