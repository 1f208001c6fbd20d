#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Stalled consumers at full size: N subscribers that never read on a topic a publisher
floods, and the throughput of a healthy QoS 1 pair with them against without them.

  tests/stress/slow_consumers.py --broker build/broker/starling [--stalled 1000]

Prints the healthy pair's rate alone and under the flood, the broker's RSS (idle, peak, and
the bound of tests/integration/test_slow_consumers.py) and the drops counted in $SYS. Fails
(exit 1) when the pair's rate under the flood is below 80 % of its rate alone, RSS passes the
bound, or the pair loses a message. Needs an open-file limit above N.

The flood runs in a process of its own (in the pair's process it took the interpreter's lock
from the pair's threads: that measured Python, not the broker), and the pair alternates
--rounds times between alone and flooded; the medians are compared, as single runs on a
shared 2-core machine ranged from 58 % to 100 %."""
import argparse
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import statistics

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
S, Q, HWM, PER_WORKER = 2048, 100, 256 * 1024, 512 * 8 * 1024 + 16384 * 64


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def connect_pkt(cid):
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def stalled(port, i):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((HOST, port))
    s.sendall(connect_pkt(f"stalled-{i}".encode()))
    s.recv(4)
    s.sendall(b"\x82\x0c\x00\x01\x00\x07flood/#\x00")
    s.recv(5)
    return s


def flood(port, stop):
    """Runs in a process of its own until 'stop' (a multiprocessing event) is set."""
    s = socket.create_connection((HOST, port))
    s.sendall(connect_pkt(b"flooder"))
    s.recv(4)
    topic = b"flood/x"
    body = len(topic).to_bytes(2, "big") + topic + b"f" * S
    rem = len(body)
    burst = (bytes([0x30, 0x80 | (rem & 0x7F), rem >> 7]) + body) * 50
    while not stop.is_set():
        s.sendall(burst)
        time.sleep(0.01)
    s.close()


def pair_rate(port, n, tag):
    got, done = set(), threading.Event()
    sub = mqtt.Client(client_id=f"pair-sub-{tag}")
    sub.on_message = lambda c, u, m: (got.add(int(m.payload)), len(got) == n and done.set())
    sub.connect(HOST, port, 60)
    sub.subscribe("pair/t", 1)
    sub.loop_start()
    time.sleep(0.5)
    pub = mqtt.Client(client_id=f"pair-pub-{tag}")
    pub.max_inflight_messages_set(100)
    pub.connect(HOST, port, 60)
    pub.loop_start()
    t0 = time.monotonic()
    for i in range(n):
        # at most 50 messages between the pair: the pair's own queue (max_queued_messages)
        # never fills, so what is measured is the broker's service, not its drop policy
        deadline = time.monotonic() + 30
        while i - len(got) > 50 and time.monotonic() < deadline:
            time.sleep(0.0002)
        pub.publish("pair/t", str(i), 1)
    ok = done.wait(120)
    took = time.monotonic() - t0
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return (n / took if ok else 0.0), len(got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--stalled", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="slow-")
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    conf = os.path.join(tmp, "b.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} {HOST}\nallow_anonymous true\nworkers {args.workers}\n"
                f"max_queued_messages {Q}\nsys_interval 1\nmax_connections -1\n")
    proc = subprocess.Popen([args.broker, "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        return run(args, port, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def run(args, port, proc):
    time.sleep(0.5)
    errors = []
    socks = [stalled(port, i) for i in range(args.stalled)]
    time.sleep(0.5)
    idle = rss_kib(proc.pid)
    drops = []
    mon = mqtt.Client(client_id="sys-mon")
    mon.on_message = lambda c, u, m: drops.append(int(m.payload))
    mon.connect(HOST, port, 60)
    mon.subscribe("$SYS/broker/publish/messages/dropped")
    mon.loop_start()
    mp = multiprocessing.get_context("spawn")
    alone, loaded, peak = [], [], idle
    for r in range(args.rounds):
        rate, n = pair_rate(port, args.messages, f"alone-{r}")
        alone.append(rate)
        if n != args.messages:
            errors.append(f"round {r}: the pair alone lost messages ({n} of {args.messages})")
        stop = mp.Event()
        fl = mp.Process(target=flood, args=(port, stop))
        fl.start()
        time.sleep(3)  # the stalled subscribers' buffers and queues fill
        rate, n = pair_rate(port, args.messages, f"loaded-{r}")
        loaded.append(rate)
        if n != args.messages:
            errors.append(f"round {r}: the pair under the flood lost messages "
                          f"({n} of {args.messages})")
        peak = max(peak, rss_kib(proc.pid))
        stop.set()
        fl.join(10)
        if fl.is_alive():  # every run stops what it started
            fl.terminate()
            fl.join(5)
        time.sleep(1.5)
        print(f"round {r}: alone {alone[-1]:.0f} msg/s, flooded {loaded[-1]:.0f} msg/s", flush=True)
    a, f = statistics.median(alone), statistics.median(loaded)
    bound = idle + (args.workers * PER_WORKER + args.stalled * (2 * (HWM + S) + Q * (S + 64))) // 1024
    print(f"healthy pair alone {a:.0f} msg/s, with {args.stalled} stalled subscribers "
          f"flooded {f:.0f} msg/s ({f / a if a else 0:.0%}; medians of {args.rounds}); RSS idle "
          f"{idle} KiB, peak {peak} KiB, bound {bound} KiB; dropped counted "
          f"{drops[-1] if drops else 0}")
    if a == 0 or f < 0.8 * a:
        errors.append("the healthy pair ran below 80 % of its rate alone")
    if peak > bound:
        errors.append("RSS over the bound")
    mon.loop_stop()
    for s in socks:
        s.close()
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
