# SPDX-License-Identifier: MIT
"""MQTT over WebSockets (protocol websockets), plain HTTP on the same port, the status page.

Clients: paho-mqtt with transport="websockets", MQTT.js in Node (when tests/browser has its
npm packages), and a raw WebSocket client written here that splits frames byte by byte,
fragments messages, pings, and breaks RFC 6455 on purpose."""
import base64
import hashlib
import os
import pathlib
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import pytest

import paho.mqtt.client as mqtt

from conftest import (HOST, IS_MOSQUITTO, Client, Closed, Raw, _free_port, connect_pkt,
                      publish_pkt, subscribe_pkt)
from test_tls import pki  # noqa: F401 (the fixture: a CA and server certificates)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's listener options")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def ws_broker(broker, *extra, ws_extra=(), workers=None):
    """A broker with its plain MQTT listener (b.port) and a websockets one (b.ws_port)."""
    ws_port = _free_port()
    b = broker([*extra, f"listener {ws_port} {HOST}", "protocol websockets", *ws_extra],
               workers=workers)
    b.ws_port = ws_port
    return b


def http(port, request, timeout=5.0):
    """Sends raw request bytes; returns (status, headers dict, body) of the answer, which
    must end with the connection (Connection: close)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            data += d
        else:
            raise TimeoutError(f"connection not closed after {data[:200]!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    return status, headers, body


def get(port, path, method="GET", extra=""):
    return http(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())


def frame(op, payload, fin=True, mask=True, rsv=0):
    head = bytes([(0x80 if fin else 0) | rsv | op])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Ws:
    """A raw WebSocket client: the handshake, frames in and out, MQTT packets over them."""

    def __init__(self, port, path="/mqtt", protocols="mqtt", headers="", tls=None):
        self.raw = Raw(port)
        if tls:  # wss://: an ssl.SSLContext
            self.raw.s = tls.wrap_socket(self.raw.s, server_hostname=HOST)
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n")
        if protocols:
            req += f"Sec-WebSocket-Protocol: {protocols}\r\n"
        self.raw.send((req + headers + "\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += self.raw.recv_exact(1)
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        self.headers = {k.strip().lower(): v.strip()
                        for k, v in (l.split(":", 1) for l in lines[1:] if l)}
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        assert self.headers["sec-websocket-accept"] == want
        self.stream = b""  # MQTT bytes received, not yet taken

    def send(self, data):
        self.raw.send(data)

    def send_mqtt(self, pkt):
        self.send(frame(OP_BIN, pkt))

    def recv_frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next frame from the server (never masked)."""
        b0, b1 = self.raw.recv_exact(2, timeout)
        assert b1 & 0x80 == 0, "a server frame must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.raw.recv_exact(2, timeout))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.raw.recv_exact(8, timeout))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self.raw.recv_exact(n, timeout)

    def recv_packet(self, timeout=5.0):
        """The next MQTT packet (first byte, body), gathered over binary frames."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._take_packet()
            if pkt:
                return pkt
            fin, op, payload = self.recv_frame(deadline - time.monotonic())
            assert op in (OP_BIN, OP_CONT), f"expected a data frame, got opcode {op}"
            self.stream += payload

    def _take_packet(self):
        s = self.stream
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(s):
                return None
            length += (s[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not s[i - 1] & 0x80:
                break
        if len(s) < i + length:
            return None
        self.stream = s[i + length:]
        return s[0], s[i:i + length]

    def connect(self, client_id):
        self.send_mqtt(connect_pkt(client_id))
        assert self.recv_packet() == (0x20, b"\x00\x00")

    def expect_close(self, code, timeout=5.0):
        """The server's close frame with 'code', then the end of the connection."""
        fin, op, payload = self.recv_frame(timeout)
        while op in (OP_BIN, OP_CONT, OP_PONG):
            fin, op, payload = self.recv_frame(timeout)
        assert op == OP_CLOSE, f"expected a close frame, got opcode {op}"
        assert struct.unpack(">H", payload[:2])[0] == code, payload
        with pytest.raises(Closed):
            self.raw.recv_exact(1, timeout)

    def close(self):
        self.raw.s.close()


def ws_client(port, client_id="", path="/mqtt"):
    """A paho client over WebSockets (not connected yet)."""
    c = Client(port, client_id)
    c.c = mqtt.Client(client_id=client_id, transport="websockets")
    c.c.ws_set_options(path=path)
    for ev in ("connect", "disconnect", "message", "subscribe", "unsubscribe", "publish"):
        setattr(c.c, f"on_{ev}", getattr(c, f"_on_{ev}"))
    return c


@pytest.fixture
def clients():
    made = []
    yield made
    for c in made:
        try:
            c.close()
        except Exception:
            pass


# --- MQTT over WebSockets with real clients -----------------------------------------------------

def test_paho_over_websockets_and_tcp_deliver_both_ways(broker, clients):
    b = ws_broker(broker)
    ws = ws_client(b.ws_port, "ws-1")
    tcp = Client(b.port, "tcp-1")
    clients += [ws, tcp]
    ws.connect()
    tcp.connect()
    ws.subscribe("to/ws", 1)
    tcp.subscribe("to/tcp", 1)
    tcp.publish("to/ws", b"from tcp", qos=1)
    ws.publish("to/tcp", b"from ws", qos=1)
    assert [(m.topic, m.payload) for m in ws.wait_messages(1)] == [("to/ws", b"from tcp")]
    assert [(m.topic, m.payload) for m in tcp.wait_messages(1)] == [("to/tcp", b"from ws")]
    big = os.urandom(200000)  # a frame with a 64-bit length, many receive buffers
    tcp.publish("to/ws", big, qos=0)
    assert ws.wait_messages(2)[1].payload == big


def test_retained_and_qos2_over_websockets(broker, clients):
    b = ws_broker(broker)
    pub = ws_client(b.ws_port, "ws-pub")
    clients.append(pub)
    pub.connect()
    pub.publish("ws/retained", b"kept", qos=1, retain=True)
    pub.publish("ws/q2", b"exactly once", qos=2)  # no subscriber yet: nothing delivered
    sub = ws_client(b.ws_port, "ws-sub")
    clients.append(sub)
    sub.connect()
    sub.subscribe("ws/#", 2)
    got = sub.wait_messages(1)
    assert (got[0].topic, got[0].payload, got[0].retain) == ("ws/retained", b"kept", True)
    pub.publish("ws/q2", b"exactly once", qos=2)
    got = sub.wait_messages(2)
    assert (got[1].topic, got[1].payload, got[1].qos) == ("ws/q2", b"exactly once", 2)
    sub.no_messages(0.3)


def test_mqttjs_over_websockets_in_node(broker, tmp_path):
    node = shutil.which("node")
    mods = os.path.join(ROOT, "tests", "browser", "node_modules", "mqtt")
    if not node or not os.path.isdir(mods):
        pytest.skip("MQTT.js needs node and 'npm ci' in tests/browser")
    b = ws_broker(broker)
    tcp = Client(b.port, "tcp-watch")
    try:
        tcp.connect()
        tcp.subscribe("js/#", 1)
        script = os.path.join(ROOT, "tests", "integration", "mqttjs_ws.js")
        r = subprocess.run([node, script, f"ws://{HOST}:{b.ws_port}/mqtt"], capture_output=True,
                           timeout=20, env={**os.environ,
                                            "NODE_PATH": os.path.dirname(mods)})
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        assert b"echo: hello from MQTT.js" in r.stdout
        got = tcp.wait_messages(2)
        assert sorted((m.topic, m.payload) for m in got) == [
            ("js/in", b"hello from MQTT.js"), ("js/out", b"hello from MQTT.js")]
    finally:
        tcp.close()


# --- the framing layer, byte by byte ------------------------------------------------------------

def test_frames_split_byte_by_byte_fragmented_and_pinged(broker):
    b = ws_broker(broker)
    ws = Ws(b.ws_port)
    assert ws.headers.get("sec-websocket-protocol") == "mqtt"
    # CONNECT in one frame, sent one byte per segment
    ws.raw.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in frame(OP_BIN, connect_pkt("bytewise")):
        ws.send(bytes([byte]))
        time.sleep(0.002)
    assert ws.recv_packet() == (0x20, b"\x00\x00")
    # SUBSCRIBE over a fragmented message (3 frames) with a ping between the fragments
    sub = subscribe_pkt(1, [("bw/#", 1)])
    ws.send(frame(OP_BIN, sub[:3], fin=False))
    ws.send(frame(OP_PING, b"are you there"))
    ws.send(frame(OP_CONT, sub[3:6], fin=False))
    ws.send(frame(OP_CONT, sub[6:], fin=True))
    assert ws.recv_frame() == (True, OP_PONG, b"are you there")
    assert ws.recv_packet() == (0x90, b"\x00\x01\x01")
    # two PUBLISH packets in one frame, the second one spilling into the next frame
    two = publish_pkt("bw/a", b"one") + publish_pkt("bw/b", b"two")
    ws.send(frame(OP_BIN, two[:-2]) + frame(OP_BIN, two[-2:]))
    assert ws.recv_packet() == (0x30, b"\x00\x04bw/aone")
    assert ws.recv_packet() == (0x30, b"\x00\x04bw/btwo")
    # text frames carry MQTT too (mosquitto takes them)
    ws.send(frame(OP_TEXT, publish_pkt("bw/t", b"text")))
    assert ws.recv_packet() == (0x30, b"\x00\x04bw/ttext")
    # a close with a status is answered with the same status, then the connection ends
    ws.send(frame(OP_CLOSE, struct.pack(">H", 1000) + b"bye"))
    ws.expect_close(1000)
    assert b.wait_log("WebSocket close frame from the client (status 1000)")


@pytest.mark.parametrize("bad, code, why", [
    (frame(OP_BIN, b"\x10\x00", mask=False), 1002, "unmasked"),
    (frame(OP_BIN, b"x", rsv=0x40), 1002, "reserved"),
    (frame(OP_PING, b"x" * 126), 1002, "control"),
    (frame(OP_CONT, b"x"), 1002, "continuation"),
    (frame(0x3, b"x"), 1002, "opcode"),
])
def test_rfc6455_violations_close_with_a_status(broker, bad, code, why):
    b = ws_broker(broker)
    ws = Ws(b.ws_port)
    ws.connect("violator")
    ws.send(bad)
    ws.expect_close(code)
    assert b.wait_log("WebSocket protocol error")


def test_frame_larger_than_max_packet_size_is_refused_with_1009(broker):
    b = ws_broker(broker, "max_packet_size 1000")
    ws = Ws(b.ws_port)
    ws.connect("big")
    ws.send(frame(OP_BIN, publish_pkt("t", b"x" * 2000))[:200])  # the header says enough
    ws.expect_close(1009)


def test_disconnect_ends_with_a_normal_close_frame(broker):
    b = ws_broker(broker)
    ws = Ws(b.ws_port, protocols="mqttv3.1")
    assert ws.headers.get("sec-websocket-protocol") == "mqttv3.1"
    ws.connect("leaver")
    ws.send_mqtt(b"\xe0\x00")
    ws.expect_close(1000)


# --- plain HTTP on the WebSockets port ----------------------------------------------------------

@pytest.fixture
def www():
    """A directory the broker can read after dropping root for 'user' (pytest's tmp_path is
    private to root): root/www is the http_dir, root/secret.txt lies outside it."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="starling-www-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_http_dir_files_are_served(broker, www):
    root, www = www, www / "www"
    (www / "sub").mkdir(parents=True)
    (www / "index.html").write_text("<p>home</p>")
    (www / "sub" / "app.js").write_text("console.log(1);")
    (root / "secret.txt").write_text("not for you")
    os.symlink(root / "secret.txt", www / "link.txt")
    b = ws_broker(broker, ws_extra=[f"http_dir {www}"])
    assert get(b.ws_port, "/")[::2] == (200, b"<p>home</p>")
    status, headers, body = get(b.ws_port, "/sub/app.js?v=2")
    assert (status, body) == (200, b"console.log(1);")
    assert headers["content-type"].startswith("text/javascript") or \
        headers["content-type"].startswith("application/javascript")
    status, headers, body = get(b.ws_port, "/index.html", method="HEAD")
    assert (status, headers["content-length"], body) == (200, "11", b"")
    assert get(b.ws_port, "/missing.html")[0] == 404
    assert get(b.ws_port, "/link.txt")[0] == 404, "a link out of http_dir is not followed"
    assert get(b.ws_port, "/../secret.txt")[0] == 400
    assert get(b.ws_port, "/%2e%2e/secret.txt")[0] == 400
    assert b.wait_log("HTTP GET /missing.html: 404 Not Found")


def test_status_page_is_served_at_the_root(broker):
    b = ws_broker(broker, ws_extra=["status_page true"])
    status, headers, body = get(b.ws_port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    want = open(os.path.join(ROOT, "broker", "status", "index.html"), "rb").read()
    assert body == want, "the page bundled at build time"
    assert get(b.ws_port, "/other")[0] == 404


def test_websockets_port_without_files_answers_426(broker):
    b = ws_broker(broker)
    status, headers, _ = get(b.ws_port, "/")
    assert status == 426 and headers["upgrade"] == "websocket"


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    (b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    (b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
    (b"GET /mqtt HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 2000 + b"\r\n\r\n", 431),
    (b"GET /mqtt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
])
def test_bad_upgrades_get_an_http_error(broker, request_bytes, status):
    b = ws_broker(broker)
    assert http(b.ws_port, request_bytes)[0] == status
    assert b.wait_log(f"HTTP request refused: {status}")


def test_headers_size_is_configurable(broker):
    b = ws_broker(broker, ws_extra=["websockets_headers_size 4096"])
    ws = Ws(b.ws_port, headers="X-Long: " + "a" * 2000 + "\r\n")
    ws.connect("long-headers")


def test_mqtt_client_on_websockets_port_is_closed_and_logged(broker):
    b = ws_broker(broker)
    r = Raw(b.ws_port)
    r.send(connect_pkt("lost"))
    with pytest.raises(Closed):
        r.recv_exact(1)
    assert r.buf == b"", "no HTTP answer to an MQTT client"
    assert b.wait_log("an MQTT client on a WebSockets listener")


def test_websocket_client_on_mqtt_port_is_closed_and_logged(broker):
    b = ws_broker(broker)
    with pytest.raises(AssertionError, match="400"):
        Ws(b.port)
    assert b.wait_log("an HTTP request (a WebSocket client?) on a plain MQTT listener")
    c = Client(b.port, "still-fine").connect()  # plain MQTT goes on as before
    c.close()


# --- who the client is, and the figures ---------------------------------------------------------

def test_x_forwarded_for_names_the_client_only_from_the_trusted_proxy(broker):
    b = ws_broker(broker, ws_extra=["websockets_trusted_proxy 127.0.0.1"])
    ws = Ws(b.ws_port, headers="X-Forwarded-For: 198.51.100.1, 203.0.113.7\r\n")
    ws.connect("proxied")
    assert b.wait_log("New client connected from 203.0.113.7 as proxied")
    assert b.wait_log("WebSocket client 203.0.113.7 via trusted proxy 127.0.0.1")
    other = ws_broker(broker, ws_extra=["websockets_trusted_proxy 10.9.9.9"])
    ws2 = Ws(other.ws_port, headers="X-Forwarded-For: 203.0.113.8\r\n")
    ws2.connect("direct")
    assert other.wait_log("New client connected from 127.0.0.1:")
    assert "203.0.113.8" not in other.stderr()


def test_sys_counts_websocket_clients_and_bytes(broker, clients):
    b = ws_broker(broker, "sys_interval 1")
    ws = ws_client(b.ws_port, "ws-counted")
    clients.append(ws)
    ws.connect()
    ws.subscribe("$SYS/broker/#")
    ws.publish("pad", b"x" * 5000, qos=1)
    deadline = time.monotonic() + 8
    vals = {}
    while time.monotonic() < deadline:
        for m in ws.take():
            vals[m.topic] = m.payload.decode()
        if int(vals.get("$SYS/broker/bytes/received", 0)) > 5000 and \
                int(vals.get("$SYS/broker/clients/connected", 0)) >= 1:
            break
        time.sleep(0.2)
    assert int(vals["$SYS/broker/clients/connected"]) == 1, vals
    assert int(vals["$SYS/broker/bytes/received"]) > 5000, vals
    assert int(vals["$SYS/broker/bytes/sent"]) > 0, vals


def test_configuration_errors_name_the_file_and_line(tmp_path):
    from conftest import BROKER
    conf = tmp_path / "bad.conf"
    conf.write_text(f"listener {_free_port()} {HOST}\nprotocol websockets\n"
                    f"http_dir {tmp_path}/nowhere\n")
    r = subprocess.run([BROKER, "-c", str(conf)], capture_output=True, timeout=10)
    assert r.returncode != 0
    assert f"{conf}:3: http_dir {tmp_path}/nowhere".encode() in r.stderr, r.stderr
    conf.write_text(f"listener {_free_port()} {HOST}\nprotocol websockets\n"
                    "websockets_trusted_proxy proxy.example\n")
    r = subprocess.run([BROKER, "-c", str(conf)], capture_output=True, timeout=10)
    assert r.returncode != 0
    assert f"{conf}:3: websockets_trusted_proxy proxy.example: not an IP address".encode() \
        in r.stderr, r.stderr


# --- wss://: the same over TLS (net/tls under the framing) ---------------------------------------

def wss_broker(broker, pki, *ws_extra):
    return ws_broker(broker, ws_extra=[f"certfile {pki['server']}", f"keyfile {pki['server.key']}",
                                       *ws_extra])


def test_paho_over_wss_delivers_to_tcp_and_back(broker, pki, clients):
    b = wss_broker(broker, pki)
    ws = ws_client(b.ws_port, "wss-1")
    ws.c.tls_set(ca_certs=pki["ca"])
    tcp = Client(b.port, "tcp-2")
    clients += [ws, tcp]
    ws.connect()
    tcp.connect()
    ws.subscribe("wss/in", 2)
    tcp.subscribe("wss/out", 1)
    tcp.publish("wss/in", b"to the browser", qos=2)
    ws.publish("wss/out", b"from the browser", qos=1)
    assert [(m.topic, m.payload) for m in ws.wait_messages(1)] == [("wss/in", b"to the browser")]
    assert [(m.topic, m.payload) for m in tcp.wait_messages(1)] == [
        ("wss/out", b"from the browser")]


def test_raw_wss_frames_pings_and_close(broker, pki):
    b = wss_broker(broker, pki)
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ws = Ws(b.ws_port, tls=ctx)
    sub = subscribe_pkt(1, [("t/#", 0)])
    for byte in frame(OP_BIN, connect_pkt("wss-raw")) + frame(OP_BIN, sub[:4], fin=False):
        ws.send(bytes([byte]))  # one TLS record per byte
    ws.send(frame(OP_PING, b"tls?") + frame(OP_CONT, sub[4:]))
    # the pong may come before the CONNACK (control frames go between data frames)
    pongs, packets = [], []
    while not (pongs and len(packets) == 2):
        fin, op, payload = ws.recv_frame()
        if op == OP_PONG:
            pongs.append(payload)
        else:
            ws.stream += payload
            while (pkt := ws._take_packet()):
                packets.append(pkt)
    assert pongs == [b"tls?"]
    assert packets == [(0x20, b"\x00\x00"), (0x90, b"\x00\x01\x00")]
    ws.send(frame(OP_CLOSE, struct.pack(">H", 1001)))
    ws.expect_close(1001)


def test_https_get_of_the_status_page_and_plain_ws_refused(broker, pki):
    b = wss_broker(broker, pki, "status_page true")
    ctx = ssl.create_default_context(cafile=pki["ca"])
    with ctx.wrap_socket(socket.create_connection((HOST, b.ws_port), timeout=5),
                         server_hostname=HOST) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            try:
                d = s.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not d:
                break
            data += d
    assert data.startswith(b"HTTP/1.1 200 OK") and b"<!DOCTYPE html>" in data
    # a ws:// client (no TLS) on the wss:// port: the TLS layer refuses it, and says so
    r = Raw(b.ws_port)
    r.send(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(Closed):
        while True:
            r.recv_exact(1)
