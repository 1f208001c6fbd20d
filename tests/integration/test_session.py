# SPDX-License-Identifier: MIT
"""Persistent sessions (clean session 0, MQTT 3.1.1 §3.1.2.4, §4.4), as mosquitto 2.0."""
import threading
import time

import pytest

from conftest import (PUBACK, PUBCOMP, PUBREC, PUBREL, Raw, ack_pkt, publish_pkt,
                      unsubscribe_pkt)


def offline(raw, port, cid):
    """Connects cid with clean session 0 and a QoS 2 subscription, then drops the socket."""
    r = raw(port)
    assert r.connect(cid, clean=False) == (0, 0)
    return r


def pause():
    time.sleep(0.2)  # let the broker notice the close (possibly on another worker)


def test_subscriptions_survive_reconnect(broker, raw):
    b = broker()
    r = raw(b.port)
    assert r.connect("persist", clean=False) == (0, 0)
    assert r.subscribe([("ps/#", 1)]) == [1]
    r.close()
    pause()
    r = raw(b.port)
    assert r.connect("persist", clean=False) == (1, 0)
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("ps/x", b"still", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    m = r.recv_publish()
    assert (m.topic, m.payload, m.qos) == ("ps/x", b"still", 1)


def test_qos1_and_qos2_published_while_offline_delivered_on_reconnect(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("away", clean=False)
    assert r.subscribe([("off/#", 2)]) == [2]
    r.send(b"\xe0\x00")
    assert r.wait_closed()
    pause()
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("off/0", b"zero", qos=0))
    p.send(publish_pkt("off/1", b"one", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    p.send(publish_pkt("off/2", b"two", qos=2, pid=2))
    p.expect(ack_pkt(PUBREC, 2))
    p.send(ack_pkt(PUBREL, 2))
    p.expect(ack_pkt(PUBCOMP, 2))
    r = raw(b.port)
    assert r.connect("away", clean=False) == (1, 0)
    m1 = r.recv_publish()
    m2 = r.recv_publish()
    # QoS 0 is not queued for offline clients (mosquitto's queue_qos0_messages false)
    assert [(m.topic, m.payload, m.qos) for m in (m1, m2)] == [
        ("off/1", b"one", 1), ("off/2", b"two", 2)]
    r.send(ack_pkt(PUBACK, m1.pid))
    r.send(ack_pkt(PUBREC, m2.pid))
    r.expect(ack_pkt(PUBREL, m2.pid))
    r.send(ack_pkt(PUBCOMP, m2.pid))
    r.no_data(0.3)


def test_queue_qos0_messages_keeps_qos0_for_the_offline(broker, raw):
    """mosquitto's queue_qos0_messages true: QoS 0 waits in order with the rest."""
    b = broker("queue_qos0_messages true")
    r = raw(b.port)
    r.connect("away0", clean=False)
    assert r.subscribe([("off0/#", 1)]) == [1]
    r.send(b"\xe0\x00")
    assert r.wait_closed()
    pause()
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("off0/a", b"zero", qos=0))
    p.send(publish_pkt("off0/b", b"one", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    r = raw(b.port)
    assert r.connect("away0", clean=False) == (1, 0)
    got = [r.recv_publish(), r.recv_publish()]
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        ("off0/a", b"zero", 0), ("off0/b", b"one", 1)]
    r.send(ack_pkt(PUBACK, got[1].pid))
    r.no_data(0.3)


def test_unacknowledged_qos1_resent_with_dup_on_reconnect(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("noack", clean=False)
    assert r.subscribe([("dup/t", 1)]) == [1]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("dup/t", b"again", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    first = r.recv_publish()
    assert (first.qos, first.dup) == (1, False)
    r.close()  # no PUBACK
    pause()
    r = raw(b.port)
    assert r.connect("noack", clean=False) == (1, 0)
    again = r.recv_publish()
    assert again.first == 0x3A  # PUBLISH, DUP, QoS 1
    assert (again.topic, again.payload, again.pid) == ("dup/t", b"again", first.pid)
    r.send(ack_pkt(PUBACK, again.pid))
    r.no_data(0.3)
    r.close()
    pause()
    r = raw(b.port)
    assert r.connect("noack", clean=False) == (1, 0)
    r.no_data(0.3)  # acknowledged: not sent a third time


def test_unacknowledged_qos2_resent_with_dup_on_reconnect(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("noack2", clean=False)
    assert r.subscribe([("dup2/t", 2)]) == [2]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("dup2/t", b"q2", qos=2, pid=1))
    p.expect(ack_pkt(PUBREC, 1))
    p.send(ack_pkt(PUBREL, 1))
    p.expect(ack_pkt(PUBCOMP, 1))
    first = r.recv_publish()
    r.close()  # no PUBREC
    pause()
    r = raw(b.port)
    assert r.connect("noack2", clean=False) == (1, 0)
    again = r.recv_publish()
    assert again.first == 0x3C and again.pid == first.pid and again.payload == b"q2"


def test_pubrel_resent_on_reconnect_after_pubrec(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("half", clean=False)
    assert r.subscribe([("half/t", 2)]) == [2]
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("half/t", b"h", qos=2, pid=1))
    p.expect(ack_pkt(PUBREC, 1))
    p.send(ack_pkt(PUBREL, 1))
    p.expect(ack_pkt(PUBCOMP, 1))
    m = r.recv_publish()
    r.send(ack_pkt(PUBREC, m.pid))
    r.expect(ack_pkt(PUBREL, m.pid))
    r.close()  # no PUBCOMP
    pause()
    r = raw(b.port)
    assert r.connect("half", clean=False) == (1, 0)
    r.expect(ack_pkt(PUBREL, m.pid))  # the PUBREL again, not the PUBLISH
    r.send(ack_pkt(PUBCOMP, m.pid))
    r.no_data(0.3)


def test_inbound_qos2_exactly_once_across_reconnect(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("eo-sub")
    assert s.subscribe([("eo2/t", 0)]) == [0]
    p = raw(b.port)
    p.connect("eo-pub", clean=False)
    p.send(publish_pkt("eo2/t", b"one", qos=2, pid=42))
    p.expect(ack_pkt(PUBREC, 42))
    p.close()
    pause()
    p = raw(b.port)
    assert p.connect("eo-pub", clean=False) == (1, 0)
    p.send(publish_pkt("eo2/t", b"one", qos=2, pid=42, dup=True))
    p.expect(ack_pkt(PUBREC, 42))
    p.send(ack_pkt(PUBREL, 42))
    p.expect(ack_pkt(PUBCOMP, 42))
    assert s.recv_publish().payload == b"one"
    s.no_data(0.4)


def test_clean_session_discards_stored_state(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("wipe", clean=False)
    assert r.subscribe([("wipe/t", 1)]) == [1]
    r.close()
    pause()
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("wipe/t", b"lost", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    r = raw(b.port)
    assert r.connect("wipe", clean=True) == (0, 0)
    r.no_data(0.3)
    p.send(publish_pkt("wipe/t", b"after", qos=1, pid=2))
    p.expect(ack_pkt(PUBACK, 2))
    r.no_data(0.3)  # the subscription went with the session


def test_clean_session_1_has_no_state_after_disconnect(broker, raw):
    b = broker()
    r = raw(b.port)
    r.connect("ephemeral", clean=True)
    assert r.subscribe([("eph/t", 1)]) == [1]
    r.close()
    pause()
    p = raw(b.port)
    p.connect("pub")
    p.send(publish_pkt("eph/t", b"x", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    r = raw(b.port)
    assert r.connect("ephemeral", clean=False) == (0, 0)
    r.no_data(0.3)


def test_session_present_with_paho(broker, client):
    b = broker()
    c = client(b.port, "paho-sess", clean_session=False).connect()
    assert c.session_present == 0
    c.subscribe("pp/t", 1)
    c.disconnect()
    c2 = client(b.port, "paho-sess", clean_session=False).connect()
    assert c2.session_present == 1
    pub = client(b.port, "pp-pub").connect()
    pub.publish("pp/t", b"x", qos=1)
    assert c2.wait_messages(1)[0].payload == b"x"


def test_offline_queue_keeps_order(broker, raw, client):
    b = broker()
    r = raw(b.port)
    r.connect("order", clean=False)
    assert r.subscribe([("ord/t", 1)]) == [1]
    r.close()
    pause()
    pub = client(b.port, "ord-pub").connect()
    for i in range(50):
        pub.publish("ord/t", b"%d" % i, qos=1)
    c = client(b.port, "order", clean_session=False).connect()
    msgs = c.wait_messages(50, timeout=10)
    assert [m.payload for m in msgs] == [b"%d" % i for i in range(50)]


def test_max_queued_messages_limits_offline_queue(broker, raw, client):
    b = broker("max_queued_messages 5\nmax_inflight_messages 20")
    r = raw(b.port)
    r.connect("capped", clean=False)
    assert r.subscribe([("cap/t", 1)]) == [1]
    r.close()
    pause()
    pub = client(b.port, "cap-pub").connect()
    for i in range(20):
        pub.publish("cap/t", b"%d" % i, qos=1)
    c = client(b.port, "capped", clean_session=False).connect()
    c.wait_messages(1)
    msgs = c.settle(0.5)
    # mosquitto keeps the first messages and drops the newer ones once the queue is full
    assert [m.payload for m in msgs] == [b"%d" % i for i in range(len(msgs))]
    assert len(msgs) == 5


def test_session_survives_repeated_reconnects_and_takeovers(broker, raw, client):
    b = broker()
    pub = client(b.port, "rr-pub").connect()
    r = raw(b.port)
    r.connect("rr", clean=False)
    assert r.subscribe([("rr/t", 1)]) == [1]
    got = []
    for round_ in range(5):
        pub.publish("rr/t", b"%d" % round_, qos=1)
        nr = raw(b.port)  # take over the live connection
        assert nr.connect("rr", clean=False) == (1, 0)
        assert r.wait_closed()
        r = nr
        deadline = time.monotonic() + 5
        while len(got) <= round_ and time.monotonic() < deadline:
            m = r.recv_publish()
            r.send(ack_pkt(PUBACK, m.pid))
            if m.payload not in got:  # a re-send (DUP) after take-over is allowed
                got.append(m.payload)
    assert got == [b"%d" % i for i in range(5)]


def test_takeover_of_clean_session_by_persistent_connect_starts_fresh(broker, raw):
    b = broker()
    a = raw(b.port)
    a.connect("tk", clean=True)
    assert a.subscribe([("tk/t", 1)]) == [1]
    n = raw(b.port)
    assert n.connect("tk", clean=False) == (0, 0)
    assert a.wait_closed()
    p = raw(b.port)
    p.connect("tk-pub")
    p.send(publish_pkt("tk/t", b"x", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    n.no_data(0.5)


def test_takeover_of_persistent_session_keeps_it(broker, raw):
    b = broker()
    a = raw(b.port)
    a.connect("tkp", clean=False)
    assert a.subscribe([("tkp/t", 1)]) == [1]
    n = raw(b.port)
    assert n.connect("tkp", clean=False) == (1, 0)
    assert a.wait_closed()
    p = raw(b.port)
    p.connect("tkp-pub")
    p.send(publish_pkt("tkp/t", b"x", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    assert n.recv_publish().payload == b"x"


def test_takeover_of_persistent_session_by_clean_connect_discards_it(broker, raw):
    b = broker()
    a = raw(b.port)
    a.connect("tkc", clean=False)
    assert a.subscribe([("tkc/t", 1)]) == [1]
    n = raw(b.port)
    assert n.connect("tkc", clean=True) == (0, 0)
    assert a.wait_closed()
    p = raw(b.port)
    p.connect("tkc-pub")
    p.send(publish_pkt("tkc/t", b"x", qos=1, pid=1))
    p.expect(ack_pkt(PUBACK, 1))
    n.no_data(0.4)


def test_inbound_qos2_state_discarded_with_clean_session(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("q2c-sub")
    assert s.subscribe([("q2c/t", 0)]) == [0]
    p = raw(b.port)
    p.connect("q2c-pub", clean=False)
    p.send(publish_pkt("q2c/t", b"first", qos=2, pid=7))
    p.expect(ack_pkt(PUBREC, 7))
    p.close()
    pause()
    p = raw(b.port)
    assert p.connect("q2c-pub", clean=True) == (0, 0)
    # a new message that reuses packet id 7 is a new message, not a duplicate
    p.send(publish_pkt("q2c/t", b"second", qos=2, pid=7))
    p.expect(ack_pkt(PUBREC, 7))
    p.send(ack_pkt(PUBREL, 7))
    p.expect(ack_pkt(PUBCOMP, 7))
    # (Starling delivered "first" on arrival; mosquitto holds it until a PUBREL that
    # never comes)
    got = [s.recv_publish().payload]
    if got[0] != b"second":
        got.append(s.recv_publish().payload)
    assert got[-1] == b"second"


def test_will_is_queued_for_offline_persistent_subscriber(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("will-off", clean=False)
    assert s.subscribe([("wo/#", 2)]) == [2]
    s.close()
    pause()
    c = raw(b.port)
    c.connect("dier", will=("wo/t", b"late news", 2, False))
    c.close()
    pause()
    s = raw(b.port)
    assert s.connect("will-off", clean=False) == (1, 0)
    m = s.recv_publish()
    assert (m.topic, m.payload, m.qos) == ("wo/t", b"late news", 2)


def test_unsubscribe_persists_across_reconnect(broker, raw):
    b = broker()
    s = raw(b.port)
    s.connect("unsub-p", clean=False)
    assert s.subscribe([("up/a", 1), ("up/b", 1)]) == [1, 1]
    s.send(unsubscribe_pkt(2, ["up/a"]))
    s.expect(b"\xb0\x02\x00\x02")
    s.close()
    pause()
    p = raw(b.port)
    p.connect("up-pub")
    p.send(publish_pkt("up/a", b"a", qos=1, pid=1) + publish_pkt("up/b", b"b", qos=1, pid=2))
    p.expect(ack_pkt(PUBACK, 1) + ack_pkt(PUBACK, 2))
    s = raw(b.port)
    assert s.connect("unsub-p", clean=False) == (1, 0)
    m = s.recv_publish()
    assert m.payload == b"b"
    s.send(ack_pkt(PUBACK, m.pid))
    s.no_data(0.3)


def test_max_queued_bytes_limits_offline_queue(broker, raw, client):
    b = broker("max_queued_bytes 1000")
    r = raw(b.port)
    r.connect("qb", clean=False)
    assert r.subscribe([("qb/t", 1)]) == [1]
    r.close()
    pause()
    pub = client(b.port, "qb-pub").connect()
    for i in range(20):
        pub.publish("qb/t", b"%02d" % i + b"." * 198, qos=1)  # 200-byte payloads
    c = client(b.port, "qb", clean_session=False).connect()
    c.wait_messages(1)
    msgs = c.settle(0.5)
    assert [m.payload[:2] for m in msgs] == [b"%02d" % i for i in range(len(msgs))]
    assert 4 <= len(msgs) <= 6, f"{len(msgs)} x 200 bytes queued for max_queued_bytes 1000"


RACERS, ROUNDS = 16, 100  # a second or two; the old code lost some in every run


def race_takeovers(port, cid, topic, rounds, lost):
    """Publishes a retained message, closes, connects again with the same id at once and
    subscribes: the message must come back, 'rounds' times; what did not goes into 'lost'."""
    for i in range(rounds):
        payload = b"v%d" % i
        old = Raw(port)
        try:
            assert old.connect(cid) == (0, 0)
            old.send(publish_pkt(topic, payload, retain=True))
        finally:
            old.close()
        new = Raw(port)
        try:
            assert new.connect(cid) == (0, 0)
            assert new.subscribe([(topic, 0)]) == [0]
            try:
                got = new.recv_publish(timeout=2.0).payload
            except TimeoutError:
                got = None
        finally:
            new.close()
        if got != payload:
            lost.append((cid, i, got))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("acl", [False, True], ids=["plain", "acl_file"])
def test_publish_before_close_is_not_lost_to_a_quick_takeover(broker, tmp_path, acl):
    """A client publishes a retained message, closes, and connects again with the same id at
    once: the PUBLISH had arrived before the new CONNECT, so the take-over must not end the old
    connection with it unread. It was dropped when the new CONNECT's completion came ahead of
    the old connection's in the worker's batch, or the CONNECT came by hand-off from another
    worker before the old socket was read. Two workers, so that connections are handed off;
    several clients at once, which keeps the workers busy enough for the race to show."""
    extra = ["log_dest stderr", "log_type all"]  # slower workers: a wider window
    if acl:
        (tmp_path / "race.acl").write_text("topic readwrite race/#\n")
        extra.append(f"acl_file {tmp_path / 'race.acl'}")
    b = broker("\n".join(extra), workers=2)
    lost, errors = [], []

    def racer(k):
        try:
            race_takeovers(b.port, f"racer{k}", f"race/{k}", ROUNDS, lost)
        except Exception as e:  # an assertion in the thread: reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=racer, args=(k,)) for k in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(50)
    assert not errors, errors
    assert lost == [], f"{len(lost)} of {RACERS * ROUNDS} retained PUBLISHes lost: {lost[:5]}"
