#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Stalled consumers at full size: N subscribers that never read on a topic a publisher
floods, and the throughput of a healthy QoS 1 pair with them against without them.

  tests/stress/slow_consumers.py --broker build/broker/starling [--stalled 1000]

Prints the healthy pair's rate alone and under the flood, the broker's RSS (idle, peak, and
the bound of tests/integration/test_slow_consumers.py) and the drops counted in $SYS. Fails
(exit 1) when the pair's rate under the flood is below 80 % of its rate alone, RSS passes the
bound, or the pair loses a message. Needs an open-file limit above N."""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

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
    s = socket.create_connection((HOST, port))
    s.sendall(connect_pkt(b"flooder"))
    s.recv(4)
    topic = b"flood/x"
    body = len(topic).to_bytes(2, "big") + topic + b"f" * S
    rem = len(body)
    pkt = bytes([0x30, 0x80 | (rem & 0x7F), rem >> 7]) + body
    while not stop.is_set():
        s.sendall(pkt * 50)
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
    pub.loop_stop()
    sub.loop_stop()
    return (n / took if ok else 0.0), len(got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--stalled", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--messages", type=int, default=20000)
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
    alone, n1 = pair_rate(port, args.messages, "alone")
    if alone == 0:
        print(f"FAIL: the healthy pair alone did not finish ({n1} of {args.messages})")
        return 1
    socks = [stalled(port, i) for i in range(args.stalled)]
    time.sleep(0.5)
    idle = rss_kib(proc.pid)
    stop = threading.Event()
    fl = threading.Thread(target=flood, args=(port, stop))
    fl.start()
    time.sleep(3)  # the stalled subscribers' buffers and queues fill
    drops = []
    mon = mqtt.Client(client_id="sys-mon")
    mon.on_message = lambda c, u, m: drops.append(int(m.payload))
    mon.connect(HOST, port, 60)
    mon.subscribe("$SYS/broker/publish/messages/dropped")
    mon.loop_start()
    loaded, n2 = pair_rate(port, args.messages, "loaded")
    peak = rss_kib(proc.pid)
    stop.set()
    fl.join()
    time.sleep(1.5)
    bound = idle + (args.workers * PER_WORKER + args.stalled * (2 * (HWM + S) + Q * (S + 64))) // 1024
    print(f"healthy pair alone {alone:.0f} msg/s, with {args.stalled} stalled subscribers "
          f"flooded {loaded:.0f} msg/s ({loaded / alone:.0%}); RSS idle {idle} KiB, peak "
          f"{peak} KiB, bound {bound} KiB; dropped counted {drops[-1] if drops else 0}")
    if n1 != args.messages or n2 != args.messages:
        errors.append(f"the healthy pair lost messages ({n1}, {n2} of {args.messages})")
    if loaded < 0.8 * alone:
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
