# SPDX-License-Identifier: MIT
"""A shutdown that says goodbye: on SIGTERM (or SIGINT) the broker stops reading, sends every
connection what is already queued for it (bounded by a short timeout), then exits 0; a second
SIGTERM or SIGINT while it flushes ends it at once."""
import os
import signal
import socket
import struct
import time

import pytest

from conftest import (HOST, IS_MOSQUITTO, Broker, Raw, check_stderr_text, connect_pkt,
                      publish_pkt, subscribe_pkt)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="mosquitto drops queued output on exit")

N = 1000          # messages queued for a subscriber that does not read
SIZE = 16 * 1024  # 16 MB in all: far more than the kernel's socket buffers hold
FLUSH_S = 2.0     # broker/main.c SHUTDOWN_FLUSH_MS


def slow_subscriber(port):
    """A subscriber to f/# with a small receive buffer, which then stops reading."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((HOST, port))
    r = Raw.__new__(Raw)
    r.s, r.buf, r.eof = s, b"", False
    r.send(connect_pkt("slow-sub"))
    first, body, raw = r.recv_packet()
    assert first == 0x20 and body[1] == 0, raw
    r.send(subscribe_pkt(1, [("f/#", 0)]))
    first, body, raw = r.recv_packet()
    assert first == 0x90, raw
    return r


def flood(port):
    """Publishes N messages of SIZE bytes to f/x at QoS 0, then one at QoS 1 (acknowledged
    once the broker has processed every one before it)."""
    p = Raw(port)
    p.connect("flooder")
    chunk = publish_pkt("f/x", b"m" * SIZE)
    for _ in range(N // 50):
        p.send(chunk * 50)
    p.send(publish_pkt("f/x", b"end", qos=1, pid=7))
    first, body, raw = p.recv_packet(timeout=20)
    assert first == 0x40 and body == struct.pack(">H", 7), raw
    return p


def start(tmp_path, name):
    b = Broker(tmp_path, ["max_queued_messages 100000"], name=name)
    return b.start()


def count_until_eof(r, timeout):
    """Reads PUBLISH packets until the broker closes; returns how many arrived."""
    n = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            first, body, raw = r.recv_packet(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:  # EOF (Closed) or the deadline
            return n
        if first >> 4 == 3:
            n += 1


@pytest.mark.timeout(60)
def test_sigterm_flushes_what_is_queued_then_exits_0(tmp_path):
    b = start(tmp_path, "flush")
    try:
        sub = slow_subscriber(b.port)
        flood(b.port)
        time.sleep(1.0)  # deliveries between workers land in the subscriber's session
        t0 = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        got = count_until_eof(sub, timeout=10)
        rc = b.proc.wait(10)
        took = time.monotonic() - t0
    finally:
        b.kill()
    check_stderr_text(b.stderr())
    assert rc == 0, b.stderr()[-3000:]
    assert got == N + 1, f"{got} of {N + 1} messages queued before SIGTERM arrived"
    assert took < FLUSH_S + 3, f"exit took {took:.1f} s"


@pytest.mark.timeout(60)
def test_a_stalled_client_holds_the_exit_only_for_the_flush_timeout(tmp_path):
    b = start(tmp_path, "stall")
    try:
        sub = slow_subscriber(b.port)  # never reads again
        flood(b.port)
        t0 = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        rc = b.proc.wait(FLUSH_S + 5)
        took = time.monotonic() - t0
    finally:
        b.kill()
    check_stderr_text(b.stderr())
    assert rc == 0, b.stderr()[-3000:]
    assert FLUSH_S - 0.5 < took < FLUSH_S + 3, f"exit took {took:.1f} s"
    sub.s.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_exits_at_once(tmp_path, second):
    b = start(tmp_path, "twice")
    try:
        sub = slow_subscriber(b.port)
        flood(b.port)
        b.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert b.proc.poll() is None, "the broker did not wait for its stalled client"
        t0 = time.monotonic()
        b.proc.send_signal(second)
        rc = b.proc.wait(5)
        took = time.monotonic() - t0
    finally:
        b.kill()
    assert rc == 1, f"exit code {rc}"
    # the flush would end 1.5 s after the second signal; a sanitizer's exit work takes ~1 s
    limit = 1.4 if os.environ.get("MQ_SANITIZED") == "1" else 1.0
    assert took < limit, f"exit took {took:.2f} s after the second signal"
    sub.s.close()


def test_an_idle_broker_exits_at_once(tmp_path, client):
    b = start(tmp_path, "idle")
    c = client(b.port, client_id="idle-1").connect()
    t0 = time.monotonic()
    rc = b.stop(signal.SIGTERM)
    took = time.monotonic() - t0
    c.disconnect()
    check_stderr_text(b.stderr())
    assert rc == 0
    assert took < 1.0, f"exit took {took:.1f} s with nothing to flush"
