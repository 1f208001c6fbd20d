#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Crash loop (issue 11): retained QoS 1 and QoS 2 publishers and persistent subscribers under
load, the broker killed with kill -9 at random moments and restarted on the same port, again
and again. After each restart every publisher's topic must hold the last value the broker
acknowledged to it, or a later one it had sent (never an older one); at the end every
persistent subscriber (QoS 2 subscriptions, some going offline for a while now and then) must
have received every value acknowledged to a publisher — at least once, and from the QoS 2
publishers exactly once. With persistence_fsync always an acknowledgement follows the disk
(of every worker a copy went to), so nothing acknowledged is lost.

  tests/stress/crashloop.py --broker build/broker/starling [--kills 100] [--publishers 4]
                            [--subscribers 4] [--window 4]

(The Python subscribers drain slower than the broker takes publishes: with more publishers
the offline subscribers' backlog, and with it the snapshot and each restart, keeps growing.)

Prints the counts; exits 1 when an acknowledged value was lost or duplicated, a restart
failed or nothing was acknowledged between two kills."""
import argparse
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from soak import free_port, wait_port  # the stress scripts' own helpers (tests/stress/soak.py)

HOST = "127.0.0.1"


def s16(b):
    return struct.pack(">H", len(b)) + b


def pkt(first, body):
    n, out = len(body), b""
    while True:
        d, n = n % 128, n // 128
        out += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([first]) + out + body


class Conn:
    def __init__(self, port, cid, clean=True):
        self.s = socket.create_connection((HOST, port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.s.sendall(pkt(0x10, s16(b"MQTT") + bytes([4, 2 if clean else 0]) +
                           struct.pack(">H", 60) + s16(cid.encode())))
        first, body = self.recv()
        if first != 0x20 or body[1] != 0:
            raise ConnectionError(f"CONNACK {first:#x} {body!r}")
        self.session_present = bool(body[0] & 1)

    def recv(self):
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    first, body = self.buf[0], self.buf[i:i + n]
                    self.buf = self.buf[i + n:]
                    return first, body
            d = self.s.recv(65536)
            if not d:
                raise ConnectionError("closed")
            self.buf += d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Publisher(threading.Thread):
    def __init__(self, port, k, go, window):
        super().__init__(daemon=True)
        self.port, self.k, self.go, self.window = port, k, go, window
        self.qos = 1 + k % 2
        self.sent = 0   # highest value sent
        self.acked = 0  # highest value acknowledged
        self.acked_set = set()  # every value acknowledged
        self.idle = threading.Event()
        self.stop = False

    def run(self):
        c, pid = None, 0
        while not self.stop:
            if not self.go.is_set():
                if c:
                    c.close()
                    c = None
                self.idle.set()
                self.go.wait(0.2)
                continue
            self.idle.clear()
            try:
                if c is None:
                    c = Conn(self.port, f"crash-pub-{self.k}")
                    inflight = []  # (pid, value) sent, not yet acknowledged, in order
                topic = s16(f"crash/{self.k}".encode())
                # QoS 1 publishers keep a window of publishes in flight (acknowledgements of
                # several loop turns at once); QoS 2 ones go one flow at a time
                while len(inflight) < (self.window if self.qos == 1 else 1):
                    v = self.sent + 1
                    pid = pid % 65535 + 1
                    self.sent = v
                    c.s.sendall(pkt(0x31 | self.qos << 1, topic + struct.pack(">H", pid) +
                                    str(v).encode()))
                    inflight.append((pid, v))
                first, body = c.recv()
                rpid = struct.unpack(">H", body[:2])[0]
                assert inflight and rpid == inflight[0][0], (rpid, inflight)
                if self.qos == 2:
                    assert first >> 4 == 5, first
                    self.acked = inflight.pop(0)[1]  # PUBREC says it was taken
                    self.acked_set.add(self.acked)
                    c.s.sendall(pkt(0x62, struct.pack(">H", rpid)))
                    first, body = c.recv()
                    assert first >> 4 == 7, first
                else:
                    assert first >> 4 == 4, first
                    self.acked = inflight.pop(0)[1]
                    self.acked_set.add(self.acked)
            except (OSError, ConnectionError):
                if c:
                    c.close()
                c = None
                time.sleep(0.02)


class Subscriber(threading.Thread):
    """A persistent session (clean session 0, QoS 2 subscription to crash/#) that records
    every value it gets, acknowledges as a client must (a QoS 2 packet id counts once until
    its PUBREL, across reconnects), and goes offline for a moment now and then."""

    def __init__(self, port, j, rnd):
        super().__init__(daemon=True)
        self.port, self.j, self.rnd = port, j, rnd
        self.got = {}            # publisher k -> values received, in order
        self.pending2 = set()    # QoS 2 packet ids received, not yet released
        self.subscribed = False
        self.stop = False
        self.lost_session = 0  # reconnects that found no session (the broker lost it)
        self.draining = False  # the end: stays connected until its queue is empty
        self.last_rx = time.monotonic()

    def run(self):
        c = None
        while not self.stop:
            try:
                if c is None:
                    c = Conn(self.port, f"crash-sub-{self.j}", clean=False)
                    if self.subscribed and not c.session_present:
                        self.lost_session += 1
                        print(f"subscriber {self.j}: session not present on reconnect",
                              flush=True)
                    if not self.subscribed:
                        c.s.sendall(pkt(0x82, struct.pack(">H", 1) + s16(b"crash/#") + b"\x02"))
                        while c.recv()[0] >> 4 != 9:  # SUBACK
                            pass
                        self.subscribed = True
                    c.s.settimeout(0.5)
                    offline_at = time.monotonic() + self.rnd.uniform(1, 4)
                if time.monotonic() > offline_at and not self.draining:  # away: the broker queues
                    c.close()
                    c = None
                    time.sleep(self.rnd.uniform(0.1, 0.4))
                    continue
                try:
                    first, body = c.recv()
                except socket.timeout:
                    continue
                kind = first >> 4
                if kind == 3:
                    qos = (first >> 1) & 3
                    tl = struct.unpack(">H", body[:2])[0]
                    k = int(body[2:2 + tl].decode().split("/")[1])
                    pid = struct.unpack(">H", body[2 + tl:4 + tl])[0] if qos else 0
                    value = int(body[2 + tl + (2 if qos else 0):])
                    if qos < 2 or pid not in self.pending2:
                        self.got.setdefault(k, []).append(value)
                        self.last_rx = time.monotonic()
                    if qos == 1:
                        c.s.sendall(pkt(0x40, struct.pack(">H", pid)))
                    elif qos == 2:
                        self.pending2.add(pid)
                        c.s.sendall(pkt(0x50, struct.pack(">H", pid)))
                elif kind == 6:  # PUBREL
                    pid = struct.unpack(">H", body[:2])[0]
                    self.pending2.discard(pid)
                    c.s.sendall(pkt(0x70, struct.pack(">H", pid)))
            except (OSError, ConnectionError, ValueError):
                if c:
                    c.close()
                c = None
                time.sleep(0.05)
        if c:
            c.close()


def retained(port, n):
    """{k: value} of the retained crash/# messages (n publishers)."""
    for attempt in range(50):  # the new broker may still be setting up its listener
        try:
            c = Conn(port, "crash-check")
            break
        except (OSError, ConnectionError):
            if attempt == 49:
                raise
            time.sleep(0.1)
    c.s.sendall(pkt(0x82, struct.pack(">H", 1) + s16(b"crash/#") + b"\x00"))
    got, deadline = {}, time.monotonic() + 5
    c.s.settimeout(0.5)
    while time.monotonic() < deadline and len(got) < n:
        try:
            first, body = c.recv()
        except socket.timeout:
            continue
        if first >> 4 == 3:
            tl = struct.unpack(">H", body[:2])[0]
            topic = body[2:2 + tl].decode()
            got[int(topic.split("/")[1])] = int(body[2 + tl:])
    c.close()
    return got


def port_closed(port, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            time.sleep(0.01)
        except OSError:
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--window", type=int, default=4, help="QoS 1 publishes in flight each")
    ap.add_argument("--subscribers", type=int, default=4, help="persistent subscribers")
    ap.add_argument("--min-run", type=float, default=0.3)
    ap.add_argument("--max-run", type=float, default=1.5)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    d = tempfile.mkdtemp(prefix="starling-crash-")
    port = free_port()
    conf = os.path.join(d, "crash.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} {HOST}\nallow_anonymous true\nworkers {a.workers}\n"
                f"user root\npersistence true\npersistence_location {d}/\n"
                "autosave_interval 2\npersistence_fsync always\n"
                "max_queued_messages 0\n")  # an offline subscriber's queue is not cut
    log = open(os.path.join(d, "broker.log"), "ab")

    def start():
        p = subprocess.Popen([a.broker, "-c", conf], stdout=log, stderr=log,
                             stdin=subprocess.DEVNULL)
        # a large backlog makes a large snapshot to fold at start-up: up to a minute
        if not wait_port(port, p, timeout=60.0):
            p.kill()  # not yet the 'proc' the cleanup stops
            p.wait(10)
            sys.exit(f"FAIL: the broker did not start (log {d}/broker.log)")
        return p

    go = threading.Event()
    pubs = [Publisher(port, k, go, a.window) for k in range(a.publishers)]
    proc = start()
    subs = [Subscriber(port, j, random.Random(rnd.random())) for j in range(a.subscribers)]
    for sb in subs:
        sb.start()
    deadline = time.monotonic() + 10
    while not all(sb.subscribed for sb in subs) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not all(sb.subscribed for sb in subs):
        sys.exit("FAIL: the subscribers could not subscribe")
    for p in pubs:
        p.start()
    lost = checked = 0
    acked_total = 0
    t0 = time.monotonic()
    try:
        for kill in range(1, a.kills + 1):
            go.set()
            before = sum(p.acked for p in pubs)
            time.sleep(rnd.uniform(a.min_run, a.max_run))
            go.clear()
            proc.kill()  # mid-traffic: publishes in flight, journal writes in flight
            proc.wait(10)
            port_closed(port)  # the kernel's teardown of the dead listener can outlast it
            for p in pubs:
                p.idle.wait(10)
            if sum(p.acked for p in pubs) == before:
                sys.exit(f"FAIL: nothing acknowledged before kill {kill}")
            proc = start()
            got = retained(port, a.publishers)
            for p in pubs:
                v = got.get(p.k, 0)
                checked += 1
                if v < p.acked or v > p.sent:
                    lost += v < p.acked
                    print(f"kill {kill}: crash/{p.k} holds {v}, acknowledged {p.acked}, "
                          f"sent {p.sent}", flush=True)
                p.acked = max(v, p.acked)  # values go on from 'sent': none is used twice
            acked_total = sum(p.acked for p in pubs)
        for p in pubs:  # the publishers stop; the subscribers drain what is queued
            p.stop = True
        go.clear()
        for p in pubs:
            p.idle.wait(10)
        for sb in subs:  # the backlog of the offline spells can be long: take it all
            sb.draining = True
        def complete(sb):  # every acknowledged value of every publisher received
            return all(p.acked_set <= set(sb.got.get(p.k, ())) for p in pubs)

        # until each has everything, or nothing arrives for 30 s (a broker writing large
        # snapshots on a busy disk holds gated QoS 2 deliveries for seconds), at most 10 min
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if all(complete(sb) for sb in subs):
                break
            if all(time.monotonic() - sb.last_rx > 30.0 for sb in subs):
                break
            time.sleep(1.0)
        missing = dups = delivered = 0
        for sb in subs:
            for p in pubs:
                vals = sb.got.get(p.k, [])
                delivered += len(vals)
                have = set(vals)
                gone = [v for v in range(1, p.acked + 1) if v not in have and v in p.acked_set]
                if gone:
                    missing += len(gone)
                    print(f"subscriber {sb.j}: crash/{p.k} never got {len(gone)} acknowledged "
                          f"values, first {gone[:5]}", flush=True)
                if p.qos == 2 and len(vals) != len(have):
                    dups += len(vals) - len(have)
                    print(f"subscriber {sb.j}: crash/{p.k} (QoS 2) got {len(vals) - len(have)} "
                          f"values twice", flush=True)
    finally:
        for p in pubs:
            p.stop = True
        for sb in subs:
            sb.stop = True
        go.set()
        proc.kill()
        proc.wait(10)
        log.close()
    print(f"{a.kills} kills in {time.monotonic() - t0:.0f} s: {acked_total} retained QoS 1/2 "
          f"values acknowledged, {checked} topic checks after restarts, {lost} lost; "
          f"{a.subscribers} persistent subscribers got {delivered} messages: "
          f"{missing} acknowledged ones missing, {dups} QoS 2 duplicates, "
          f"{sum(sb.lost_session for sb in subs)} sessions lost")
    if lost or missing or dups or any(sb.lost_session for sb in subs):
        sys.exit(1)
    import shutil
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
