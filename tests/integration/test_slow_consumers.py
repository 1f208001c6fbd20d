# SPDX-License-Identifier: MIT
"""Slow and stalled consumers, reduced (issue 12): 100 subscribers that never read, on a topic
a publisher floods, next to a healthy publisher/subscriber pair. The broker's RSS stays
under the bound its limits give, what it drops is counted in $SYS, and the healthy pair loses
nothing. The bound, per stalled subscriber: the output buffer up to the high-water mark
(256 KiB) plus one message, the same again for the send in flight, and max_queued_messages
queued messages (each an entry plus, at worst, a message of its own); and, once per worker,
what the flood touches of the memory set aside at start: the provided receive buffers
(512 x 8 KiB, net/conn.c) and the inbox (16,384 x 64 B, net/worker.c):
    RSS <= RSS before + W * (4 MiB + 1 MiB) + n * (2 * (256 KiB + S) + q * (S + 64 B)).
The full size (1,000 stalled subscribers) runs by hand: MQ_STALLED=1000 (and an open-file
limit above it)."""
import os
import re
import socket
import time

import pytest

from conftest import (HOST, IS_MOSQUITTO, WORKERS, Raw, connect_pkt, publish_pkt, several_workers,
                      subscribe_pkt)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="reads the broker's /proc figures")

N_STALLED = int(os.environ.get("MQ_STALLED", "100"))
Q = 100            # max_queued_messages
S = 2048           # payload bytes
M = 3000           # flood messages (6 MB each stalled subscriber would need)
HWM = 256 * 1024   # the output high-water mark (broker/config.c out_high_water)
PER_WORKER = 512 * 8 * 1024 + 16384 * 64  # receive buffers + inbox, touched under load


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def stalled(port, i):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((HOST, port))
    r = Raw.__new__(Raw)
    r.s, r.buf, r.eof = s, b"", False
    r.send(connect_pkt(f"stalled-{i}"))
    assert r.recv_packet()[0] == 0x20
    r.send(subscribe_pkt(1, [("flood/#", 0)]))
    assert r.recv_packet()[0] == 0x90
    return r


@pytest.mark.timeout(120)
def test_stalled_subscribers_are_bounded_counted_and_do_not_hurt_a_healthy_pair(broker, client):
    b = broker(f"max_queued_messages {Q}\nsys_interval 1")
    subs = [stalled(b.port, i) for i in range(N_STALLED)]
    time.sleep(0.5)
    before = rss_kib(b.proc.pid)
    mon = client(b.port, client_id="sys-mon").connect()
    mon.subscribe("$SYS/broker/publish/messages/dropped")
    ok_sub = client(b.port, client_id="healthy-sub").connect()
    ok_sub.subscribe("ok/t", qos=1)
    ok_pub = client(b.port, client_id="healthy-pub").connect()
    flood = Raw(b.port)
    flood.connect("flooder")
    msg = publish_pkt("flood/x", b"f" * S)
    peak = before
    for k in range(M // 100):
        flood.send(msg * 100)
        ok_pub.publish("ok/t", str(k).encode(), qos=1)
        peak = max(peak, rss_kib(b.proc.pid))
    flood.send(publish_pkt("flood/x", b"end", qos=1, pid=9))
    assert flood.recv_packet(timeout=30)[0] == 0x40  # every flood message was processed
    got = ok_sub.wait_messages(M // 100, timeout=20)
    assert sorted(int(m.payload) for m in got) == list(range(M // 100))
    time.sleep(2.5)  # $SYS is published every second
    peak = max(peak, rss_kib(b.proc.pid))
    bound = before + (WORKERS * PER_WORKER + N_STALLED * (2 * (HWM + S) + Q * (S + 64))) // 1024
    if os.environ.get("MQ_SANITIZED") != "1":  # sanitizers hold freed memory (quarantine)
        assert peak <= bound, f"RSS {peak} KiB over the bound {bound} KiB (before: {before} KiB)"
    drops = [int(m.payload) for m in mon.messages
             if m.topic == "$SYS/broker/publish/messages/dropped"]
    # each stalled subscriber holds at most what fits its queue, the broker's two buffers and
    # the kernel's (the send buffer grows up to tcp_wmem's maximum); the rest of its M
    # messages is dropped, and must be counted
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        kernel = int(f.read().split()[2]) + 4096
    least = N_STALLED * (M - Q - 2 * (HWM // S + 1) - kernel // S)
    assert drops and least <= drops[-1] <= N_STALLED * (M + 1), \
        f"dropped counted {drops[-1:]}, expected at least {least}"
    print(f"RSS before {before} KiB, peak {peak} KiB, bound {bound} KiB; dropped {drops[-1]}")
    for r in subs:
        r.s.close()


def flood_for(port, seconds, topic="flood/x"):
    p = Raw(port)
    p.connect("flood-timed")
    msg = publish_pkt(topic, b"f" * S)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p.send(msg * 40)
        time.sleep(0.04)
    p.send(publish_pkt(topic, b"end", qos=1, pid=3))
    assert p.recv_packet(timeout=30)[0] == 0x40
    return p


@several_workers
@pytest.mark.timeout(60)
@pytest.mark.parametrize("timeout_s", [0, 2])
def test_queue_full_timeout_disconnects_a_stalled_subscriber(broker, client, timeout_s):
    """queue_full_timeout N (Starling's, off by default): a client whose queue stays full for
    N seconds is disconnected (its will is published); one that keeps up stays. The stalled
    subscriber is never read from (reading would unstall it): the broker's log tells."""
    extra = "max_queued_messages 10" + (f"\nqueue_full_timeout {timeout_s}" if timeout_s else "")
    b = broker(extra)
    slow = stalled(b.port, 0)
    ok = client(b.port, client_id="keeps-up").connect()
    ok.subscribe("flood/#")
    # the kernel's send buffer (up to tcp_wmem's maximum, 4 MiB) fills first, then the
    # output buffer, then the queue: 8 s of 2 MB/s leave seconds of a full queue
    flood_for(b.port, 8.0)
    line = "Client stalled-0 disconnected: its queue has been full for 2 s."
    if timeout_s:
        assert b.wait_log(line), b.stderr()[-2000:]
    else:
        assert line not in b.stderr(), b.stderr()[-2000:]
    assert not ok.disconnected.is_set(), "the subscriber that kept up was disconnected"
    slow.s.close()


# --- memory_limit (mosquitto's option) -----------------------------------------------------------


def sys_dropped(mon, timeout=5.0):
    """The latest $SYS dropped count that 'mon' received (it subscribed before)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [int(m.payload) for m in mon.messages
               if m.topic == "$SYS/broker/publish/messages/dropped"]
        if got and got[-1] > 0:
            return got[-1]
        time.sleep(0.1)
    return 0


@pytest.mark.timeout(60)
def test_above_memory_limit_publishes_are_refused_and_the_broker_keeps_serving(broker, client):
    """memory_limit 1: the heap is always above it. Every new message is refused the way its
    protocol allows — MQTT 5 QoS 1/2 with 0x97 Quota exceeded, QoS 0 dropped, an MQTT 3.1.1
    QoS 1 publisher disconnected without PUBACK (it sends the message again later) — counted
    as dropped in $SYS; connects, subscriptions and pings go on."""
    from test_v5 import Raw5, publish5  # noqa: E402 (the raw MQTT 5 helpers)

    b = broker("memory_limit 1\nsys_interval 1")
    mon = client(b.port, client_id="mon").connect()
    mon.subscribe("$SYS/broker/publish/messages/dropped")
    sub = client(b.port, client_id="sub").connect()
    sub.subscribe("m/#", qos=1)

    v5 = Raw5(b.port)
    v5.connect5("v5-pub")
    v5.send(publish5("m/a", b"1", qos=1, pid=1))
    first, body, raw = v5.recv_packet()
    assert first == 0x40 and body[2] == 0x97, raw  # PUBACK 0x97 Quota exceeded
    v5.send(publish5("m/a", b"2", qos=2, pid=2))
    first, body, raw = v5.recv_packet()
    assert first == 0x50 and body[2] == 0x97, raw  # PUBREC 0x97: the exchange ends here
    v5.send(publish5("m/a", b"3"))

    old = Raw(b.port)
    old.connect("v311-pub")
    old.send(publish_pkt("m/b", b"4"))  # QoS 0: dropped, the connection stays
    old.send(b"\xc0\x00")
    assert old.recv_packet()[0] == 0xD0
    old.send(publish_pkt("m/b", b"5", qos=1, pid=7))
    try:
        raw = old.recv_packet(timeout=3)
        raise AssertionError(f"a 3.1.1 QoS 1 PUBLISH above memory_limit was answered: {raw!r}")
    except Exception as e:  # the connection ends, with no PUBACK
        assert "closed" in str(e), e

    late = client(b.port, client_id="late").connect()  # the broker keeps serving
    late.subscribe("m/#")
    assert sys_dropped(mon) >= 5
    assert not sub.messages and not late.messages
    assert b.wait_log("above memory_limit 1: publishes refused"), b.stderr()[-2000:]


@pytest.mark.timeout(90)
def test_publishes_resume_once_the_heap_is_back_under_memory_limit(broker):
    """A stalled subscriber's queue grows the heap past memory_limit: the publisher's next
    messages get 0x97; once that subscriber goes (its queue is freed) they are accepted
    again, without a restart."""
    from test_v5 import Raw5, publish5  # noqa: E402

    limit = 96 * 1024 * 1024
    b = broker(f"memory_limit {limit}\nmax_queued_messages 1000")
    slow = stalled(b.port, 0)
    slow.send(subscribe_pkt(2, [("big/#", 1)]))
    pub = Raw5(b.port)
    pub.connect5("big-pub")
    payload = b"b" * (256 * 1024)
    refused_at = None
    for i in range(1, 1000):  # the queue alone would hold 256 MB: the limit comes first
        pub.send(publish5("big/x", payload, qos=1, pid=i))
        first, body, raw = pub.recv_packet(timeout=10)
        assert first == 0x40, raw
        if len(body) > 2 and body[2] == 0x97:
            refused_at = i
            break
    assert refused_at and refused_at > 100, f"refused at message {refused_at}"
    slow.s.close()  # its clean session ends, its queue is freed
    deadline = time.monotonic() + 10
    i = 1
    while True:
        pub.send(publish5("big/x", b"small", qos=1, pid=i))
        first, body, raw = pub.recv_packet(timeout=10)
        if len(body) == 2 or body[2] < 0x80:
            break
        assert time.monotonic() < deadline, "still refused 10 s after the heap went down"
        time.sleep(0.1)
        i += 1
    # the line goes through the logging thread: it may trail the PUBACK that shows it
    assert b.wait_log("back under memory_limit"), b.stderr()[-2000:]
