# SPDX-License-Identifier: MIT
"""persistence true: retained messages kept across restarts in a snapshot, as mosquitto keeps
them (broker/persist.h): saved at a clean exit, on SIGUSR1 and every autosave_interval, read
back at start-up; a file that cannot be read never stops the broker from starting."""
import os
import signal
import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import (HOST, IS_MOSQUITTO, PUBCOMP, PUBREC, PUBREL, WORKERS, Broker, Client,
                      Closed, Pub, Raw, ack_pkt, check_stderr_text, connect_pkt, port_closed,
                      publish_pkt, unsubscribe_pkt)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's snapshot file and log lines")

DB = "mosquitto.db"


# started as root the broker becomes 'user' (mosquitto by default), which could not write the
# test's directory: the tests keep root, as an operator keeps the directory the user's
AS_ROOT = "user root"


_started, _clients = [], []


class Kept(Broker):
    """A Broker that the test module stops whatever happens to the test."""

    def start(self):
        _started.append(self)
        return super().start()


@pytest.fixture(autouse=True)
def _stop_brokers():
    yield
    while _clients:
        _clients.pop().close()
    while _started:
        _started.pop().kill()


def persistent(tmp_path, extra=(), port=None, name="p"):
    lines = [AS_ROOT, "persistence true", f"persistence_location {tmp_path}/"] + list(extra)
    return Kept(tmp_path, lines, port=port, name=name)


def kill9(b):
    """kill -9, then wait until the kernel has let the port go (its teardown of the dead
    process's listener can outlast the process by a few ms): the next start's port check must
    not reach the old socket."""
    b.proc.kill()
    b.proc.wait(5)
    b.stopped = True
    b._err.close()
    assert port_closed(b.port, 5.0), "the killed broker's port still accepts"


class V5:
    """A paho MQTT 5 client on its own network thread, with bounded waits."""

    def __init__(self, port, client_id=""):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        _clients.append(self)
        self.cond = threading.Condition()
        self.messages, self.done = [], set()
        self.c.on_message = self._on_message
        self.c.on_publish = lambda c, u, mid: self._note(mid)
        self.c.on_subscribe = lambda c, u, mid, rc, props: self._note(("sub", mid))
        self.c.on_connect = lambda c, u, flags, rc, props: self._note("connack")
        self.c.connect(HOST, port, 60)
        self.c.loop_start()
        assert self.wait(lambda: "connack" in self.done), "no CONNACK"

    def _on_message(self, c, u, msg):
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def _note(self, what):
        with self.cond:
            self.done.add(what)
            self.cond.notify_all()

    def wait(self, pred, timeout=5.0):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def publish(self, topic, payload, qos=1, **props):
        p = None
        if props:
            p = Properties(PacketTypes.PUBLISH)
            for k, v in props.items():
                setattr(p, k, v)
        info = self.c.publish(topic, payload, qos, retain=True, properties=p)
        assert self.wait(lambda: info.mid in self.done), f"publish {topic} not acknowledged"

    def retained(self, flt="#", quiet=0.5):
        """The retained messages 'flt' brings, by topic, once nothing more arrives."""
        rc, mid = self.c.subscribe(flt, 1)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self.wait(lambda: ("sub", mid) in self.done), "no SUBACK"
        n = -1
        while True:
            with self.cond:
                if len(self.messages) == n:
                    break
                n = len(self.messages)
            time.sleep(quiet)
        with self.cond:
            return {m.topic: m for m in self.messages if m.retain}

    def close(self):
        if self in _clients:
            _clients.remove(self)
        self.c.disconnect()
        self.c.loop_stop()


def topics(port, flt="#"):
    c = V5(port)
    try:
        return c.retained(flt)
    finally:
        c.close()


def test_retained_messages_and_their_properties_survive_a_restart(tmp_path):
    b = persistent(tmp_path).start()
    c = V5(b.port, "writer")
    c.publish("dev/1/state", b"on", qos=1)
    c.publish("dev/2/state", b"{\"t\":21}", qos=2, ContentType="application/json",
              UserProperty=[("site", "north"), ("k", "v")], MessageExpiryInterval=3600)
    c.publish("dev/3/state", b"gone", qos=0)
    c.publish("dev/3/state", b"", qos=0)  # cleared before the stop: stays cleared
    c.close()
    b.check_clean_exit()
    assert "Saving in-memory database to" in b.stderr()
    data = (tmp_path / DB).read_bytes()
    assert b"$SYS" not in data  # the broker's own tree is made anew, not saved

    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert b2.wait_log("Restored 2 retained messages")
    got = topics(b2.port)
    assert sorted(got) == ["dev/1/state", "dev/2/state"]
    assert (got["dev/1/state"].payload, got["dev/1/state"].qos) == (b"on", 1)
    m = got["dev/2/state"]
    assert (m.payload, m.qos) == (b"{\"t\":21}", 1)  # granted QoS 1 of the subscription
    assert m.properties.ContentType == "application/json"
    assert m.properties.UserProperty == [("site", "north"), ("k", "v")]
    assert 3590 <= m.properties.MessageExpiryInterval <= 3600
    b2.check_clean_exit()


def test_expiry_counts_the_time_the_broker_was_down(tmp_path):
    b = persistent(tmp_path).start()
    c = V5(b.port)
    c.publish("exp/short", b"s", MessageExpiryInterval=1)
    c.publish("exp/long", b"l", MessageExpiryInterval=600)
    c.close()
    b.check_clean_exit()
    time.sleep(2.2)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert sorted(topics(b2.port)) == ["exp/long"]
    assert b2.wait_log("1 expired while the broker was down"), b2.stderr()
    b2.check_clean_exit()


def test_sigusr1_saves_now_and_kill_9_keeps_that_snapshot(tmp_path):
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    c = V5(b.port)
    c.publish("snap/a", b"1")
    b.proc.send_signal(signal.SIGUSR1)
    assert b.wait_log("Saved 1 retained messages")
    c.publish("snap/b", b"2")  # after the snapshot: in the journal (mosquitto would lose it)
    c.close()
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert sorted(topics(b2.port)) == ["snap/a", "snap/b"]
    b2.check_clean_exit()
    # the clean exit's snapshot holds everything: no journal of an older generation is left
    left = [f for f in os.listdir(tmp_path) if f.startswith(DB + ".") and ".w" in f]
    assert all(f.split(".")[-2] == str(max(int(x.split(".")[-2]) for x in left))
               for f in left), left


@pytest.mark.parametrize("mode", ["interval", "changes"])
def test_autosave_writes_without_a_signal(tmp_path, mode):
    extra = ["autosave_interval 1"] if mode == "interval" else \
        ["autosave_on_changes true", "autosave_interval 3"]
    b = persistent(tmp_path, extra).start()
    c = V5(b.port)
    for i in range(3):
        c.publish(f"auto/{i}", b"x")
    assert b.wait_log("Saved 3 retained messages", timeout=5.0), b.stderr()
    c.close()
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert sorted(topics(b2.port)) == ["auto/0", "auto/1", "auto/2"]
    b2.check_clean_exit()


def test_a_file_it_cannot_read_is_moved_aside_and_start_up_goes_on(tmp_path):
    (tmp_path / DB).write_bytes(b"\x00\x01mosquitto db of another format" * 10)
    b = persistent(tmp_path).start()
    assert b.wait_log("moved to")
    aside = [f for f in os.listdir(tmp_path) if f.startswith(DB + ".unreadable-")]
    assert len(aside) == 1
    c = V5(b.port)
    c.publish("after/x", b"y")
    c.close()
    b.check_clean_exit()
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert sorted(topics(b2.port)) == ["after/x"]
    b2.check_clean_exit()


def test_a_torn_snapshot_keeps_what_verifies(tmp_path):
    b = persistent(tmp_path).start()
    c = V5(b.port)
    for i in range(5):
        c.publish(f"torn/{i}", b"payload %d" % i)
    c.close()
    b.check_clean_exit()
    path = tmp_path / DB
    data = path.read_bytes()
    path.write_bytes(data[:-50])  # the end record (36 bytes) and part of the last message
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert b2.wait_log("torn end")
    got = topics(b2.port)
    assert len(got) == 4 and all(t.startswith("torn/") for t in got), sorted(got)
    b2.check_clean_exit()


def test_an_unwritable_location_is_logged_and_serving_goes_on(tmp_path):
    missing = tmp_path / "no" / "such"
    b = Kept(tmp_path, [AS_ROOT, "persistence true", f"persistence_location {missing}"]).start()
    assert b.wait_log("saving the in-memory database will fail")
    c = V5(b.port)
    c.publish("still/served", b"1")
    assert sorted(c.retained()) == ["still/served"]
    c.close()
    assert b.stop() == 1, "a stop that could not save says so in its exit status"
    check_stderr_text(b.stderr())
    assert "Error saving in-memory database" in b.stderr()


class FileSizeLimited(Kept):
    """A broker under 'ulimit -f' (RLIMIT_FSIZE): a write past it fails with EFBIG, the way a
    full disk fails one with ENOSPC, without filling this machine's disk."""

    def __init__(self, *a, limit, hard=None, **kw):
        super().__init__(*a, **kw)
        self.limit = limit
        self.hard = hard if hard is not None else limit

    def start(self):
        import resource
        import subprocess
        from conftest import BROKER, wait_port
        _started.append(self)
        self._err = open(self.err_path, "wb")
        lim, hard = self.limit, self.hard
        self.proc = subprocess.Popen(
            [BROKER, "-c", str(self.conf)] + self.args, stdin=subprocess.DEVNULL,
            stdout=self._err, stderr=self._err,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (lim, hard)))
        assert wait_port(self.port, 5.0, self.proc), self.stderr()
        return self


def test_a_snapshot_that_cannot_be_written_keeps_the_previous_one(tmp_path):
    """Disk full (here: a write over ulimit -f, EFBIG, which the broker must survive rather
    than die of SIGXFSZ): the save fails, says why, leaves no partial file and keeps the last
    good snapshot; the broker goes on serving and exits 1 when its last save fails."""
    b = persistent(tmp_path).start()
    c = V5(b.port)
    for i in range(10):
        c.publish(f"small/{i}", b"s" * 1000)
    c.close()
    b.check_clean_exit()
    lines = [AS_ROOT, "persistence true", f"persistence_location {tmp_path}/"]
    b2 = FileSizeLimited(tmp_path, lines, port=b.port, name="p2", limit=256 * 1024).start()
    c = V5(b2.port)
    for i in range(40):  # 400 kB of retained messages: the snapshot cannot be written
        c.publish(f"big/{i}", b"b" * 10000)
    b2.proc.send_signal(signal.SIGUSR1)
    assert b2.wait_log("the previous snapshot is kept"), b2.stderr()
    assert "File too large" in b2.stderr()
    c.publish("still/served", b"1")  # alive and serving
    c.close()
    assert b2.stop() == 1
    check_stderr_text(b2.stderr())
    assert not (tmp_path / (DB + ".tmp")).exists()
    b3 = persistent(tmp_path, port=b.port, name="p3").start()
    got = sorted(topics(b3.port))
    # the snapshot's, and those of the journal written before 'ulimit -f' was reached
    assert set(f"small/{i}" for i in range(10)) <= set(got), got
    assert all(t.startswith(("small/", "big/", "still/")) for t in got), got
    b3.check_clean_exit()


def test_debian_style_configuration_starts_and_persists(tmp_path):
    """Debian's /etc/mosquitto/mosquitto.conf, with its paths moved under tmp_path."""
    confd = tmp_path / "conf.d"
    confd.mkdir()
    (confd / "local.conf").write_text("allow_anonymous true\n")
    lines = [AS_ROOT, f"pid_file {tmp_path}/mosquitto.pid", "persistence true",
             f"persistence_location {tmp_path}/", f"log_dest file {tmp_path}/mosquitto.log",
             f"include_dir {confd}"]
    b = Kept(tmp_path, lines).start()
    c = V5(b.port)
    c.publish("debian/t", b"1")
    c.close()
    b.check_clean_exit()
    assert (tmp_path / DB).exists()
    check_stderr_text((tmp_path / "mosquitto.log").read_text(errors="replace"))


# --- persistent sessions ------------------------------------------------------------------------

def offline_subscriber(port, client_id, filters):
    r = Raw(port)
    r.connect(client_id, clean=False)
    assert r.subscribe(filters) == [q for _, q in filters]
    r.send(b"\xe0\x00")  # DISCONNECT, then the broker's close: the session is offline when
    assert r.wait_closed()  # the next publish comes (a bare close raced with it under load)
    r.close()


def publish_raw(port, msgs):
    """Publishes [(topic, payload, qos)] and waits for each acknowledgement."""
    r = Raw(port)
    r.connect("persist-pub")
    for i, (t, p, q) in enumerate(msgs, 1):
        r.send(publish_pkt(t, p, q, pid=i))
        if q == 1:
            r.expect(ack_pkt(4, i))
        elif q == 2:
            r.expect(ack_pkt(PUBREC, i))
            r.send(ack_pkt(PUBREL, i))
            r.expect(ack_pkt(PUBCOMP, i))
    r.close()


def resume(port, client_id, n):
    """Reconnects 'client_id' to its session and acknowledges what comes (QoS 2 to the end);
    returns (the connection, session present, the first n PUBLISH in arrival order)."""
    r = Raw(port)
    sp, _ = r.connect(client_id, clean=False)
    got, open_q2 = [], set()
    while len(got) < n or open_q2:
        first, body, raw = r.recv_packet()
        if first >> 4 == PUBREL:
            pid = struct.unpack(">H", body[:2])[0]
            open_q2.discard(pid)
            r.send(ack_pkt(PUBCOMP, pid))
            continue
        p = Pub(first, body)
        got.append(p)
        if p.qos == 1:
            r.send(ack_pkt(4, p.pid))
        elif p.qos == 2:
            open_q2.add(p.pid)
            r.send(ack_pkt(PUBREC, p.pid))
    return r, sp, got


@pytest.mark.parametrize("how", ["SIGTERM", "SIGUSR1 then kill -9"])
def test_persistent_sessions_and_their_queues_survive_a_restart(tmp_path, how):
    b = persistent(tmp_path, ["autosave_interval 0"], name="s1").start()
    offline_subscriber(b.port, "keep-me", [("s/#", 1), ("q2/#", 2)])
    r = Raw(b.port)
    r.connect("gone-at-restart", clean=True)  # a clean session is not kept
    assert r.subscribe([("s/#", 1)]) == [1]
    publish_raw(b.port, [("s/1", b"one", 1), ("q2/x", b"two", 2), ("s/2", b"three", 1),
                         ("s/0", b"qos0 is not kept for the offline", 0)])
    if how == "SIGTERM":
        r.close()
        b.check_clean_exit()
        assert "Saved 0 retained messages and 1 sessions" in b.stderr()
    else:  # the snapshot is taken from the running workers
        b.proc.send_signal(signal.SIGUSR1)
        assert b.wait_log("Saved 0 retained messages and 1 sessions"), b.stderr()
        r.close()
        kill9(b)

    b2 = persistent(tmp_path, port=b.port, name="s2").start()
    assert b2.wait_log("Restored 1 persistent sessions")
    sub, sp, got = resume(b2.port, "keep-me", 3)
    assert sp == 1
    assert [(p.topic, p.payload, p.qos) for p in got] == [
        ("s/1", b"one", 1), ("q2/x", b"two", 2), ("s/2", b"three", 1)]
    sub.no_data(0.3)
    publish_raw(b2.port, [("s/after", b"four", 1)])  # still subscribed, without a SUBSCRIBE
    p = sub.recv_publish()
    assert (p.topic, p.payload) == ("s/after", b"four")
    sub.close()
    r2 = Raw(b2.port)
    assert r2.connect("gone-at-restart", clean=False)[0] == 0  # no session present
    r2.close()
    b2.check_clean_exit()


def test_qos2_in_flight_both_ways_completes_exactly_once_after_a_restart(tmp_path):
    b = persistent(tmp_path, name="q1").start()
    sub = Raw(b.port)
    sub.connect("q2-sub", clean=False)
    assert sub.subscribe([("x/#", 2)]) == [2]
    # outbound: the subscriber has the message and its PUBREL; it never sends PUBCOMP
    pub = Raw(b.port)
    pub.connect("q2-pub", clean=False)
    pub.send(publish_pkt("x/a", b"once", 2, pid=7))
    pub.expect(ack_pkt(PUBREC, 7))  # inbound: PUBREL never sent before the stop
    p = sub.recv_publish()
    assert (p.topic, p.payload, p.qos) == ("x/a", b"once", 2)
    sub.send(ack_pkt(PUBREC, p.pid))
    sub.expect(ack_pkt(PUBREL, p.pid))
    # a second message stays in flight before its PUBREC: sent again with DUP
    publish_raw(b.port, [("x/b", b"again", 2)])
    q = sub.recv_publish()
    sub.close()
    pub.close()
    b.check_clean_exit()

    b2 = persistent(tmp_path, port=b.port, name="q2").start()
    sub = Raw(b2.port)
    assert sub.connect("q2-sub", clean=False)[0] == 1
    first, body, raw = sub.recv_packet()
    assert raw == ack_pkt(PUBREL, p.pid), raw  # the PUBREL again, same packet id
    q2 = sub.recv_publish()
    assert (q2.topic, q2.payload, q2.pid, q2.dup) == ("x/b", b"again", q.pid, True)
    sub.send(ack_pkt(PUBCOMP, p.pid))
    sub.send(ack_pkt(PUBREC, q2.pid))
    sub.expect(ack_pkt(PUBREL, q2.pid))
    sub.send(ack_pkt(PUBCOMP, q2.pid))
    pub = Raw(b2.port)
    assert pub.connect("q2-pub", clean=False)[0] == 1
    pub.send(publish_pkt("x/a", b"once", 2, dup=True, pid=7))  # its re-send: not delivered
    pub.expect(ack_pkt(PUBREC, 7))
    pub.send(ack_pkt(PUBREL, 7))  # completes the inbound QoS 2 flow
    pub.expect(ack_pkt(PUBCOMP, 7))
    pub.send(publish_pkt("x/a", b"once", 2, pid=7))  # the id is free again: a new message
    pub.expect(ack_pkt(PUBREC, 7))
    pub.send(ack_pkt(PUBREL, 7))
    pub.expect(ack_pkt(PUBCOMP, 7))
    n = sub.recv_publish()
    assert (n.topic, n.payload, n.dup) == ("x/a", b"once", False)
    sub.no_data(0.3)  # nothing delivered twice
    sub.close()
    pub.close()
    b2.check_clean_exit()


def test_session_expiry_counts_the_time_the_broker_was_down(tmp_path):
    b = persistent(tmp_path, name="e1").start()
    for cid, expiry in (("short", 1), ("long", 600)):
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = expiry
        c.connect(HOST, b.port, 60, clean_start=False, properties=p)
        c.loop_start()
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = 42
        info = c.subscribe("v5/#", 1, properties=sp)
        time.sleep(0.3)
        c.disconnect()
        c.loop_stop()
    publish_raw(b.port, [("v5/before", b"queued", 1)])  # queued with its identifier
    b.check_clean_exit()
    time.sleep(2.2)
    b2 = persistent(tmp_path, port=b.port, name="e2").start()
    assert b2.wait_log("Restored 1 persistent sessions")
    publish_raw(b2.port, [("v5/t", b"hello", 1)])
    got = []
    c = mqtt.Client(client_id="long", protocol=mqtt.MQTTv5)
    c.on_message = lambda cl, u, m: got.append(m)
    flags = {}
    c.on_connect = lambda cl, u, f, rc, pr: flags.update(f)
    c.connect(HOST, b2.port, 60, clean_start=False)
    c.loop_start()
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    assert flags.get("session present") == 1
    assert [m.payload for m in got] == [b"queued", b"hello"]
    for m in got:  # the identifier kept, for the queued message too
        assert m.properties.SubscriptionIdentifier == [42], m.topic
    r = Raw(b2.port)
    assert r.connect("short", clean=False, proto=4)[0] == 0  # expired while down
    r.close()
    b2.check_clean_exit()


def test_a_will_waiting_for_its_delay_is_published_after_a_restart(tmp_path):
    b = persistent(tmp_path, name="w1").start()
    offline_subscriber(b.port, "will-watch", [("wills/#", 1)])
    c = mqtt.Client(client_id="dying", protocol=mqtt.MQTTv5)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 5
    c.will_set("wills/dying", b"gone", 1, False, properties=wp)
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 600
    c.connect(HOST, b.port, 60, clean_start=True, properties=cp)
    c.loop_start()
    time.sleep(0.3)
    c.loop_stop()
    c.socket().shutdown(socket.SHUT_RDWR)  # a network failure: the will waits 5 s
    c.socket().close()
    time.sleep(0.3)
    b.check_clean_exit()  # before the delay: the will is in the snapshot, not published
    assert "Saved 0 retained messages and 2 sessions" in b.stderr()

    b2 = persistent(tmp_path, port=b.port, name="w2").start()
    sub = Raw(b2.port)
    assert sub.connect("will-watch", clean=False)[0] == 1
    sub.no_data(1.0)  # the rest of the delay still runs
    p = sub.recv_publish(timeout=8.0)
    assert (p.topic, p.payload) == ("wills/dying", b"gone")
    sub.send(ack_pkt(4, p.pid))
    sub.close()
    b2.check_clean_exit()


def test_queued_qos0_is_kept_with_queue_qos0_messages(tmp_path):
    b = persistent(tmp_path, ["queue_qos0_messages true"], name="z1").start()
    offline_subscriber(b.port, "q0-keep", [("z/#", 1)])
    publish_raw(b.port, [("z/a", b"zero", 0), ("z/b", b"one", 1)])
    time.sleep(0.2)  # the QoS 0 one has no acknowledgement to wait for
    b.check_clean_exit()
    b2 = persistent(tmp_path, ["queue_qos0_messages true"], port=b.port, name="z2").start()
    sub, sp, got = resume(b2.port, "q0-keep", 2)
    assert sp == 1
    assert [(p.topic, p.payload, p.qos) for p in got] == [("z/a", b"zero", 0), ("z/b", b"one", 1)]
    sub.close()
    b2.check_clean_exit()


# ---- the journal (persistence_fsync): what was acknowledged survives kill -9 ---------------------

# The journal is the same code with one worker or several: these run in the test command's
# runs with several workers (plain, ASan, ThreadSanitizer), not again in the one-worker run,
# which keeps the test command under 30 minutes on 2 cores.
journal = pytest.mark.skipif(WORKERS < 2, reason="journal tests run with several workers")


def raw_connect(port, client_id, clean=True):
    r = Raw(port)
    r.send(connect_pkt(client_id, clean=clean))
    assert r.recv_exact(4) == bytes([0x20, 2, 0, 0]) or not clean
    return r


def publish_acked(r, topic, payload, pid, qos=1, timeout=5.0):
    """Sends a retained PUBLISH; True when its PUBACK (QoS 1) or PUBREC (QoS 2) came back,
    False when the broker closed the connection instead."""
    r.send(publish_pkt(topic, payload, qos=qos, retain=True, pid=pid))
    try:
        first, body, _ = r.recv_packet(timeout)
    except Closed:
        return False
    want = 0x40 if qos == 1 else 0x50
    assert first == want and struct.unpack(">H", body[:2])[0] == pid, (first, body)
    if qos == 2:
        r.send(ack_pkt(PUBREL, pid))
        first, body, _ = r.recv_packet(timeout)
        assert first == 0x70, first
    return True


@journal
@pytest.mark.parametrize("fsync", ["always", "never"])
def test_every_acknowledged_retained_change_survives_kill_9(tmp_path, fsync):
    """persistence_fsync always: a PUBACK / PUBREC follows the disk, so every retained change
    acknowledged before kill -9 (sets and clears, QoS 1 and 2, from both workers) is there
    after it, with no snapshot in between (never, and interval alike: the kernel has the
    writes, which a process crash does not lose)."""
    b = persistent(tmp_path, ["autosave_interval 0", f"persistence_fsync {fsync}"]).start()
    rs = [raw_connect(b.port, f"pub{i}") for i in range(4)]  # spread over the workers
    want = {}
    for i in range(200):
        r = rs[i % 4]
        topic, payload = f"dev/{i % 50}", f"v{i}".encode()
        if i % 23 == 22:
            payload = b""  # a clear
        assert publish_acked(r, topic, payload, pid=i % 65000 + 1, qos=1 + i % 2)
        if payload:
            want[topic] = payload
        else:
            want.pop(topic, None)
    kill9(b)
    b2 = persistent(tmp_path, [f"persistence_fsync {fsync}"], port=b.port, name="p2").start()
    assert b2.wait_log("journal records from")
    got = {t: m.payload for t, m in topics(b2.port).items()}
    assert got == want
    # start-up folded the journals into a snapshot: a second crash keeps the same, and more
    c = V5(b2.port)
    c.publish("after/restart", b"1")
    c.close()
    kill9(b2)
    b3 = persistent(tmp_path, port=b.port, name="p3").start()
    want["after/restart"] = b"1"
    assert {t: m.payload for t, m in topics(b3.port).items()} == want
    b3.check_clean_exit()


@journal
def test_a_snapshot_rotates_the_journals_and_later_changes_win(tmp_path):
    """A change made after a snapshot (in the new generation's journal) wins over the
    snapshot's value at replay; the older generation's journals are removed once the snapshot
    is durable."""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    c = V5(b.port)
    c.publish("rot/a", b"old")
    c.publish("rot/b", b"keep")
    b.proc.send_signal(signal.SIGUSR1)
    assert b.wait_log("Saved 2 retained messages")
    c.publish("rot/a", b"new")
    c.publish("rot/c", b"")  # clearing a topic that has nothing is harmless
    c.close()
    names = os.listdir(tmp_path)
    assert not any(f.startswith(DB + ".0.w") for f in names), names
    assert any(f.startswith(DB + ".1.w") for f in names), names
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    got = {t: m.payload for t, m in topics(b2.port).items()}
    assert got == {"rot/a": b"new", "rot/b": b"keep"}
    b2.check_clean_exit()


@journal
def test_a_torn_journal_keeps_what_verifies(tmp_path):
    b = persistent(tmp_path, ["autosave_interval 0", "workers 1"]).start()
    c = V5(b.port)
    for i in range(5):
        c.publish(f"jt/{i}", b"payload %d" % i)
    c.close()
    kill9(b)
    j = tmp_path / (DB + ".0.w0")
    data = j.read_bytes()
    j.write_bytes(data[:-7])  # the last record cut short, as by a crash mid-write
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert b2.wait_log("torn end")
    assert sorted(topics(b2.port)) == [f"jt/{i}" for i in range(4)]
    b2.check_clean_exit()


@journal
def test_a_journal_that_cannot_be_written_stops_acknowledging_and_recovers(tmp_path):
    """Disk full (here 'ulimit -f', EFBIG): the failure is logged loudly; the publish whose
    record failed is not acknowledged (its connection is closed), retained QoS 1/2 publishes
    are refused while it lasts (3.1.1: closed without PUBACK), everything else is still served;
    when space returns (the limit raised) the journal is written again and publishes are
    acknowledged. After kill -9 every acknowledged change is there."""
    import resource
    lines = [AS_ROOT, "persistence true", f"persistence_location {tmp_path}/",
             "autosave_interval 0", "workers 1"]
    b = FileSizeLimited(tmp_path, lines, name="p", limit=64 * 1024,
                        hard=resource.RLIM_INFINITY).start()
    acked = {}
    r = raw_connect(b.port, "filler")
    pid = 0
    for i in range(40):  # 40 x 4 kB: the journal reaches the limit on the way
        pid += 1
        if not publish_acked(r, f"fill/{i}", b"f" * 4000, pid):
            break
        acked[f"fill/{i}"] = b"f" * 4000
    else:
        pytest.fail("every publish was acknowledged past 'ulimit -f'")
    assert b.wait_log("persistence journal"), b.stderr()
    assert "File too large" in b.stderr()
    # while it lasts: a retained QoS 1 PUBLISH is refused, the rest is served
    r = raw_connect(b.port, "refused")
    assert not publish_acked(r, "refused/x", b"1", 1)
    s = Client(b.port)
    s.connect()
    s.subscribe("live/#", 1)
    s.publish("live/q1", b"not retained", qos=1)  # acknowledged (paho waits for it)
    assert [m.payload for m in s.wait_messages(1)] == [b"not retained"]
    s.disconnect()
    # space returns (the soft limit raised to the hard one): within the one-second retry the
    # journal is written again
    resource.prlimit(b.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert b.wait_log("is written again", timeout=5.0), b.stderr()
    r = raw_connect(b.port, "after")
    assert publish_acked(r, "after/ok", b"yes", 1)
    acked["after/ok"] = b"yes"
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    got = {t: m.payload for t, m in topics(b2.port).items()}
    missing = [t for t in acked if got.get(t) != acked[t]]
    assert not missing, missing
    assert "refused/x" not in got
    b2.check_clean_exit()


def worker_of(client_id, workers):
    """The worker that owns 'client_id''s session (its connection moves there): the broker's
    rule, XXH3-64 of the id modulo the workers (libxxhash, which the broker links)."""
    import ctypes
    lib = ctypes.CDLL("libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    b = client_id.encode()
    return lib.XXH3_64bits(b, len(b)) % workers


def id_on(worker, workers, prefix):
    return next(f"{prefix}{i}" for i in range(1000) if worker_of(f"{prefix}{i}", workers) == worker)


def puback_or_closed(r, topic, payload, pid, timeout=5.0):
    """A QoS 1 PUBLISH (not retained): True when its PUBACK came back, False when the
    connection was closed instead."""
    r.send(publish_pkt(topic, payload, qos=1, pid=pid))
    try:
        first, body, _ = r.recv_packet(timeout)
    except Closed:
        return False
    assert first == 0x40 and struct.unpack(">H", body[:2])[0] == pid, (first, body)
    return True


@journal
def test_copies_for_persistent_sessions_the_journal_refuses_are_not_acknowledged(tmp_path):
    """One worker's journal cannot be written (ulimit -f): a plain QoS 1 PUBLISH whose copy
    for an offline persistent session on that worker was not journaled is not acknowledged
    (its connection is closed), whether its publisher is on the same worker or on another (the
    other worker's PUBACK waits for the answer to its durability mark, which says the copy was
    refused); a QoS 1 PUBLISH that needs no record there is still acknowledged. Once the
    journal is written again, publishes are acknowledged and survive kill -9."""
    import resource
    lines = [AS_ROOT, "persistence true", f"persistence_location {tmp_path}/",
             "autosave_interval 0", "workers 2"]
    b = FileSizeLimited(tmp_path, lines, name="p", limit=64 * 1024,
                        hard=resource.RLIM_INFINITY).start()
    sub = id_on(0, 2, "sub")
    offline_subscriber(b.port, sub, [("q/#", 1)])
    r = raw_connect(b.port, id_on(0, 2, "filler"))  # fills worker 0's journal
    for i in range(40):
        if not publish_acked(r, f"fill/{i}", b"f" * 4000, i + 1):
            break
    else:
        pytest.fail("every publish was acknowledged past 'ulimit -f'")
    assert b.wait_log("persistence journal"), b.stderr()
    local = raw_connect(b.port, id_on(0, 2, "local"))
    assert not puback_or_closed(local, "q/local", b"1", 1)
    remote = raw_connect(b.port, id_on(1, 2, "remote"))
    assert not puback_or_closed(remote, "q/remote", b"2", 1)
    served = raw_connect(b.port, id_on(1, 2, "served"))  # no persistent session wants it
    assert puback_or_closed(served, "nobody/listens", b"3", 1)
    resource.prlimit(b.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert b.wait_log("is written again", timeout=5.0), b.stderr()
    for name, w in (("after-local", 0), ("after-remote", 1)):
        c = raw_connect(b.port, id_on(w, 2, name))
        assert puback_or_closed(c, f"q/{name}", name.encode(), 1), name
        c.close()
    kill9(b)
    b2 = persistent(tmp_path, ["workers 2"], port=b.port, name="p2").start()
    r2 = Raw(b2.port)
    assert r2.connect(sub, clean=False)[0] == 1
    got = set()
    while True:
        try:
            first, body, _ = r2.recv_packet(1.5)
        except TimeoutError:  # nothing more
            break
        p = Pub(first, body)
        got.add(p.topic)
        r2.send(ack_pkt(4, p.pid))
    assert {"q/after-local", "q/after-remote"} <= got, got
    r2.close()
    b2.check_clean_exit()


@journal
def test_sessions_and_subscriptions_made_after_the_snapshot_survive_kill_9(tmp_path):
    """The journal keeps a persistent session made after the last snapshot with its
    subscriptions (SUBACK waits for the disk), an unsubscription, and the end of a session
    (a clean start over it); its expiry counts from the restart. (Messages queued for an
    offline session are as of the last snapshot: not journaled yet.)"""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    offline_subscriber(b.port, "ended", [("e/#", 1)])
    b.proc.send_signal(signal.SIGUSR1)
    assert b.wait_log("Saved 0 retained messages and 1 sessions"), b.stderr()
    offline_subscriber(b.port, "fresh", [("f/#", 1), ("g/#", 2), ("h/#", 0)])
    r = Raw(b.port)
    r.connect("fresh", clean=False)
    r.send(unsubscribe_pkt(9, ["g/#"]))
    assert r.recv_exact(4) == bytes([0xB0, 2]) + struct.pack(">H", 9)
    r.send(b"\xe0\x00")
    assert r.wait_closed()
    r.close()
    r = Raw(b.port)
    r.connect("ended", clean=True)  # the snapshot's session ends here
    r.close()
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert b2.wait_log("Restored 1 persistent sessions"), b2.stderr()
    publish_raw(b2.port, [("f/1", b"kept", 1), ("g/1", b"unsubscribed", 1)])
    sub, sp, got = resume(b2.port, "fresh", 1)
    assert sp == 1
    assert [(p.topic, p.payload) for p in got] == [("f/1", b"kept")]
    sub.no_data(0.3)
    sub.close()
    r = Raw(b2.port)
    assert r.connect("ended", clean=False)[0] == 0  # no session present
    r.close()
    b2.check_clean_exit()


def dying(port, client_id, delay, expiry=600):
    """An MQTT 5 client with a persistent session ('expiry' seconds) and a will
    'wills/<client_id>' that waits 'delay' seconds, whose connection then fails (no
    DISCONNECT): the will starts waiting."""
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = delay
    c.will_set(f"wills/{client_id}", client_id.encode(), 1, False, properties=wp)
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = expiry
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect(HOST, port, 60, clean_start=True, properties=cp)
    c.loop_start()
    assert connected.wait(5), "no CONNACK"
    c.loop_stop()
    c.socket().shutdown(socket.SHUT_RDWR)
    c.socket().close()


@journal
def test_a_waiting_will_survives_kill_9_and_one_published_is_not_published_again(tmp_path):
    """The journal keeps a will waiting for its delay (no snapshot in between): after kill -9
    it waits for the rest of its delay, then goes out; a will already published before the
    kill is not published a second time."""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    offline_subscriber(b.port, "will-watch", [("wills/#", 1)])
    dying(b.port, "early", 1)
    dying(b.port, "late", 4)
    gone = time.monotonic()
    time.sleep(2.0)  # early's will is out (queued for the offline subscriber), late's waits
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    sub, sp, got = resume(b2.port, "will-watch", 1)
    assert sp == 1
    assert [(p.topic, p.payload) for p in got] == [("wills/early", b"early")]
    p = sub.recv_publish(timeout=8.0)
    assert (p.topic, p.payload) == ("wills/late", b"late")
    assert time.monotonic() - gone >= 3.5, "published before the rest of its delay"
    sub.send(ack_pkt(4, p.pid))
    sub.no_data(1.5)  # early's is not published again
    sub.close()
    b2.check_clean_exit()


@journal
def test_a_session_that_expired_while_down_publishes_its_waiting_will(tmp_path):
    """A will goes when its session ends if that is before its delay [MQTT-3.1.3-9]: a session
    whose expiry passed while the broker was down publishes its waiting will at start-up."""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    offline_subscriber(b.port, "will-watch", [("wills/#", 1)])
    dying(b.port, "brief", 60, expiry=2)  # the session ends first: the will goes then
    time.sleep(0.3)
    kill9(b)
    time.sleep(3.0)  # the session expires while the broker is down
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    time.sleep(1.5)  # the first tick ends it
    sub, sp, got = resume(b2.port, "will-watch", 1)
    assert [(p.topic, p.payload) for p in got] == [("wills/brief", b"brief")]
    sub.close()
    r = Raw(b2.port)
    assert r.connect("brief", clean=False)[0] == 0  # the session is gone
    r.close()
    b2.check_clean_exit()


@journal
def test_a_session_resumed_to_end_with_its_connection_does_not_come_back(tmp_path):
    """An MQTT 5 client resumes its persistent session (Clean Start 0) with Session Expiry 0:
    the session now ends with the connection, and its waiting will was cancelled by the
    reconnect; after kill -9 neither the session nor the will comes back."""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    offline_subscriber(b.port, "will-watch", [("wills/#", 1)])
    dying(b.port, "flip", 2)
    c = mqtt.Client(client_id="flip", protocol=mqtt.MQTTv5)
    present = []
    c.on_connect = lambda cl, u, flags, rc, props: present.append(flags["session present"])
    c.connect(HOST, b.port, 60, clean_start=False)  # no Session Expiry: 0
    c.loop_start()
    deadline = time.monotonic() + 5
    while not present and time.monotonic() < deadline:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    assert present == [1]
    time.sleep(0.3)
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    r = Raw(b2.port)
    assert r.connect("flip", clean=False)[0] == 0, "the ended session came back"
    r.close()
    sub = Raw(b2.port)
    assert sub.connect("will-watch", clean=False)[0] == 1
    sub.no_data(3.5)  # the cancelled will (2 s) is not published
    sub.close()
    b2.check_clean_exit()


@journal
def test_a_qos2_id_received_before_kill_9_is_not_delivered_again_and_its_release_holds(tmp_path):
    """Exactly once across a crash: a persistent session's inbound QoS 2 id is journaled before
    its PUBREC, so the client's re-send after the restart is acknowledged without a second
    delivery; its PUBREL is journaled before PUBCOMP, so the id can be used again at once."""
    b = persistent(tmp_path, ["autosave_interval 0"]).start()
    sub = Raw(b.port)
    sub.connect("q2-watch")
    assert sub.subscribe([("q2/#", 2)]) == [2]
    pub = Raw(b.port)
    pub.connect("q2-pub", clean=False)
    pub.send(publish_pkt("q2/x", b"once", 2, pid=5))
    pub.expect(ack_pkt(PUBREC, 5))
    p = sub.recv_publish()
    assert p.payload == b"once"
    pub.close()
    sub.close()
    kill9(b)
    def watcher_and_publisher(port):
        """A fresh subscriber to q2/#, and the persistent publisher back (session present)."""
        sub = Raw(port)
        sub.connect("q2-watch")
        assert sub.subscribe([("q2/#", 2)]) == [2]
        pub = Raw(port)
        assert pub.connect("q2-pub", clean=False)[0] == 1  # session present
        return sub, pub

    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    sub, pub = watcher_and_publisher(b2.port)
    pub.send(publish_pkt("q2/x", b"once", 2, dup=True, pid=5))  # the re-send
    pub.expect(ack_pkt(PUBREC, 5))
    pub.send(ack_pkt(PUBREL, 5))
    pub.expect(ack_pkt(PUBCOMP, 5))
    sub.no_data(0.3)  # delivered before the crash: not again
    pub.close()
    kill9(b2)
    b3 = persistent(tmp_path, port=b.port, name="p3").start()
    sub, pub = watcher_and_publisher(b3.port)
    pub.send(publish_pkt("q2/x", b"new", 2, pid=5))  # the id is free again: a new message
    pub.expect(ack_pkt(PUBREC, 5))
    assert sub.recv_publish().payload == b"new"
    pub.send(ack_pkt(PUBREL, 5))
    pub.expect(ack_pkt(PUBCOMP, 5))
    pub.close()
    sub.close()
    b3.check_clean_exit()


@journal
@pytest.mark.parametrize("workers", [1, 2])
def test_messages_queued_for_a_persistent_session_survive_kill_9(tmp_path, workers):
    """The owning worker journals a persistent session's messages (queued, in flight with their
    packet ids, PUBREL state, acknowledged): after kill -9 the session gets what it had not
    acknowledged, in order, and nothing it had."""
    lines = [f"workers {workers}", "max_inflight_messages 2"]  # two in flight, four queued
    b = persistent(tmp_path, ["autosave_interval 0"] + lines).start()
    offline_subscriber(b.port, "queued-sub", [("m/#", 2)])
    publish_raw(b.port, [(f"m/{i}", b"v%d" % i, 1 + i % 2) for i in range(6)])
    # the session takes the first two and acknowledges one; the rest stays queued
    r = Raw(b.port)
    assert r.connect("queued-sub", clean=False)[0] == 1
    p0, p1 = r.recv_publish(), r.recv_publish()
    assert (p0.payload, p1.payload) == (b"v0", b"v1")
    r.send(ack_pkt(4, p0.pid))  # m/0 (QoS 1) acknowledged: gone for good
    r.send(ack_pkt(PUBREC, p1.pid))  # m/1 (QoS 2) reaches PUBREL
    seen = []  # m/2 takes m/0's place in the window: sent, not acknowledged
    while True:
        first, body, _ = r.recv_packet()
        if first >> 4 == PUBREL:
            break
        seen.append(Pub(first, body).payload)
    assert seen in ([], [b"v2"]), seen
    r.close()
    kill9(b)
    b2 = persistent(tmp_path, lines, port=b.port, name="p2").start()
    sub = Raw(b2.port)
    assert sub.connect("queued-sub", clean=False)[0] == 1
    # m/1 waits for its PUBCOMP: the PUBREL again; then the rest in order
    got, rel = [], []
    while len(got) < 4 or p1.pid not in rel:
        first, body, raw = sub.recv_packet()
        if first >> 4 == PUBREL:
            rel.append(struct.unpack(">H", body[:2])[0])
            sub.send(ack_pkt(PUBCOMP, rel[-1]))
            continue
        p = Pub(first, body)
        got.append(p.payload)
        sub.send(ack_pkt(4 if p.qos == 1 else PUBREC, p.pid))
    assert rel[0] == p1.pid  # m/1's flow resumes first, before any new delivery
    assert got == [b"v2", b"v3", b"v4", b"v5"]
    sub.close()
    b2.check_clean_exit()


@journal
def test_a_puback_waits_for_the_journals_of_every_worker_it_mailed(tmp_path):
    """Durability marks: copies of a QoS 1/2 PUBLISH go to the persistent sessions of other
    workers, which journal them; the PUBACK / PUBCOMP comes once those journals hold them, so
    kill -9 right after the last acknowledgement loses none of them. (Eight sessions over four
    workers: some are on other workers than the publisher's.)"""
    lines = ["workers 4"]
    b = persistent(tmp_path, ["autosave_interval 0"] + lines).start()
    subs = [f"marked-{i}" for i in range(8)]
    for cid in subs:
        offline_subscriber(b.port, cid, [("k/#", 2)])
    msgs = [(f"k/{i}", b"p%d" % i, 1 + i % 2) for i in range(20)]
    publish_raw(b.port, msgs)
    kill9(b)  # at once: no pause for the other workers' disks
    b2 = persistent(tmp_path, lines, port=b.port, name="p2").start()
    for cid in subs:
        r, sp, got = resume(b2.port, cid, len(msgs))
        assert sp == 1
        assert [p.payload for p in got] == [m[1] for m in msgs], cid
        r.close()
    b2.check_clean_exit()


@journal
def test_journals_over_their_limit_are_folded_into_a_snapshot(tmp_path):
    """persistence_journal_limit: journals that grow past it make a snapshot due at once (the
    size is looked at every 5 s), whatever autosave_interval says; the old journals go."""
    b = persistent(tmp_path, ["autosave_interval 0", "persistence_journal_limit 65536"]).start()
    c = V5(b.port)
    for i in range(40):  # 40 x 4 kB retained: past 64 kB
        c.publish(f"big/{i}", b"j" * 4000)
    c.close()
    assert b.wait_log("folding them into a snapshot", timeout=8.0), b.stderr()
    assert b.wait_log("Saved 40 retained messages", timeout=5.0), b.stderr()
    assert not any(f.startswith(DB + ".0.w") for f in os.listdir(tmp_path))
    kill9(b)
    b2 = persistent(tmp_path, port=b.port, name="p2").start()
    assert len(topics(b2.port)) == 40
    b2.check_clean_exit()
