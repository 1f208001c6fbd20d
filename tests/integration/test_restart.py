# SPDX-License-Identifier: MIT
"""Stop and start the broker again at once on the same port (systemctl restart, test suites
that start one broker per test): the port must be free as soon as the process has exited."""
import errno
import signal
import socket
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import HOST, Broker, Raw, check_stderr_text

CYCLES = 50


def bind_error(port):
    """None when a socket can bind the port now (with SO_REUSEADDR, as the broker does), else
    the error: a socket still listening there (the broker's, outliving its process) makes it
    EADDRINUSE."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        s.listen(1)
        return None
    except OSError as e:
        return e
    finally:
        s.close()


def start(tmp_path, port, i):
    b = Broker(tmp_path, port=port, name=f"cycle{i}")
    try:
        b.start()
    except RuntimeError as e:
        raise AssertionError(f"start {i} on port {port} failed: {e}") from None
    assert b.alive(), f"start {i}: the broker exited:\n{b.stderr()}"
    return b


class Paho:
    """A paho client whose network loop the test drives (no thread: paho's thread takes a
    second to stop once the broker has gone, as it waits to reconnect)."""

    def __init__(self, port, client_id, timeout=5.0):
        self.connack = None
        self.acked = set()
        self.c = mqtt.Client(client_id=client_id, clean_session=True)
        self.c.on_connect = lambda c, u, flags, rc: setattr(self, "connack", rc)
        self.c.on_publish = lambda c, u, mid: self.acked.add(mid)
        self.c.connect(HOST, port, 60)
        self.loop_until(lambda: self.connack is not None, timeout, "no CONNACK")
        assert self.connack == 0, f"CONNACK rc {self.connack}"

    def loop_until(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, what
            rc = self.c.loop(0.01)
            assert rc == mqtt.MQTT_ERR_SUCCESS, f"{what}: paho loop rc {rc}"

    def publish(self, topic, payload, wait=True):
        info = self.c.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish rc {info.rc}"
        if wait:
            self.loop_until(lambda: info.mid in self.acked, 5.0, "no PUBACK")

    def lost(self, timeout=2.0):
        """True once paho sees the connection ended by the broker."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.c.loop(0.01) != mqtt.MQTT_ERR_SUCCESS:
                return True
        return False


def load(port, i):
    """A paho client connected with a QoS 1 PUBLISH of its own not yet acknowledged, and a raw
    subscriber holding a QoS 1 delivery it does not acknowledge."""
    sub = Raw(port)
    sub.connect(f"restart-sub-{i}", clean=False)
    assert sub.subscribe([("restart/t", 1)]) == [1]
    pub = Paho(port, f"restart-pub-{i}")
    pub.publish("restart/t", b"first")
    p = sub.recv_publish()
    assert (p.topic, p.payload, p.qos) == ("restart/t", b"first", 1)
    pub.publish("restart/t", b"second", wait=False)  # in flight at the stop
    return sub, pub


def closed_now(raw):
    """True when the broker has already ended this connection (EOF or reset readable now)."""
    raw.s.setblocking(False)
    try:
        while True:
            if raw.s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def stop_and_check(b, sub, pub, sig, i):
    rc = b.stop(sig)
    err = b.stderr()
    check_stderr_text(err)
    assert rc == 0, f"cycle {i}: exit code {rc}:\n{err[-2000:]}"
    e = bind_error(b.port)  # at once: what a restart does
    assert e is None, f"cycle {i}: port {b.port} still taken after the broker exited: {e}"
    assert closed_now(sub), f"cycle {i}: a client connection outlived the broker"
    sub.close()
    assert pub.lost(), f"cycle {i}: the paho client's connection outlived the broker"


@pytest.mark.timeout(60)
def test_fifty_restarts_on_one_port(tmp_path, free_port):
    t0 = time.monotonic()
    for i in range(CYCLES):
        b = start(tmp_path, free_port, i)
        try:
            sub, pub = load(free_port, i)
            stop_and_check(b, sub, pub, signal.SIGTERM, i)
        finally:
            b.kill()
    assert time.monotonic() - t0 < 55


def test_restart_after_sigint(tmp_path, free_port):
    for i in range(2):
        b = start(tmp_path, free_port, i)
        try:
            sub, pub = load(free_port, i)
            stop_and_check(b, sub, pub, signal.SIGINT, i)
        finally:
            b.kill()


def test_restart_after_kill_9(tmp_path, free_port):
    """After SIGKILL no code of the broker runs: the kernel closes its descriptors at once, but
    the io_uring requests (the armed accept holds the listening socket) go with the rings'
    asynchronous teardown, some milliseconds later. The port must be free within a bound and
    the next start must then succeed."""
    b = start(tmp_path, free_port, 0)
    try:
        sub, pub = load(free_port, 0)
        assert b.stop(signal.SIGKILL) == -signal.SIGKILL
        deadline = time.monotonic() + 2.0
        while (e := bind_error(free_port)) is not None:
            assert e.errno == errno.EADDRINUSE, e
            assert time.monotonic() < deadline, f"port {free_port} still taken 2 s after kill -9"
            time.sleep(0.005)
        sub.close()
        assert pub.lost()
    finally:
        b.kill()
    b = start(tmp_path, free_port, 1)
    try:
        sub, pub = load(free_port, 1)
        stop_and_check(b, sub, pub, signal.SIGTERM, 1)
    finally:
        b.kill()
