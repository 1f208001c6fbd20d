# SPDX-License-Identifier: MIT
"""$SYS: mosquitto's topics, their value types, that they move with traffic, sys_interval 0."""
import re
import time

import pytest

from conftest import WORKERS, IS_MOSQUITTO, run

NUMBER = re.compile(r"^\d+$")
DECIMAL = re.compile(r"^\d+(\.\d+)?$")

COUNTERS = [
    "clients/total", "clients/maximum", "clients/connected", "clients/disconnected",
    "clients/expired", "clients/active", "clients/inactive",
    "messages/received", "messages/sent", "messages/inflight", "messages/stored",
    "publish/messages/received", "publish/messages/sent", "publish/messages/dropped",
    "publish/bytes/received", "publish/bytes/sent",
    "bytes/received", "bytes/sent",
    "store/messages/count", "store/messages/bytes",
    "subscriptions/count", "shared_subscriptions/count", "retained messages/count",
]
LOADS = [f"load/{what}/{win}"
         for what in ["messages/received", "messages/sent", "publish/received",
                      "publish/sent", "publish/dropped", "bytes/received", "bytes/sent",
                      "sockets", "connections"]
         for win in ["1min", "5min", "15min"]]
WORKER_TOPICS = ["connections", "messages/received", "messages/sent", "ring/depth",
                 "loop/latency"]


def latest(msgs):
    """topic -> last payload (str)."""
    out = {}
    for m in msgs:
        out[m.topic] = m.payload.decode()
    return out


def sys_values(c, want, timeout=6.0):
    """Waits until every topic in 'want' has arrived; returns the latest values."""
    deadline = time.monotonic() + timeout
    while True:
        vals = latest(c.wait_messages(1, timeout))
        missing = [t for t in want if t not in vals]
        if not missing:
            return vals
        assert time.monotonic() < deadline, f"missing $SYS topics: {missing}"
        time.sleep(0.2)


def test_every_mosquitto_sys_topic_is_published_with_the_right_kind_of_value(broker, client):
    b = broker("sys_interval 1")
    c = client(b.port).connect()
    c.subscribe("$SYS/#")
    want = ["$SYS/broker/version", "$SYS/broker/uptime"] + \
        [f"$SYS/broker/{t}" for t in COUNTERS + LOADS]
    if not IS_MOSQUITTO:
        want += [f"$SYS/broker/workers/{i}/{t}" for i in range(WORKERS) for t in WORKER_TOPICS]
    vals = sys_values(c, want)
    assert re.match(r"^(starling|mosquitto) version \d+\.\d+\.\d+", vals["$SYS/broker/version"])
    assert re.match(r"^\d+ seconds$", vals["$SYS/broker/uptime"])
    for t in COUNTERS:
        assert NUMBER.match(vals[f"$SYS/broker/{t}"]), (t, vals[f"$SYS/broker/{t}"])
    for t in LOADS:
        assert DECIMAL.match(vals[f"$SYS/broker/{t}"]), (t, vals[f"$SYS/broker/{t}"])
    for t in ("$SYS/broker/heap/current", "$SYS/broker/heap/maximum"):
        if t in vals:  # only with jemalloc, as mosquitto only with its memory tracking
            assert NUMBER.match(vals[t])


def test_sys_topics_are_retained_so_a_late_subscriber_gets_them_at_once(broker, client):
    b = broker("sys_interval 1")
    time.sleep(1.5)
    c = client(b.port).connect()
    c.subscribe("$SYS/broker/version")
    msgs = c.wait_messages(1, timeout=0.8)  # well before the next interval
    assert msgs[0].retain


def test_hash_does_not_match_sys_but_sys_hash_does(broker, client):
    b = broker("sys_interval 1")
    all_ = client(b.port).connect()
    all_.subscribe("#")
    plus = client(b.port).connect()
    plus.subscribe("+/broker/uptime")
    sys = client(b.port).connect()
    sys.subscribe("$SYS/#")
    sys.wait_messages(5, timeout=4)
    time.sleep(1.2)
    assert not [m.topic for m in all_.take() if m.topic.startswith("$")]
    assert not plus.take()


def test_uptime_increases_and_counters_follow_traffic(broker, client):
    b = broker("sys_interval 1")
    mon = client(b.port).connect()
    mon.subscribe("$SYS/broker/#")
    first = sys_values(mon, ["$SYS/broker/uptime", "$SYS/broker/publish/messages/received",
                             "$SYS/broker/clients/connected"])
    up0 = int(first["$SYS/broker/uptime"].split()[0])
    rx0 = int(first["$SYS/broker/publish/messages/received"])
    conn0 = 1  # the broker is this test's own: 'mon' is its only client so far

    pubs = [client(b.port).connect() for _ in range(3)]
    for p in pubs:
        for i in range(10):
            p.publish("traffic/x", b"m%d" % i, qos=1)

    def wait_for(pred, timeout=6.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            vals = latest(mon.wait_messages(1))
            if pred(vals):
                return vals
            time.sleep(0.2)
        raise AssertionError(f"$SYS never satisfied the condition: {[(m.topic, m.payload) for m in mon.take() if b'clients/connected' in m.topic.encode() or m.topic.endswith('uptime')]}")

    vals = wait_for(lambda v: int(v["$SYS/broker/publish/messages/received"]) >= rx0 + 30 and
                    int(v["$SYS/broker/clients/connected"]) == conn0 + 3)
    for p in pubs:
        p.disconnect()
    vals = wait_for(lambda v: int(v["$SYS/broker/clients/connected"]) == conn0 and
                    int(v["$SYS/broker/uptime"].split()[0]) >= up0 + 2)
    assert int(vals["$SYS/broker/uptime"].split()[0]) >= up0 + 2


def test_load_averages_rise_under_load(broker, client):
    b = broker("sys_interval 1")
    mon = client(b.port).connect()
    mon.subscribe("$SYS/broker/load/publish/received/1min")
    pub = client(b.port).connect()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for i in range(50):
            pub.c.publish("load/x", b"x", 0)
        time.sleep(0.1)
        vals = latest(mon.take() or [])
        v = vals.get("$SYS/broker/load/publish/received/1min")
        if v is not None and float(v) > 1.0:
            return
    raise AssertionError("load/publish/received/1min never rose above 1")


def test_sys_interval_zero_publishes_nothing(broker, client):
    b = broker("sys_interval 0")
    c = client(b.port).connect()
    c.subscribe("$SYS/#")
    c.no_messages(quiet=2.5)


def test_mosquitto_sub_reads_the_sys_tree(broker):
    b = broker("sys_interval 1")
    res = run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "$SYS/#", "-v",
               "-W", "3"], timeout=10)
    topics = {line.split(" ", 1)[0] for line in res.stdout.splitlines() if line}
    assert "$SYS/broker/uptime" in topics
    assert "$SYS/broker/clients/connected" in topics
    assert len(topics) >= 40, sorted(topics)


def test_take_over_keeps_the_connected_count_right(broker, client):
    b = broker("sys_interval 1")
    mon = client(b.port).connect()
    mon.subscribe("$SYS/broker/clients/connected")
    first = client(b.port, client_id="twice").connect()
    second = client(b.port, client_id="twice").connect()  # takes the session over
    assert first.disconnected.wait(5)
    first.c.loop_stop()
    first.started = False

    def connected_is(n, timeout=6.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = mon.wait_messages(1)
            if msgs[-1].payload == str(n).encode():
                return True
            time.sleep(0.2)
        return False

    assert connected_is(2), [m.payload for m in mon.take()]  # mon + the new connection
    second.disconnect()
    assert connected_is(1), [m.payload for m in mon.take()]
