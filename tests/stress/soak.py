#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak: a mixed fleet against a broker for a given time, failing on what an operator fears.

  tests/stress/soak.py --broker build/broker/starling --seconds 60 [--workers 4] [--asan]

Starts the broker on 127.0.0.1 (a free port, its own config in a temporary directory) and runs:
  - healthy pairs: publishers at QoS 1 and 2 with sequence numbers, each to its own topic, and
    a persistent subscriber (clean session false, QoS 2) per topic that also drops and
    resumes its connection now and then: every acknowledged message must arrive (QoS 2
    exactly once, QoS 1 at least once);
  - churn: clients connecting with wills and disconnecting cleanly or by dropping the socket,
    retained publishes and clears, take-overs (two connections fighting over one id);
  - bad clients: garbage, oversize lengths and half packets on raw sockets.
Every 2 s it samples the broker's RSS, open fds and $SYS/broker/clients/connected. It fails
(exit 1) on: the broker dying or a sanitizer report; an error seen by a healthy client (a
refused connect, a lost connection it did not cause, a publish not acknowledged in 10 s); a
lost QoS 1/2 message or a duplicated QoS 2 one; RSS after warm-up (the first third) growing by
more than --rss-growth (default 25 %) + 8 MiB. Prints the samples and a summary line."""
import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
ERRORS = []
LOCK = threading.Lock()


def fail(msg):
    with LOCK:
        ERRORS.append(msg)


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class Pair:
    """One publisher and one persistent subscriber on a topic of their own."""

    def __init__(self, port, i, qos, stop):
        self.port, self.qos, self.stop = port, qos, stop
        self.topic = f"soak/h/{i}"
        self.sub_id, self.pub_id = f"soak-sub-{i}", f"soak-pub-{i}"
        self.acked, self.got, self.dups = set(), set(), 0
        self.lock = threading.Lock()
        self.expect_drop = False
        self.sub = self.client(self.sub_id, clean=False)
        self.sub.on_message = self.on_message
        self.sub.on_connect = self.on_sub_connect
        self.sub.on_disconnect = self.on_sub_disconnect
        self.sub_up = threading.Event()

    def client(self, cid, clean):
        c = mqtt.Client(client_id=cid, clean_session=clean)
        c.max_inflight_messages_set(20)
        return c

    def on_sub_connect(self, c, u, flags, rc):
        if rc != 0:
            fail(f"{self.sub_id}: CONNACK {rc}")
        c.subscribe(self.topic, 2)
        self.sub_up.set()

    def on_sub_disconnect(self, c, u, rc):
        if rc != 0 and not self.expect_drop and not self.stop.is_set():
            fail(f"{self.sub_id}: connection lost (rc {rc})")

    def on_message(self, c, u, msg):
        n = int(msg.payload)
        with self.lock:
            if n in self.got and self.qos == 2:
                self.dups += 1
            self.got.add(n)

    def run(self):
        self.sub.connect(HOST, self.port, 30)
        self.sub.loop_start()
        if not self.sub_up.wait(10):
            fail(f"{self.sub_id}: no CONNACK")
            return
        time.sleep(0.3)  # the SUBACK
        pub = self.client(self.pub_id, clean=True)
        pub.on_disconnect = lambda c, u, rc: rc and not self.stop.is_set() and fail(
            f"{self.pub_id}: connection lost (rc {rc})")
        pub.connect(HOST, self.port, 30)
        pub.loop_start()
        n = 0
        while not self.stop.is_set():
            n += 1
            info = pub.publish(self.topic, str(n), self.qos)
            try:
                info.wait_for_publish(10)
            except (RuntimeError, ValueError) as e:
                fail(f"{self.pub_id}: publish {n}: {e}")
                break
            if not info.is_published():
                fail(f"{self.pub_id}: publish {n} not acknowledged in 10 s")
                break
            self.acked.add(n)
            if n % 400 == 0:  # the subscriber drops its connection; its session keeps the rest
                self.bounce()
            time.sleep(0.002)
        pub.disconnect()
        pub.loop_stop()

    def bounce(self):
        self.expect_drop = True
        self.sub.disconnect()
        self.sub.loop_stop()
        self.sub_up.clear()
        time.sleep(0.05)
        self.expect_drop = False
        self.sub.reconnect()
        self.sub.loop_start()
        if not self.sub_up.wait(10):
            fail(f"{self.sub_id}: no CONNACK on resume")

    def finish(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.acked <= self.got:
                    break
            time.sleep(0.1)
        self.expect_drop = True
        self.sub.disconnect()
        self.sub.loop_stop()
        with self.lock:
            lost = sorted(self.acked - self.got)
        if lost:
            fail(f"{self.topic} (QoS {self.qos}): {len(lost)} acknowledged messages never "
                 f"arrived, first {lost[:5]}")
        if self.dups:
            fail(f"{self.topic}: {self.dups} QoS 2 messages arrived twice")
        return len(self.acked)


def churn(port, stop, seed):
    """Connects, publishes retained and plain messages, sets wills, takes over ids and leaves
    cleanly or by dropping the socket; errors here are expected and ignored.

    Each client's network thread is stopped whatever happens: a client left running (its
    socket already closed by a take-over, so the abrupt drop raised) reconnects by itself
    for ever, and hundreds of them took the ids over hundreds of times a second and starved
    the pairs' threads of the interpreter after six minutes."""
    rnd = random.Random(seed)
    while not stop.is_set():
        cid = f"soak-churn-{rnd.randrange(8)}"  # 8 ids for 2 threads each: take-overs
        c = mqtt.Client(client_id=cid, clean_session=rnd.random() < 0.5)
        if rnd.random() < 0.5:
            c.will_set(f"soak/will/{cid}", b"gone", rnd.randrange(3), rnd.random() < 0.3)
        try:
            c.connect(HOST, port, 5)
        except (OSError, ValueError):
            continue
        c.loop_start()
        try:
            if rnd.random() < 0.2:  # QoS 0: an offline session does not queue the pairs' flow
                c.subscribe("soak/#", 0)
            else:
                c.subscribe(f"soak/r/{rnd.randrange(20)}", rnd.randrange(3))
            for _ in range(rnd.randrange(20)):
                payload = b"" if rnd.random() < 0.1 else b"r" * rnd.randrange(1, 2000)
                c.publish(f"soak/r/{rnd.randrange(20)}", payload, rnd.randrange(3),
                          rnd.random() < 0.3)
            time.sleep(rnd.random() * 0.2)
            if rnd.random() < 0.5:
                c.disconnect()
            else:
                c.socket().shutdown(socket.SHUT_RDWR)  # a failure: the will goes out
        except (OSError, ValueError, AttributeError):
            pass  # (taken over meanwhile: the socket is closed or gone)
        finally:
            c.loop_stop()
            s = c.socket()
            if s is not None:
                s.close()


BAD = [b"\x10\xff\xff\xff\xff\x7f", b"\x30\x05\x00", b"\x82\x00", b"\x10\x0c\x00\x04MQTT\x04",
       bytes(range(256)), b"\xf0\x00"]


def bad_clients(port, stop, seed):
    rnd = random.Random(seed)
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if rnd.random() < 0.5:
                    s.sendall(b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03bad")
                s.sendall(rnd.choice(BAD))
                s.settimeout(1)
                try:
                    s.recv(100)
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.05)


def proc_sample(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


class Sys:
    def __init__(self, port):
        self.connected = "?"
        self.c = mqtt.Client(client_id="soak-sys")
        self.c.on_message = lambda c, u, m: setattr(self, "connected", m.payload.decode())
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("$SYS/broker/clients/connected")
        self.c.connect(HOST, port, 30)
        self.c.loop_start()


# the fleet's threads: the pairs' 8 clients, 2 churn clients, the workers, the sampler, $SYS
MAX_THREADS = 40


def sample_loop(args, proc, port, stop, samples):
    sys_c = Sys(port)
    t0 = time.monotonic()
    while not stop.wait(2.0):
        if proc.poll() is not None:
            fail(f"the broker exited with code {proc.returncode}")
            stop.set()
            break
        rss, fds = proc_sample(proc.pid)
        samples.append((time.monotonic() - t0, rss, fds, sys_c.connected))
        threads = threading.active_count()
        print(f"t={samples[-1][0]:6.1f}s rss={rss} KiB fds={fds} connected={sys_c.connected} "
              f"soak-threads={threads}", flush=True)
        if threads > MAX_THREADS:  # the fleet itself leaks: what follows would not be the broker
            fail(f"the soak's own clients leak: {threads} threads (bound {MAX_THREADS})")
            stop.set()
            break
    sys_c.c.loop_stop()


def check_rss(args, samples):
    warm = [s for s in samples if s[0] >= args.seconds / 3]
    if len(warm) < 2:
        return "too short to judge RSS"
    base = warm[0][1]
    peak = max(s[1] for s in warm)
    bound = base * (1 + args.rss_growth) + 8 * 1024
    if peak > bound:
        fail(f"RSS grew from {base} KiB (warm) to {peak} KiB, bound {bound:.0f} KiB")
    return f"rss warm={base} KiB peak={peak} KiB bound={bound:.0f} KiB"


def start_broker(args, tmp):
    port = free_port()
    conf = os.path.join(tmp, "soak.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} {HOST}\nallow_anonymous true\nworkers {args.workers}\n"
                "max_queued_messages 100000\nsys_interval 1\n")
    err = open(os.path.join(tmp, "broker.stderr"), "wb")
    proc = subprocess.Popen([args.broker, "-c", conf], stdout=err, stderr=err,
                            stdin=subprocess.DEVNULL)
    if not wait_port(port, proc):
        sys.exit(f"soak: the broker did not start:\n{open(err.name).read()}")
    return proc, port, err.name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--rss-growth", type=float, default=0.25)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="soak-")
    proc, port, err_path = start_broker(args, tmp)
    stop, samples = threading.Event(), []
    pairs = [Pair(port, i, 1 + i % 2, stop) for i in range(args.pairs)]
    threads = [threading.Thread(target=p.run) for p in pairs]
    threads += [threading.Thread(target=churn, args=(port, stop, i)) for i in range(2)]
    threads += [threading.Thread(target=bad_clients, args=(port, stop, 99))]
    sampler = threading.Thread(target=sample_loop, args=(args, proc, port, stop, samples))
    for t in threads + [sampler]:
        t.daemon = True
        t.start()
    stop.wait(args.seconds)
    stop.set()
    for t in threads + [sampler]:
        t.join(15)
    sent = sum(p.finish() for p in pairs)
    rss = check_rss(args, samples)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            if proc.wait(15) != 0:
                fail(f"the broker exited with code {proc.returncode} on SIGTERM")
        except subprocess.TimeoutExpired:
            proc.kill()
            fail("the broker did not exit within 15 s of SIGTERM")
    text = open(err_path, errors="replace").read()
    for mark in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
        if mark in text:
            fail(f"sanitizer report:\n{text[-3000:]}")
    print(f"soak: {args.seconds:.0f} s, {sent} QoS 1/2 messages acknowledged and checked, {rss}, "
          f"{len(ERRORS)} failures")
    for e in ERRORS:
        print("FAIL:", e)
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
