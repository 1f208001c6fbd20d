# SPDX-License-Identifier: MIT
"""Will messages (MQTT 3.1.1 §3.1.2.5 - §3.1.2.7), as mosquitto 2.0."""
import time

import pytest

from conftest import IS_MOSQUITTO, DISCONNECT_PKT, PUBACK, ack_pkt, connect_pkt, publish_pkt

WILL = ("will/t", b"gone", 0, False)


def watcher(broker, raw, extra="", qos=0):
    b = broker(extra)
    w = raw(b.port)
    w.connect("watcher")
    assert w.subscribe([("will/#", qos)]) == [qos]
    return b, w


def test_will_published_when_socket_closes(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("dying", will=WILL)
    c.close()
    w.expect(b"\x30\x0c\x00\x06will/tgone")


def test_will_published_on_protocol_error(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("bad", will=WILL)
    c.send(b"\x00\x00")  # reserved packet type 0
    assert c.wait_closed()
    m = w.recv_publish()
    assert (m.topic, m.payload) == ("will/t", b"gone")


def test_will_published_on_malformed_remaining_length(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("bad2", will=WILL)
    c.send(b"\x30\xff\xff\xff\xff\x01")
    assert c.wait_closed()
    assert w.recv_publish().payload == b"gone"


def test_will_published_on_keepalive_timeout(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    t0 = time.monotonic()
    c.connect("sleepy", keepalive=1, will=WILL)
    m = w.recv_publish(timeout=8.0 if IS_MOSQUITTO else 4.0)
    took = time.monotonic() - t0
    assert m.payload == b"gone"
    assert 1.4 <= took <= (6.0 if IS_MOSQUITTO else 3.5), f"will after {took:.2f} s for keepalive 1 s"
    assert c.wait_closed(1.0)


def test_keepalive_is_kept_by_pingreq(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("pinger", keepalive=1, will=WILL)
    for _ in range(5):
        time.sleep(0.5)
        c.send(b"\xc0\x00")
        c.expect(b"\xd0\x00")
    w.no_data(0.1)


def test_will_published_on_takeover(broker, raw):
    b, w = watcher(broker, raw)
    a = raw(b.port)
    a.connect("taken", will=WILL)
    c = raw(b.port)
    c.connect("taken")
    assert a.wait_closed()
    assert w.recv_publish().payload == b"gone"
    # the new connection has no will: closing it cleanly publishes nothing
    c.send(DISCONNECT_PKT)
    assert c.wait_closed()
    w.no_data(0.3)


def test_no_will_on_clean_disconnect(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("polite", will=WILL)
    c.send(DISCONNECT_PKT)
    assert c.wait_closed()
    w.no_data(0.5)


def test_will_retain_is_honoured(broker, raw):
    b = broker()
    c = raw(b.port)
    c.connect("ret-will", will=("will/r", b"rip", 1, True))
    c.close()
    time.sleep(0.3)
    late = raw(b.port)
    late.connect("late")
    assert late.subscribe([("will/r", 1)]) == [1]
    m = late.recv_publish()
    assert (m.topic, m.payload, m.retain, m.qos) == ("will/r", b"rip", True, 1)


def test_will_qos_is_honoured(broker, raw):
    b, w = watcher(broker, raw, qos=2)
    c = raw(b.port)
    c.connect("q1-will", will=("will/q", b"q1", 1, False))
    c.close()
    m = w.recv_publish()
    assert (m.payload, m.qos, m.retain) == (b"q1", 1, False)
    w.send(ack_pkt(PUBACK, m.pid))
    c = raw(b.port)
    c.connect("q2-will", will=("will/q", b"q2", 2, False))
    c.close()
    m = w.recv_publish()
    assert (m.payload, m.qos) == (b"q2", 2)


def test_will_downgraded_to_subscription_qos(broker, raw):
    b, w = watcher(broker, raw, qos=0)
    c = raw(b.port)
    c.connect("q2-will", will=("will/q", b"x", 2, False))
    c.close()
    m = w.recv_publish()
    assert (m.payload, m.qos) == (b"x", 0)


def test_will_with_paho_client_killed(broker, raw, client):
    b, w = watcher(broker, raw)
    c = client(b.port, "paho-will")
    c.will_set("will/p", b"paho-gone", qos=1)
    c.connect()
    c.c.loop_stop()
    c.started = False
    c.c.socket().close()
    m = w.recv_publish()
    assert (m.topic, m.payload) == ("will/p", b"paho-gone")


def test_mqtt31_will(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.send(connect_pkt("old-will", proto=3, will=WILL))
    c.expect(b"\x20\x02\x00\x00")
    c.close()
    assert w.recv_publish().payload == b"gone"


def test_will_with_wildcard_topic_is_refused(broker, raw):
    """[MQTT-3.1.2-?]: a will topic must be a valid topic name; mosquitto closes the socket."""
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.send(connect_pkt("wild-will", will=("will/#", b"x", 0, False)))
    assert c.wait_closed()
    w.no_data(0.3)


def test_will_with_empty_payload_and_retain_deletes_retained(broker, raw):
    b = broker()
    a = raw(b.port)
    a.connect("keeper")
    a.send(publish_pkt("will/e", b"keep", qos=1, pid=1, retain=True))
    a.expect(ack_pkt(PUBACK, 1))
    c = raw(b.port)
    c.connect("eraser", will=("will/e", b"", 0, True))
    c.close()
    time.sleep(0.3)
    s = raw(b.port)
    s.connect("late")
    assert s.subscribe([("will/e", 0)]) == [0]
    s.no_data(0.4)


def test_will_to_sys_topic_is_not_published(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("sys-watch")
    assert s.subscribe([("$SYS/will", 0)]) == [0]
    c = raw(b.port)
    c.connect("sys-will", will=("$SYS/will", b"x", 0, False))
    c.close()
    s.no_data(0.5)


def test_mosquitto_sub_will_published_when_killed(broker, raw):
    import signal
    import subprocess
    from conftest import HOST
    b, w = watcher(broker, raw)
    proc = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(b.port), "-t", "nothing",
                             "-i", "msub-will", "--will-topic", "will/m", "--will-payload",
                             "bye", "--will-qos", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        seen = False
        while time.monotonic() < deadline and not seen:  # wait until it is connected
            seen = "as msub-will" in b.stderr() or IS_MOSQUITTO
            time.sleep(0.05)
        time.sleep(0.3 if IS_MOSQUITTO else 0.05)
        proc.send_signal(signal.SIGKILL)
        m = w.recv_publish()
        assert (m.topic, m.payload) == ("will/m", b"bye")
    finally:
        proc.kill()
        proc.wait(5)


def test_other_traffic_counts_as_keepalive_activity(broker, raw):
    b, w = watcher(broker, raw)
    c = raw(b.port)
    c.connect("busy", keepalive=1, will=WILL)
    for i in range(6):
        time.sleep(0.5)
        c.send(publish_pkt("busy/t", b"x", qos=1, pid=i + 1))
        c.expect(ack_pkt(PUBACK, i + 1))
    w.no_data(0.1)
