# SPDX-License-Identifier: MIT
"""metrics_listener: Prometheus text exposition of the $SYS figures."""
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import WORKERS, IS_MOSQUITTO, _free_port

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's own listener")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+]+)$')


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def parse(text):
    """-> ({name: {labels: value}}, {name: type}); checks HELP/TYPE precede samples."""
    samples, types, helped = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge"), line
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            assert name in types and name in helped, f"{name} without TYPE/HELP"
            samples.setdefault(name, {})[m.group(2) or ""] = float(m.group(3))
    return samples, types


def metrics_broker(broker):
    mport = _free_port()
    b = broker(f"metrics_listener {mport} 127.0.0.1")
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", mport), timeout=0.5).close()
            return b, mport
        except OSError:
            assert time.monotonic() < deadline, "metrics listener never came up"
            time.sleep(0.05)


def test_metrics_follow_traffic_with_per_worker_labels(broker, client):
    b, mport = metrics_broker(broker)
    status, ctype, text = scrape(mport)
    assert status == 200
    assert ctype.startswith("text/plain; version=0.0.4")
    before, types = parse(text)
    for name, kind in types.items():
        assert name.endswith("_total") == (kind == "counter"), name
    assert before["starling_build_info"]
    workers = before["starling_worker_connections"]
    assert sorted(workers) == sorted(f'{{worker="{i}"}}' for i in range(WORKERS))

    sub = client(b.port).connect()
    sub.subscribe("m/#", qos=1)
    pub = client(b.port).connect()
    for i in range(20):
        pub.publish("m/x", b"%d" % i, qos=1)
    sub.wait_messages(20)

    deadline = time.monotonic() + 5  # the workers refresh their counters once a second
    while True:
        after, _ = parse(scrape(mport)[2])
        rx = after["starling_publish_messages_received_total"][""]
        if rx >= before["starling_publish_messages_received_total"][""] + 20:
            break
        assert time.monotonic() < deadline, f"publish counter stuck at {rx}"
        time.sleep(0.2)
    assert after["starling_clients_connected"][""] >= 2
    assert after["starling_subscriptions"][""] >= 1
    assert after["starling_publish_messages_sent_total"][""] >= 20
    assert after["starling_uptime_seconds"][""] > 0


def test_other_paths_and_methods_are_refused(broker):
    b, mport = metrics_broker(broker)
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(mport, "/")
    assert e.value.code == 404
    req = urllib.request.Request(f"http://127.0.0.1:{mport}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 405
    # a client that sends nothing does not block the next scrape for more than a moment
    idle = socket.create_connection(("127.0.0.1", mport), timeout=5)
    try:
        t0 = time.monotonic()
        assert scrape(mport)[0] == 200
        assert time.monotonic() - t0 < 4
    finally:
        idle.close()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) absent")
def test_promtool_accepts_the_exposition(broker):
    b, mport = metrics_broker(broker)
    text = scrape(mport)[2]
    res = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=20)
    assert res.returncode == 0, res.stdout + res.stderr


def test_metrics_listener_port_in_use_is_a_startup_error(tmp_path):
    from conftest import run, BROKER
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        conf = tmp_path / "m.conf"
        conf.write_text(f"listener {_free_port()} 127.0.0.1\nmetrics_listener {port} 127.0.0.1\n")
        res = run([BROKER, "-c", str(conf)], timeout=10)
        assert res.returncode != 0
        assert f"metrics_listener 127.0.0.1:{port}: Address already in use" in res.stderr
    finally:
        busy.close()
