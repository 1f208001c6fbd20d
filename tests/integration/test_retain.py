# SPDX-License-Identifier: MIT
"""Retained messages (MQTT 3.1.1 §3.3.1.3), as mosquitto 2.0."""
from conftest import PUBACK, PUBREC, PUBREL, PUBCOMP, ack_pkt, publish_pkt


def retain(r, topic, payload, qos=0, pid=1):
    r.send(publish_pkt(topic, payload, qos=qos, retain=True, pid=pid))
    if qos == 1:
        r.expect(ack_pkt(PUBACK, pid))
    elif qos == 2:
        r.expect(ack_pkt(PUBREC, pid))
        r.send(ack_pkt(PUBREL, pid))
        r.expect(ack_pkt(PUBCOMP, pid))


def test_retained_message_is_stored_and_sent_on_subscribe_with_retain_flag(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/a", b"stored", qos=1)
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("ret/a", 0)]) == [0]
    s.expect(b"\x31\x0d\x00\x05ret/astored")


def test_retained_message_is_replaced(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/r", b"first", qos=1, pid=1)
    retain(p, "ret/r", b"second", qos=1, pid=2)
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("ret/r", 1)]) == [1]
    m = s.recv_publish()
    assert (m.payload, m.retain, m.qos) == (b"second", True, 1)
    s.send(ack_pkt(PUBACK, m.pid))
    s.no_data(0.3)


def test_empty_retained_payload_deletes_and_is_forwarded_to_live_subscribers(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/d", b"doomed", qos=1)
    live = raw(b.port)
    live.connect("live")
    assert live.subscribe([("ret/d", 0)]) == [0]
    assert live.recv_publish().payload == b"doomed"
    retain(p, "ret/d", b"", qos=1, pid=2)
    # live subscribers get the empty message as a normal one (retain flag clear)
    live.expect(b"\x30\x07\x00\x05ret/d")
    s = raw(b.port)
    s.connect("late")
    assert s.subscribe([("ret/d", 0), ("ret/#", 0)]) == [0, 0]
    s.no_data(0.4)


def test_live_forwarding_clears_retain_flag(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("ret/l", 2)]) == [2]
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/l", b"x", qos=0)
    s.expect(b"\x30\x08\x00\x05ret/lx")


def test_retained_qos_is_min_of_stored_and_subscription(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/q1", b"one", qos=1, pid=1)
    retain(p, "ret/q2", b"two", qos=2, pid=2)
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("ret/q1", 2)]) == [2]
    m = s.recv_publish()
    assert (m.payload, m.qos, m.retain) == (b"one", 1, True)
    s.send(ack_pkt(PUBACK, m.pid))
    assert s.subscribe([("ret/q2", 0)], pid=2) == [0]
    m = s.recv_publish()
    assert (m.payload, m.qos, m.retain) == (b"two", 0, True)


def test_wildcard_subscription_gets_every_matching_retained_message(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    topics = ["w/a", "w/b/c", "w/b/d", "x/a", "$w/a"]
    for i, t in enumerate(topics):
        retain(p, t, t.encode(), qos=1, pid=i + 1)
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("w/#", 0)]) == [0]
    got = sorted(s.recv_publish().topic for _ in range(3))
    assert got == ["w/a", "w/b/c", "w/b/d"]
    s.no_data(0.3)
    s2 = raw(b.port)
    s2.connect("sub2")
    assert s2.subscribe([("+/a", 0)]) == [0]
    got = sorted(s2.recv_publish().topic for _ in range(2))
    assert got == ["w/a", "x/a"]  # not $w/a
    s2.no_data(0.3)


def test_retained_message_survives_publisher_disconnect(broker, raw, client):
    b = broker()
    c = client(b.port, "rpub").connect()
    c.publish("ret/k", b"persist", qos=1, retain=True)
    c.disconnect()
    s = client(b.port, "rsub").connect()
    s.subscribe("ret/k", 1)
    m = s.wait_messages(1)[0]
    assert (m.payload, m.retain) == (b"persist", 1)


def test_retained_qos0_message_is_stored(broker, client):
    b = broker()
    c = client(b.port, "rpub0").connect()
    c.publish("ret/z", b"q0", qos=0, retain=True)
    # a QoS 0 PUBLISH has no answer: a QoS 1 one after it on the same connection is acknowledged
    # once the broker has taken both, before 'rsub0' (maybe on another worker) subscribes
    c.publish("ret/sync", b"", qos=1)
    c.disconnect()
    s = client(b.port, "rsub0").connect()
    s.subscribe("ret/z", 2)
    m = s.wait_messages(1)[0]
    assert (m.payload, m.retain, m.qos) == (b"q0", 1, 0)


def test_retain_available_false_disconnects_retained_publish(broker, raw):
    b = broker("retain_available false")
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("ret/n", b"x", retain=True))
    assert p.wait_closed()
    q = raw(b.port)
    q.connect("pub2")
    q.send(publish_pkt("ret/n", b"x", qos=1, pid=1))
    q.expect(ack_pkt(PUBACK, 1))


def test_many_retained_messages_all_delivered_on_wildcard_subscribe(broker, raw, client):
    b = broker()
    pub = client(b.port, "many-ret").connect()
    n = 400
    for i in range(n):
        pub.c.publish(f"many/{i}", b"%d" % i + b"." * 1000, qos=1, retain=True)
    pub.publish("many/last", b"end", qos=1, retain=True)  # waits for its PUBACK
    for qos in (0, 1):
        s = client(b.port, f"many-sub{qos}").connect()
        s.subscribe("many/#", qos)
        msgs = s.wait_messages(n + 1, timeout=15)
        assert sorted(m.topic for m in msgs) == sorted([f"many/{i}" for i in range(n)] +
                                                       ["many/last"])
        assert all(m.retain for m in msgs)
        s.disconnect()


def test_retained_message_delivered_to_subscriber_on_any_worker(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/w", b"everywhere", qos=1)
    for i in range(8):
        s = raw(b.port)
        s.connect(f"rw-{i}")
        assert s.subscribe([("ret/+", 1)]) == [1]
        m = s.recv_publish()
        assert (m.payload, m.retain) == (b"everywhere", True)
        s.close()


def test_retained_delete_then_store_again(broker, raw):
    b = broker()
    p = raw(b.port)
    p.connect("pub")
    retain(p, "ret/x", b"one", qos=1, pid=1)
    retain(p, "ret/x", b"", qos=1, pid=2)
    retain(p, "ret/x", b"two", qos=1, pid=3)
    s = raw(b.port)
    s.connect("sub")
    assert s.subscribe([("ret/x", 0)]) == [0]
    assert s.recv_publish().payload == b"two"
    s.no_data(0.3)
