# SPDX-License-Identifier: MIT
"""acl_file: PUBLISH, SUBSCRIBE (full / partial / none), deliveries, retained messages, wills,
patterns, $SYS, and SIGHUP reload.

A denied 3.1.1 PUBLISH is acknowledged and dropped, as mosquitto does. A SUBSCRIBE to a filter
of which nothing is readable gets 0x80 (mosquitto grants it and filters later); a filter that is
readable only in part is granted and each delivery on it is checked, retained messages included.
"""
import signal
import time

import pytest

from conftest import (IS_MOSQUITTO, PUBACK, PUBLISH, Pub, Raw, ack_pkt, connect_pkt,
                      publish_pkt, several_workers)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's SUBACK 0x80 for denied filters")

ACL = """\
# anonymous section
topic read public/#

user alice
topic read r/#
topic write w/#
topic readwrite rw/#
topic deny rw/secret
topic write will/alice

user watcher
topic read w/#
topic read rw/#
topic read $SYS/#

user writer
topic write #

pattern readwrite dev/%u/#
pattern read cid/%c/#
"""


def conn(port, client_id, user=None, expect_rc=0):
    r = Raw(port)
    r.send(connect_pkt(client_id, username=user, password=None if user is None else "x"))
    first, body, raw = r.recv_packet()
    assert first == 0x20 and body[1] == expect_rc, f"CONNACK {raw!r}"
    return r


def pub(r, topic, payload=b"m", qos=1, retain=False, pid=7):
    """Publishes; at QoS 1 waits for the PUBACK (sent whether allowed or not) and returns the
    PUBLISHes that arrived before it (the client's own subscriptions)."""
    r.send(publish_pkt(topic, payload, qos=qos, retain=retain, pid=pid))
    before = []
    while qos == 1:
        first, body, raw = r.recv_packet()
        if first >> 4 == PUBLISH:
            before.append(Pub(first, body))
            continue
        assert raw == ack_pkt(PUBACK, pid), f"expected PUBACK {pid}, got {raw!r}"
        break
    return before


def own(r, before):
    """The next PUBLISH for 'r': one that came before a PUBACK, else from the socket."""
    return before.pop(0) if before else r.recv_publish()


@pytest.fixture
def acl_broker(broker, tmp_path):
    def make(text=ACL, extra=""):
        acl = tmp_path / "acl"
        acl.write_text(text)
        # 'user root': the files under pytest's private tmp directory stay readable for the
        # reloads after the broker drops privileges (it reads them as 'user', as mosquitto)
        b = broker(f"acl_file {acl}\nuser root\n{extra}")
        b.acl = acl
        return b
    return make


def test_read_write_readwrite_and_deny(acl_broker):
    b = acl_broker()
    alice = conn(b.port, "alice-1", "alice")
    watcher = conn(b.port, "watcher-1", "watcher")
    assert watcher.subscribe([("w/#", 1), ("rw/#", 1)]) == [1, 1]
    assert alice.subscribe([("r/#", 1), ("w/#", 1), ("rw/#", 1)]) == [1, 0x80, 1]

    pub(alice, "w/1", b"write-only")
    p = watcher.recv_publish()
    assert (p.topic, p.payload) == ("w/1", b"write-only")
    alice.no_data(0.3)  # alice may write w/ but not read it: refused subscription

    assert pub(alice, "r/1", b"read-only") == []  # denied: acknowledged, dropped
    assert pub(alice, "rw/secret", b"denied") == []  # deny beats readwrite
    before = pub(alice, "rw/1", b"both")
    got = [own(alice, before), watcher.recv_publish()]
    assert sorted((g.topic, g.payload) for g in got) == [("rw/1", b"both")] * 2
    alice.no_data(0.3)
    watcher.no_data(0.3)


def test_subscribe_to_hash_with_a_partial_acl_filters_each_delivery(acl_broker):
    b = acl_broker()
    alice = conn(b.port, "alice-1", "alice")
    writer = conn(b.port, "writer-1", "writer")
    assert alice.subscribe([("#", 1)]) == [1], "partial: granted, checked per message"
    for i, t in enumerate(["r/1", "x/1", "rw/secret", "w/1", "rw/2", "public/1"]):
        pub(writer, t, t.encode(), pid=10 + i)
    got = sorted(alice.recv_publish().topic for _ in range(2))
    assert got == ["r/1", "rw/2"]
    alice.no_data(0.5)


def test_anonymous_section_and_none_filter(acl_broker):
    b = acl_broker()
    anon = conn(b.port, "anon-1")
    assert anon.subscribe([("public/#", 0), ("r/#", 0), ("#", 0)]) == [0, 0x80, 0]
    writer = conn(b.port, "writer-1", "writer")
    pub(writer, "public/a", b"pa")
    pub(writer, "r/a", b"ra", pid=8)
    got = anon.recv_publish()
    assert (got.topic, got.payload) == ("public/a", b"pa")
    anon.no_data(0.5)  # '#' is partial: one copy of public/a only, nothing of r/a


def test_retained_messages_are_filtered(acl_broker):
    b = acl_broker()
    writer = conn(b.port, "writer-1", "writer")
    for i, t in enumerate(["r/keep", "x/hidden", "rw/secret", "rw/keep"]):
        pub(writer, t, t.encode(), retain=True, pid=20 + i)
    alice = conn(b.port, "alice-1", "alice")
    assert alice.subscribe([("#", 1)]) == [1]
    got = sorted(alice.recv_publish().topic for _ in range(2))
    assert got == ["r/keep", "rw/keep"]
    alice.no_data(0.5)
    alice2 = conn(b.port, "alice-2", "alice")
    assert alice2.subscribe([("rw/+", 1)]) == [1], "partial (rw/secret is denied)"
    p = alice2.recv_publish()
    assert (p.topic, p.retain) == ("rw/keep", True)
    alice2.no_data(0.5)


def test_patterns_with_user_name_and_client_id(acl_broker):
    b = acl_broker()
    u1 = conn(b.port, "c1", "u1")
    assert u1.subscribe([("dev/u1/#", 1), ("dev/u2/#", 1), ("cid/c1/#", 1)]) == [1, 0x80, 1]
    writer = conn(b.port, "writer-1", "writer")
    p = own(u1, pub(u1, "dev/u1/a", b"own"))
    assert p.topic == "dev/u1/a"
    pub(u1, "dev/u2/a", b"other's", pid=8)  # denied
    pub(writer, "cid/c1/x", b"for c1", pid=9)
    assert u1.recv_publish().topic == "cid/c1/x"
    u1.no_data(0.3)


def test_wildcards_or_slash_in_substituted_names_are_denied(acl_broker):
    b = acl_broker()
    plain = conn(b.port, "ab", "u9")
    assert plain.subscribe([("dev/#", 0), ("cid/ab/#", 0)]) == [0, 0]
    plus = conn(b.port, "p1", "u+")
    assert plus.subscribe([("dev/#", 0)]) == [0x80], "user name with '+' under %u"
    slash = conn(b.port, "a/b", "u8")
    assert slash.subscribe([("cid/a/b/#", 0)]) == [0x80], "client id with '/' under %c"


def test_sys_entries(acl_broker):
    b = acl_broker(extra="sys_interval 1")
    watcher = conn(b.port, "watcher-1", "watcher")
    alice = conn(b.port, "alice-1", "alice")
    assert alice.subscribe([("$SYS/#", 0)]) == [0x80]
    assert watcher.subscribe([("$SYS/broker/uptime", 0)]) == [0]
    p = watcher.recv_publish(timeout=5)
    assert p.topic == "$SYS/broker/uptime"


def test_a_will_that_may_not_be_published_is_dropped(acl_broker):
    """As mosquitto 2.0: the CONNECT is accepted, the will never published."""
    b = acl_broker()
    reader = conn(b.port, "alice-r", "alice")
    assert reader.subscribe([("r/#", 0)]) == [0]
    watcher = conn(b.port, "watcher-1", "watcher")
    assert watcher.subscribe([("w/#", 0)]) == [0]
    r = Raw(b.port)
    r.send(connect_pkt("alice-w", username="alice", password="x", will=("r/1", b"w", 0, False)))
    r.expect(bytes([0x20, 2, 0, 0]))
    r.close()  # abrupt: a will would go out now
    ok = Raw(b.port)
    ok.send(connect_pkt("alice-ok", username="alice", password="x",
                        will=("w/will", b"bye", 0, False)))
    ok.expect(bytes([0x20, 2, 0, 0]))
    ok.close()
    p = watcher.recv_publish()
    assert (p.topic, p.payload) == ("w/will", b"bye")
    assert b.wait_log("will on 'r/1' denied by the ACL")
    reader.no_data(0.5)


def test_empty_acl_denies_everything(acl_broker):
    b = acl_broker(text="# nothing\n\n")
    r = conn(b.port, "anon")
    assert r.subscribe([("test/topic", 0), ("#", 0)]) == [0x80, 0x80]
    pub(r, "test/topic", b"x")
    r.no_data(0.3)


def test_reload_applies_new_lines_to_new_subscriptions_and_deliveries(acl_broker):
    b = acl_broker()
    alice = conn(b.port, "alice-1", "alice")
    writer = conn(b.port, "writer-1", "writer")
    assert alice.subscribe([("#", 1), ("r/#", 1)]) == [1, 1]
    assert alice.subscribe([("n/#", 1)], pid=2) == [0x80]
    b.acl.write_text(ACL.replace("topic read r/#", "topic read n/#"))
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    assert alice.subscribe([("n/#", 1)], pid=3) == [1], "a new line, a new subscription"
    time.sleep(1.5)  # each worker classifies its subscriptions again within a second
    pub(writer, "n/1", b"new")
    pub(writer, "r/1", b"revoked", pid=8)
    p = alice.recv_publish()  # once: n/# and # match, one delivery per session
    assert (p.topic, p.payload) == ("n/1", b"new")
    alice.no_data(0.5)  # r/1: neither the revoked r/# nor the partial # delivers it


def test_reload_drops_queued_messages_the_new_rules_deny(acl_broker):
    """mosquitto's 09-acl-change: messages queued for an offline session before a reload are
    not delivered when the new ACL denies their topic."""
    b = acl_broker()
    r = Raw(b.port)
    r.send(connect_pkt("alice-q", clean=False, username="alice", password="x"))
    r.expect(bytes([0x20, 2, 0, 0]))
    assert r.subscribe([("r/#", 1), ("rw/#", 1)]) == [1, 1]
    r.send(b"\xe0\x00")  # DISCONNECT, then the broker's close: the session is offline before
    assert r.wait_closed()  # the publishes (after a bare close they could go out in flight,
    r.close()  # owed to the client whatever the new rules say)
    writer = conn(b.port, "writer-1", "writer")
    pub(writer, "r/1", b"queued-r")
    pub(writer, "rw/1", b"queued-rw", pid=8)
    time.sleep(0.3)
    b.acl.write_text(ACL.replace("topic read r/#", "topic read n/#"))
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    r = Raw(b.port)
    r.send(connect_pkt("alice-q", clean=False, username="alice", password="x"))
    r.expect(bytes([0x20, 2, 1, 0]))
    p = r.recv_publish()
    assert (p.topic, p.payload) == ("rw/1", b"queued-rw")
    r.send(ack_pkt(PUBACK, p.pid))
    r.no_data(0.5)
    r.close()


def v5_with_delayed_will(port, client_id, topic, delay=2):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set("alice", "x")
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = delay
    c.will_set(topic, b"late", 0, False, properties=wp)
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 60
    c.connect("127.0.0.1", port, 60, clean_start=True, properties=cp)
    c.loop_start()
    deadline = time.monotonic() + 5
    while not c.is_connected():
        assert time.monotonic() < deadline, "no CONNACK"
        time.sleep(0.02)
    return c


@several_workers
def test_a_reload_that_revokes_a_will_topic_drops_the_will_when_it_would_go(acl_broker):
    """The will's topic is checked at CONNECT and again when the will is published, under the
    rules in force then: a reload in between that denies it drops it (an immediate will, and
    a delayed one waiting for its Will Delay Interval); a will still allowed goes."""
    b = acl_broker()
    watcher = conn(b.port, "watcher-1", "watcher")
    assert watcher.subscribe([("w/#", 0), ("rw/#", 0)]) == [0, 0]
    now_denied = Raw(b.port)
    now_denied.send(connect_pkt("alice-1", username="alice", password="x",
                                will=("w/now", b"bye", 0, False)))
    now_denied.expect(bytes([0x20, 2, 0, 0]))
    still_allowed = Raw(b.port)
    still_allowed.send(connect_pkt("alice-2", username="alice", password="x",
                                   will=("rw/now", b"bye", 0, False)))
    still_allowed.expect(bytes([0x20, 2, 0, 0]))
    delayed_denied = v5_with_delayed_will(b.port, "alice-3", "w/delayed")
    delayed_allowed = v5_with_delayed_will(b.port, "alice-4", "rw/delayed")
    for c in (delayed_denied, delayed_allowed):  # abrupt ends: the delays start
        c.loop_stop()
        c.socket().close()
    time.sleep(0.3)
    b.acl.write_text(ACL.replace("topic write w/#", "topic write x/#"))
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    now_denied.close()
    still_allowed.close()
    got = [watcher.recv_publish(timeout=5)]
    got.append(watcher.recv_publish(timeout=5))  # the delayed one, ~2 s after its end
    assert sorted((p.topic, p.payload) for p in got) == [("rw/delayed", b"late"),
                                                          ("rw/now", b"bye")]
    watcher.no_data(1.0)  # neither w/ will: the reload denied alice w/#
    assert b.wait_log("will on 'w/now' denied by the ACL")
    assert b.wait_log("will on 'w/delayed' denied by the ACL")


def test_a_will_revoked_by_a_reload_is_dropped_at_a_take_over_too(acl_broker):
    b = acl_broker()
    watcher = conn(b.port, "watcher-1", "watcher")
    assert watcher.subscribe([("w/#", 0)]) == [0]
    old = Raw(b.port)
    old.send(connect_pkt("alice-t", username="alice", password="x",
                         will=("w/taken", b"bye", 0, False)))
    old.expect(bytes([0x20, 2, 0, 0]))
    b.acl.write_text(ACL.replace("topic write w/#", "topic write x/#"))
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    conn(b.port, "alice-t", "alice")  # takes the session over: the old will would go now
    assert old.wait_closed()
    watcher.no_data(1.0)
    assert b.wait_log("will on 'w/taken' denied by the ACL")


# --- check_retain_source (mosquitto's default: true; CVE-2018-12546) ----------------------------

REVOKED = ACL.replace("topic readwrite rw/#", "topic read rw/#")  # alice may no longer write


def _retained_for(port, client_id):
    """What a new subscription of 'watcher' to rw/kept gets: the PUBLISH, or None."""
    w = conn(port, client_id, "watcher")
    try:
        assert w.subscribe([("rw/kept", 1)]) == [1]
        try:
            return w.recv_publish(timeout=0.7)
        except TimeoutError:
            return None
    finally:
        w.close()


@pytest.mark.parametrize("check", [None, "true", "false"])
def test_a_retained_message_goes_out_while_its_publisher_may_still_publish_it(acl_broker, check):
    b = acl_broker(extra=f"check_retain_source {check}" if check else "")
    alice = conn(b.port, "alice-1", "alice")
    pub(alice, "rw/kept", b"by alice", retain=True)
    alice.close()
    p = _retained_for(b.port, "w-1")
    assert p is not None and (p.topic, p.payload, p.retain) == ("rw/kept", b"by alice", True)
    b.acl.write_text(REVOKED)
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    p = _retained_for(b.port, "w-2")
    if check == "false":  # no check: it goes out as before
        assert p is not None and p.payload == b"by alice"
    else:  # the default checks: alice may not publish it now, so nobody gets it
        assert p is None, f"retained message of a revoked publisher delivered: {p.payload!r}"


def test_the_publisher_of_a_retained_message_is_kept_across_a_restart(broker, tmp_path):
    """The persistence snapshot keeps who published each retained message: a restart with an
    ACL that revokes the publisher does not deliver it (mosquitto's
    04-retain-check-source-persist)."""
    from conftest import Broker
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    lines = [f"acl_file {acl}", "user root", "persistence true",
             f"persistence_location {tmp_path}/"]
    b = Broker(tmp_path, lines, name="first").start()
    try:
        alice = conn(b.port, "alice-1", "alice")
        pub(alice, "rw/kept", b"by alice", retain=True)
        alice.close()
        assert _retained_for(b.port, "w-1") is not None
    finally:
        b.check_clean_exit()  # writes the snapshot
    acl.write_text(REVOKED)
    b2 = Broker(tmp_path, lines, port=b.port, name="second").start()
    try:
        assert _retained_for(b2.port, "w-2") is None
        acl.write_text(ACL)  # and it is still there, for when alice may again
        b2.proc.send_signal(signal.SIGHUP)
        assert b2.wait_log("password_file and acl_file re-read")
        p = _retained_for(b2.port, "w-3")
        assert p is not None and p.payload == b"by alice"
    finally:
        b2.check_clean_exit()


def test_a_retained_will_is_checked_against_its_owner(acl_broker):
    b = acl_broker()
    r = Raw(b.port)
    r.send(connect_pkt("alice-w", username="alice", password="x",
                       will=("rw/kept", b"alice's will", 1, True)))
    r.expect(bytes([0x20, 2, 0, 0]))
    r.close()  # no DISCONNECT: the will goes, retained
    deadline = time.monotonic() + 5
    while (p := _retained_for(b.port, "w-1")) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert p is not None and p.payload == b"alice's will"
    b.acl.write_text(REVOKED)
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    assert _retained_for(b.port, "w-2") is None
