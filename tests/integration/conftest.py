# SPDX-License-Identifier: MIT
"""Black-box integration fixtures for the Starling broker.

Everything here is bounded in time: sockets have timeouts, paho waits use threading.Event
with timeouts, subprocesses are waited with timeouts, and every test runs under a
SIGALRM watchdog (pytest-timeout is not installed). Only 127.0.0.1 is ever used.

Environment:
  MQ_BROKER        the broker binary (Starling; or /usr/sbin/mosquitto to check what the tests
                   expect against the reference broker: the xfail tests then XPASS)
  MQ_WORKERS       'workers N' in every generated configuration (Starling only)
  MQ_TEST_TIMEOUT  the per-test watchdog in seconds (default 30)
  MQ_SLOW=1        also run the tests that take 10 s or more
  MQ_STRESS=1      also run flaky reproductions of known problems
"""
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import paho.mqtt.client as mqtt

HOST = "127.0.0.1"
BROKER = os.environ.get("MQ_BROKER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build-it", "broker", "starling")
WORKERS = int(os.environ.get("MQ_WORKERS", "1"))
# MQ_BROKER may name mosquitto itself, to check the tests against the reference broker
IS_MOSQUITTO = os.path.basename(BROKER).startswith("mosquitto")
# Tests that wait seconds on timers and whose subject does not depend on the number of
# workers run in the test command's runs with several workers (plain, ASan, ThreadSanitizer),
# not again in the one-worker run: the command's 30-minute budget on 2 cores.
several_workers = pytest.mark.skipif(
    not IS_MOSQUITTO and WORKERS < 2,
    reason="worker-count independent and seconds long: runs with several workers")
TEST_TIMEOUT = float(os.environ.get("MQ_TEST_TIMEOUT", "30"))
SANITIZER_MARKS = ("AddressSanitizer", "runtime error", "ThreadSanitizer",
                   "LeakSanitizer", "UndefinedBehaviorSanitizer")


# --- per-test watchdog ------------------------------------------------------------------------

class TestTimeout(Exception):
    pass


@pytest.fixture(autouse=True)
def _watchdog(request):
    """Fails a test that runs longer than TEST_TIMEOUT seconds (covers fixture teardown)."""
    limit = TEST_TIMEOUT
    m = request.node.get_closest_marker("timeout")
    if m and m.args:
        limit = float(m.args[0])

    def on_alarm(signum, frame):
        raise TestTimeout(f"test exceeded {limit} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-test watchdog limit")


# --- ports ------------------------------------------------------------------------------------

_handed_out = set()


def _free_port():
    """A port nothing listens on, never one this run has handed out before: the kernel may
    offer the same ephemeral port twice when nothing bound it in between (a test that asks
    for a websockets port and then starts the broker on a port of its own got the same one
    twice and the broker refused its "duplicate listener")."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port this run has not handed out already")


@pytest.fixture
def free_port():
    return _free_port()


def listening_ports():
    """The TCP ports something listens on at 127.0.0.1 or any address (/proc/net/tcp{,6})."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A":  # LISTEN
                        ports.add(int(local.rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def listen_sockets(port):
    """(file, local address) of every LISTEN socket on 'port': file "tcp" (IPv4) or "tcp6",
    the address in hex as /proc/net/tcp* write it ("0100007F" is 127.0.0.1)."""
    found = set()
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/net/{name}") as f:
                next(f)
                for line in f:
                    local, state = line.split()[1], line.split()[3]
                    addr, p = local.rsplit(":", 1)
                    if state == "0A" and int(p, 16) == port:
                        found.add((name, addr))
        except OSError:
            pass
    return found


def host_has_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_port(port, timeout=5.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited early with code {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def port_closed(port, timeout=5.0):
    """True once nothing accepts on the port any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                pass
        except OSError:
            return True
        time.sleep(0.05)
    return False


# --- the broker -------------------------------------------------------------------------------

def check_stderr_text(text):
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report in broker stderr:\n{text[-4000:]}"


class Broker:
    def __init__(self, tmp_path, extra="", port=None, workers=None, args=None, name="broker",
                 env=None):
        self.port = port or _free_port()
        self.dir = tmp_path
        self.conf = tmp_path / f"{name}.conf"
        self.err_path = tmp_path / f"{name}.stderr"
        lines = [f"listener {self.port} {HOST}", "allow_anonymous true"]
        if not IS_MOSQUITTO:
            lines.append(f"workers {workers if workers is not None else WORKERS}")
        if isinstance(extra, (list, tuple)):
            lines += list(extra)
        elif extra:
            lines += extra.strip("\n").split("\n")
        self.conf.write_text("\n".join(lines) + "\n")
        self.args = args if args is not None else []
        self.env = env  # added to the environment the broker starts in
        self.proc = None
        self.stopped = False

    def start(self):
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen([BROKER, "-c", str(self.conf)] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err,
                                     env={**os.environ, **self.env} if self.env else None)
        if not wait_port(self.port, 5.0, self.proc):
            self.kill()
            raise RuntimeError(f"broker did not listen on {self.port}:\n{self.stderr()}")
        # the other TCP listeners of the configuration: they are opened one after the other,
        # so the first one accepting says nothing of the next. Looked up in the kernel's
        # socket table, not connected to: a probe connection would count against a
        # listener's max_connections until the broker saw it go
        others = {int(m.group(1)) for m in re.finditer(
            rf"^listener (\d+) {re.escape(HOST)}$", self.conf.read_text(), re.M)} - {self.port}
        deadline = time.monotonic() + 5.0
        while others - listening_ports() and time.monotonic() < deadline:
            time.sleep(0.02)
        if others - listening_ports():
            self.kill()
            raise RuntimeError(f"broker did not listen on {others}:\n{self.stderr()}")
        return self

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_log(self, needle, timeout=5.0):
        """True once 'needle' is in the broker's output: lines go through a logging thread,
        so they appear shortly after the event, not at once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.stderr():
                return True
            time.sleep(0.02)
        return needle in self.stderr()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the broker, waits (bounded) and returns its exit code (killing if needed)."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"broker did not exit within {timeout} s of signal {sig}")
            return rc
        finally:
            self._err.close()

    def check_clean_exit(self, sig=signal.SIGTERM):
        rc = self.stop(sig)
        err = self.stderr()
        check_stderr_text(err)
        assert rc == 0, f"broker exit code {rc}; stderr:\n{err[-4000:]}"


@pytest.fixture
def broker(tmp_path):
    """Factory: broker(extra="opt value\\n...", workers=None) starts a broker, returns it.

    On teardown each broker gets SIGTERM; it must exit 0 with no sanitizer reports."""
    started = []

    def make(extra="", workers=None, name=None):
        b = Broker(tmp_path, extra, workers=workers, name=name or f"broker{len(started)}")
        started.append(b)
        return b.start()

    yield make
    errors = []
    for b in started:
        try:
            b.check_clean_exit()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


# --- paho clients -----------------------------------------------------------------------------

class Client:
    """A paho-mqtt 1.6 client on its own network thread with bounded waits."""

    def __init__(self, port, client_id="", clean_session=True, protocol=mqtt.MQTTv311):
        self.port = port
        self.c = mqtt.Client(client_id=client_id, clean_session=clean_session,
                             protocol=protocol)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.flags = None
        self.lock = threading.Condition()
        self.messages = []
        self.subacks = {}
        self.unsubacks = set()
        self.published = set()
        self.started = False

    # callbacks
    def _on_connect(self, c, userdata, flags, rc):
        self.flags = flags
        self.connack = rc
        self.connected.set()

    def _on_disconnect(self, c, userdata, rc):
        self.disconnected.set()

    def _on_message(self, c, userdata, msg):
        with self.lock:
            self.messages.append(msg)
            self.lock.notify_all()

    def _on_subscribe(self, c, userdata, mid, granted):
        with self.lock:
            self.subacks[mid] = granted
            self.lock.notify_all()

    def _on_unsubscribe(self, c, userdata, mid):
        with self.lock:
            self.unsubacks.add(mid)
            self.lock.notify_all()

    def _on_publish(self, c, userdata, mid):
        with self.lock:
            self.published.add(mid)
            self.lock.notify_all()

    def _wait(self, pred, timeout):
        with self.lock:
            return self.lock.wait_for(pred, timeout)

    # operations
    def will_set(self, topic, payload=None, qos=0, retain=False):
        self.c.will_set(topic, payload, qos, retain)
        return self

    def connect(self, keepalive=60, timeout=5.0, expect_rc=0):
        self.c.connect(HOST, self.port, keepalive)
        self.c.loop_start()
        self.started = True
        assert self.connected.wait(timeout), "no CONNACK"
        if expect_rc is not None:
            assert self.connack == expect_rc, f"CONNACK rc {self.connack}"
        return self

    @property
    def session_present(self):
        return self.flags.get("session present") if self.flags else None

    def subscribe(self, topic, qos=0, timeout=5.0):
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.subacks, timeout), "no SUBACK"
        return self.subacks[mid]

    def unsubscribe(self, topic, timeout=5.0):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        assert self._wait(lambda: mid in self.unsubacks, timeout), "no UNSUBACK"

    def publish(self, topic, payload=b"", qos=0, retain=False, timeout=5.0):
        info = self.c.publish(topic, payload, qos, retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish rc {info.rc}"
        assert self._wait(lambda: info.mid in self.published, timeout), "publish not completed"
        return info.mid

    def wait_messages(self, n, timeout=5.0):
        """Waits until at least n messages arrived; returns a copy of all of them."""
        ok = self._wait(lambda: len(self.messages) >= n, timeout)
        with self.lock:
            got = list(self.messages)
        assert ok, f"expected {n} messages, got {len(got)}: {[m.topic for m in got]}"
        return got

    def no_messages(self, quiet=0.5):
        """Asserts nothing (more) arrives during 'quiet' seconds; returns the message list."""
        with self.lock:
            before = len(self.messages)
        time.sleep(quiet)
        with self.lock:
            got = list(self.messages)
        assert len(got) == before, f"unexpected messages: {[(m.topic, m.payload) for m in got[before:]]}"
        return got

    def settle(self, quiet=0.5, timeout=10.0):
        """Waits until no message arrived for 'quiet' seconds (bounded); returns them all."""
        deadline = time.monotonic() + timeout
        with self.lock:
            n = len(self.messages)
        while time.monotonic() < deadline:
            time.sleep(quiet)
            with self.lock:
                if len(self.messages) == n:
                    return list(self.messages)
                n = len(self.messages)
        raise AssertionError("messages kept arriving")

    def take(self):
        with self.lock:
            got, self.messages = self.messages, []
        return got

    def disconnect(self, timeout=5.0):
        if not self.started:
            return
        self.c.disconnect()
        self.disconnected.wait(timeout)
        self.c.loop_stop()
        self.started = False

    def close(self):
        if self.started:
            try:
                self.c.disconnect()
                self.disconnected.wait(2)
            finally:
                self.c.loop_stop()
                self.started = False


@pytest.fixture
def client():
    """Factory: client(port, client_id="", clean_session=True, ...) -> Client (not connected)."""
    made = []

    def make(port, client_id="", clean_session=True, protocol=mqtt.MQTTv311):
        c = Client(port, client_id, clean_session, protocol)
        made.append(c)
        return c

    yield make

    def close(c):
        try:
            c.close()
        except Exception:
            pass
    # at once: a client whose broker is gone waits in paho's reconnect sleep, which its
    # loop_stop() ends only at the next second's check
    closers = [threading.Thread(target=close, args=(c,)) for c in made]
    for t in closers:
        t.start()
    for t in closers:
        t.join()


# --- raw MQTT bytes ---------------------------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
PINGREQ_PKT = b"\xc0\x00"
PINGRESP_PKT = b"\xd0\x00"
DISCONNECT_PKT = b"\xe0\x00"


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s16(data):
    if isinstance(data, str):
        data = data.encode()
    return struct.pack(">H", len(data)) + data


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect_pkt(client_id="", clean=True, keepalive=60, will=None, proto=4, name=None,
                username=None, password=None):
    """will = (topic, payload, qos, retain)"""
    if name is None:
        name = "MQTT" if proto == 4 else "MQIsdp"
    flags = 0x02 if clean else 0
    payload = s16(client_id)
    if will is not None:
        topic, wpayload, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += s16(topic) + s16(wpayload)
    if username is not None:
        flags |= 0x80
        payload += s16(username)
    if password is not None:
        flags |= 0x40
        payload += s16(password)
    body = s16(name) + bytes([proto, flags]) + struct.pack(">H", keepalive) + payload
    return packet(0x10, body)


def publish_pkt(topic, payload=b"", qos=0, retain=False, dup=False, pid=None):
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = s16(topic)
    if qos:
        body += struct.pack(">H", pid if pid is not None else 1)
    return packet(first, body + payload)


def subscribe_pkt(pid, filters):
    """filters: [(filter, qos)]"""
    body = struct.pack(">H", pid) + b"".join(s16(f) + bytes([q]) for f, q in filters)
    return packet(0x82, body)


def unsubscribe_pkt(pid, filters):
    body = struct.pack(">H", pid) + b"".join(s16(f) for f in filters)
    return packet(0xA2, body)


def ack_pkt(ptype, pid):
    return bytes([ptype << 4 | (0x02 if ptype == PUBREL else 0), 2]) + struct.pack(">H", pid)


def connack_bytes(rc=0, sp=False):
    return bytes([0x20, 0x02, 1 if sp else 0, rc])


class Pub:
    """A decoded PUBLISH."""

    def __init__(self, first, body):
        self.first = first
        self.dup = bool(first & 0x08)
        self.qos = (first >> 1) & 3
        self.retain = bool(first & 1)
        tl = struct.unpack(">H", body[:2])[0]
        self.topic = body[2:2 + tl].decode()
        rest = body[2 + tl:]
        self.pid = None
        if self.qos:
            self.pid = struct.unpack(">H", rest[:2])[0]
            rest = rest[2:]
        self.payload = rest

    def __repr__(self):
        return (f"Pub({self.topic!r}, {self.payload!r}, qos={self.qos}, retain={self.retain}, "
                f"dup={self.dup}, pid={self.pid})")


class Closed(Exception):
    pass


class Raw:
    """A raw TCP MQTT connection for exact bytes. All reads have deadlines."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection((HOST, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.s.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                raise Closed(f"connection closed with {self.buf!r} buffered")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"wanted {n} bytes, have {self.buf!r}")
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                raise TimeoutError(f"wanted {n} bytes, have {self.buf!r}")
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.eof = True
            self.buf += d

    def recv_exact(self, n, timeout=5.0):
        self._fill(n, time.monotonic() + timeout)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_packet(self, timeout=5.0):
        """Returns (first_byte, body, raw_bytes)."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        length, mult, i = 0, 1, 1
        while True:
            self._fill(i + 1, deadline)
            b = self.buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        self._fill(i + length, deadline)
        raw, self.buf = self.buf[:i + length], self.buf[i + length:]
        return raw[0], raw[i:], raw

    def recv_publish(self, timeout=5.0):
        first, body, raw = self.recv_packet(timeout)
        assert first >> 4 == PUBLISH, f"expected PUBLISH, got {raw!r}"
        return Pub(first, body)

    def expect(self, data, timeout=5.0):
        got = self.recv_exact(len(data), timeout)
        assert got == data, f"expected {data!r}, got {got!r}"

    def connect(self, client_id="raw", clean=True, keepalive=60, will=None, proto=4,
                expect_rc=0, **kw):
        self.send(connect_pkt(client_id, clean, keepalive, will, proto, **kw))
        first, body, raw = self.recv_packet()
        assert first == 0x20 and len(body) == 2, f"bad CONNACK {raw!r}"
        if expect_rc is not None:
            assert body[1] == expect_rc, f"CONNACK {raw!r}"
        return body[0], body[1]

    def subscribe(self, filters, pid=1):
        self.send(subscribe_pkt(pid, filters))
        first, body, raw = self.recv_packet()
        assert first == 0x90 and body[:2] == struct.pack(">H", pid), f"bad SUBACK {raw!r}"
        return list(body[2:])

    def wait_closed(self, timeout=3.0):
        """Reads until EOF, keeping what arrives in self.buf (so a test can check that nothing
        came before the close); True on EOF/reset, False on timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.eof = True
            self.buf += d
        return True

    def no_data(self, quiet=0.5):
        """Asserts nothing arrives (and the connection stays open) for 'quiet' seconds."""
        deadline = time.monotonic() + quiet
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                d = b""
            if not d:
                raise Closed("connection closed")
            self.buf += d
        assert self.buf == b"", f"unexpected bytes {self.buf!r}"

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


@pytest.fixture
def raw():
    """Factory: raw(port) -> Raw (TCP connected, nothing sent)."""
    made = []

    def make(port, timeout=5.0):
        r = Raw(port, timeout)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def roundtrip_ok(port, topic="check/alive", timeout=5.0):
    """A fresh subscriber and publisher can still exchange a message through the broker."""
    sub = Raw(port)
    pub = Raw(port)
    try:
        sub.connect("rt-sub-%d" % os.getpid())
        assert sub.subscribe([(topic, 1)]) == [1]
        pub.connect("rt-pub-%d" % os.getpid())
        pub.send(publish_pkt(topic, b"ping", qos=1, pid=3))
        pub.expect(ack_pkt(PUBACK, 3), timeout)
        p = sub.recv_publish(timeout)
        assert (p.topic, p.payload) == (topic, b"ping")
        return True
    finally:
        sub.close()
        pub.close()


def run(cmd, timeout=15.0, **kw):
    """subprocess.run with a timeout and captured text output."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)
