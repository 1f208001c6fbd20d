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

from conftest import HOST, IS_MOSQUITTO, WORKERS, Raw, connect_pkt, publish_pkt, subscribe_pkt

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
    assert (line in b.stderr()) == bool(timeout_s), b.stderr()[-2000:]
    assert not ok.disconnected.is_set(), "the subscriber that kept up was disconnected"
    slow.s.close()
