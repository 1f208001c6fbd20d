#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Connection storms: N connections opened as fast as one client process can, every CONNECT
answered, then all dropped at once; three times. Half of them ask for keep-alive 1 s and go
silent, so the broker's keep-alive path closes thousands at once.

  tests/stress/storm.py --broker build/broker/starling [--conns 19000] [--rounds 3]
  tests/stress/storm.py --broker /usr/sbin/mosquitto     (the same storm against mosquitto)

Fails (exit 1) when the broker dies, a CONNECT is not answered with a CONNACK (or a refusal)
within the round's time, or the broker's RSS once a storm has passed is more than 10 % above
its RSS after the first one. Prints connects per second per round. The open-file limit must
allow N + a few descriptors to both this process and the broker (ulimit -n)."""
import argparse
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def connect_pkt(cid, keepalive):
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big") + len(cid).to_bytes(2, "big")
    body += cid
    return bytes([0x10, len(body)]) + body


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def nfds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def storm(port, n, rnd_tag, timeout):
    """Opens n connections, sends CONNECT on each, waits for every answer; returns
    (answered, refused, seconds, sockets)."""
    sel = selectors.DefaultSelector()
    socks, answered, refused = [], 0, 0
    t0 = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, port))
        keep = 1 if i % 2 else 60
        sel.register(s, selectors.EVENT_WRITE, (i, keep))
        socks.append(s)
    pending = n
    deadline = t0 + timeout
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(0.5):
            s, (i, keep) = key.fileobj, key.data
            if ev & selectors.EVENT_WRITE:
                try:
                    s.send(connect_pkt(f"storm-{rnd_tag}-{i}".encode(), keep))
                except OSError:
                    refused += 1
                    pending -= 1
                    sel.unregister(s)
                    continue
                sel.modify(s, selectors.EVENT_READ, key.data)
                continue
            try:
                d = s.recv(4)
            except OSError:
                d = b""
            if len(d) == 4 and d[0] == 0x20 and d[3] == 0:
                answered += 1
            else:
                refused += 1  # a CONNACK refusal, or the socket closed (max_connections)
            pending -= 1
            sel.unregister(s)
    took = time.monotonic() - t0
    sel.close()
    return answered, refused, took, socks


def wait_drained(pid, base_fds, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nfds(pid) <= base_fds + 2:
            return True
        time.sleep(0.2)
    return False


def start(args, tmp):
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    conf = os.path.join(tmp, "storm.conf")
    lines = [f"listener {port} {HOST}", "allow_anonymous true", "max_connections -1"]
    if not os.path.basename(args.broker).startswith("mosquitto"):
        lines.append(f"workers {args.workers}")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    err = open(os.path.join(tmp, "stderr"), "wb")
    proc = subprocess.Popen([args.broker, "-c", conf], stdout=err, stderr=err,
                            stdin=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection((HOST, port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.3)
    return proc, port, err.name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--conns", type=int, default=19000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rss-growth", type=float, default=0.10)
    ap.add_argument("--rss-slack-kib", type=int, default=0,
                    help="allowed on top of --rss-growth (small storms: allocator warm-up)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    proc, port, err_path = start(args, tempfile.mkdtemp(prefix="storm-"))
    base_fds, errors, rss = nfds(proc.pid), [], []
    for r in range(args.rounds):
        ok, refused, took, socks = storm(port, args.conns, r, timeout=60)
        if proc.poll() is not None:
            errors.append(f"round {r + 1}: the broker exited ({proc.returncode})")
            break
        if ok + refused != args.conns:
            errors.append(f"round {r + 1}: {args.conns - ok - refused} CONNECTs unanswered")
        time.sleep(1.6)  # the keep-alive 1 s half is closed by the broker (1.5 x keep-alive)
        for s in socks:
            s.close()
        if not wait_drained(proc.pid, base_fds):
            errors.append(f"round {r + 1}: the broker still holds {nfds(proc.pid)} fds")
        rss.append(rss_kib(proc.pid))
        print(f"round {r + 1}: {ok} accepted, {refused} refused in {took:.2f} s = "
              f"{args.conns / took:.0f} connects/s; RSS after {rss[-1]} KiB", flush=True)
    if len(rss) == args.rounds and rss[-1] > rss[0] * (1 + args.rss_growth) + args.rss_slack_kib:
        errors.append(f"RSS after the last storm {rss[-1]} KiB > {rss[0]} KiB + "
                      f"{args.rss_growth:.0%} + {args.rss_slack_kib} KiB")
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    text = open(err_path, errors="replace").read()
    if "Sanitizer" in text or "runtime error" in text:
        errors.append(f"sanitizer report:\n{text[-3000:]}")
    for e in errors:
        print("FAIL:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
