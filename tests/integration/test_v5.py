# SPDX-License-Identifier: MIT
"""MQTT 5.0 behaviour through real clients (paho-mqtt MQTTv5, mosquitto_pub/sub -V mqttv5) and
raw sockets for exact reason codes. Statement numbers are OASIS MQTT Version 5.0's."""
import queue
import signal
import socket
import struct
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from conftest import HOST, Client, Raw, several_workers, varint, s16, packet

# --- a v5 paho client with bounded waits -------------------------------------------------------


class V5:
    def __init__(self, port, client_id="", clean_start=True, props=None, keepalive=60,
                 will=None, expect_rc=0):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.msgs = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.gone = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put((f, rc, p))
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.c.on_disconnect = lambda c, u, rc, p=None: self.gone.set()
        if will:
            self.c.will_set(*will)
        self.c.connect(HOST, port, keepalive, clean_start=clean_start, properties=props)
        self.c.loop_start()
        self.flags, self.rc, self.props = self.connack.get(timeout=5)
        assert self.rc.value == expect_rc, f"CONNACK {self.rc}"

    def sub(self, topic, qos=0, props=None, **opts):
        self.c.subscribe(topic, options=SubscribeOptions(qos=qos, **opts), properties=props)
        return self.subacks.get(timeout=5)

    def pub(self, topic, payload=b"", qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        if qos:
            info.wait_for_publish(5)

    def get(self, timeout=5.0):
        return self.msgs.get(timeout=timeout)

    def none(self, quiet=0.5):
        try:
            m = self.msgs.get(timeout=quiet)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}")

    def close(self, reason=0, props=None):
        self.c.disconnect(reasoncode=mqtt.ReasonCodes(PacketTypes.DISCONNECT, identifier=reason),
                          properties=props)
        self.gone.wait(5)
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (a network failure)."""
        self.c.loop_stop()
        self.c.socket().shutdown(socket.SHUT_RDWR)
        self.c.socket().close()


def props(kind, **kw):
    p = Properties(kind)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


# --- raw v5 packets ----------------------------------------------------------------------------


def vprops(*items):
    """A property block: items are (id, bytes)."""
    body = b"".join(bytes([i]) + v for i, v in items)
    return varint(len(body)) + body


def u16(v):
    return struct.pack(">H", v)


def u32(v):
    return struct.pack(">I", v)


def connect5(client_id="raw5", clean=True, keepalive=60, cprops=()):
    vh = s16(b"MQTT") + bytes([5, 0x02 if clean else 0]) + u16(keepalive) + vprops(*cprops)
    return packet(0x10, vh + s16(client_id.encode()))


def publish5(topic, payload=b"", qos=0, pid=1, pprops=(), retain=False):
    vh = s16(topic.encode()) + (u16(pid) if qos else b"") + vprops(*pprops)
    return packet(0x30 | qos << 1 | (1 if retain else 0), vh + payload)


def subscribe5(pid, filters, sprops=()):
    body = u16(pid) + vprops(*sprops)
    for f, opts in filters:
        body += s16(f.encode()) + bytes([opts])
    return packet(0x82, body)


def read_props(body, at):
    """Parses a property block at body[at:]; returns (dict id -> list of raw values, end)."""
    n, mult, i = 0, 1, at
    while True:
        b = body[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
    end, out = i + n, {}
    while i < end:
        pid = body[i]
        i += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            v, i = body[i:i + 1], i + 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            v, i = body[i:i + 2], i + 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            v, i = body[i:i + 4], i + 4
        elif pid == 0x0B:
            v, m2, x = 0, 1, 0
            while True:
                x = body[i]
                v += (x & 0x7F) * m2
                m2 *= 128
                i += 1
                if not x & 0x80:
                    break
        elif pid == 0x26:
            kl = struct.unpack(">H", body[i:i + 2])[0]
            vl = struct.unpack(">H", body[i + 2 + kl:i + 4 + kl])[0]
            v, i = body[i:i + 4 + kl + vl], i + 4 + kl + vl
        else:
            ln = struct.unpack(">H", body[i:i + 2])[0]
            v, i = body[i + 2:i + 2 + ln], i + 2 + ln
        out.setdefault(pid, []).append(v)
    return out, end


class Raw5(Raw):
    def connect5(self, client_id="raw5", clean=True, keepalive=60, cprops=(), expect_rc=0):
        self.send(connect5(client_id, clean, keepalive, cprops))
        first, body, raw = self.recv_packet()
        assert first == 0x20, f"bad CONNACK {raw!r}"
        if expect_rc is not None:
            assert body[1] == expect_rc, f"CONNACK {raw!r}"
        return body[0], body[1], read_props(body, 2)[0]

    def expect_disconnect(self, rc, timeout=5.0):
        first, body, raw = self.recv_packet(timeout)
        assert first == 0xE0 and body[0] == rc, f"expected DISCONNECT 0x{rc:02x}, got {raw!r}"

    def publish5(self, timeout=5.0):
        """The next PUBLISH: (topic, packet id or None, properties, payload, first byte)."""
        first, body, raw = self.recv_packet(timeout)
        assert first >> 4 == 3, f"expected PUBLISH, got {raw!r}"
        tl = struct.unpack(">H", body[:2])[0]
        topic, i = body[2:2 + tl].decode(), 2 + tl
        pid = None
        if first & 0x06:
            pid, i = struct.unpack(">H", body[i:i + 2])[0], i + 2
        pr, i = read_props(body, i)
        return topic, pid, pr, body[i:], first


# --- CONNECT / CONNACK -------------------------------------------------------------------------


def test_v5_client_is_served_and_connack_says_what_the_server_decided(broker):
    b = broker("max_keepalive 30\nmax_qos 1\n")
    c = V5(b.port, "", keepalive=120)
    p = c.props
    assert p.TopicAliasMaximum == 10  # mosquitto's max_topic_alias default
    assert p.ServerKeepAlive == 30  # max_keepalive lowers it; v5 is not refused [MQTT-3.2.2-21]
    assert p.AssignedClientIdentifier.startswith("auto-")  # [MQTT-3.2.2-16]
    assert p.MaximumQoS == 1
    assert not hasattr(p, "SharedSubscriptionAvailable")  # absent: available
    assert p.ReceiveMaximum == 20  # max_inflight_messages
    c.close()


def test_mosquitto_clients_speak_v5_with_properties(broker):
    b = broker()
    sub = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-p", str(b.port), "-t", "t/#",
                            "-C", "1", "-F", "%t %p %P"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.4)
    subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-p", str(b.port), "-t", "t/1", "-m", "hi",
                    "-q", "1", "-D", "publish", "user-property", "k", "v"], check=True, timeout=5)
    out, _ = sub.communicate(timeout=5)
    assert out.strip() == "t/1 hi k:v"


def test_authentication_method_without_a_configured_method_is_refused_0x8c(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5(cprops=[(0x15, s16(b"SCRAM-SHA-1"))], expect_rc=0x8C)


def test_v5_refusals_use_v5_reason_codes(broker):
    b = broker("allow_zero_length_clientid false\n")
    Raw5(b.port).connect5("", expect_rc=0x85)  # Client Identifier not valid


# --- properties, request / response ------------------------------------------------------------


def test_properties_pass_through_unchanged_and_in_order(broker):
    b = broker()
    s = V5(b.port, "sub")
    s.sub("p/#", 1)
    legacy = Client(b.port, "legacy")
    legacy.connect()
    legacy.subscribe("p/#", 1)
    pub = V5(b.port, "pub")
    pp = props(PacketTypes.PUBLISH, PayloadFormatIndicator=1, ContentType="text/plain",
               ResponseTopic="p/reply", CorrelationData=b"\x01\x02",
               UserProperty=[("a", "1"), ("b", "2"), ("a", "3")])
    pub.pub("p/x", b"hello", 1, props=pp)
    m = s.get()
    assert m.payload == b"hello"
    assert m.properties.PayloadFormatIndicator == 1
    assert m.properties.ContentType == "text/plain"
    assert m.properties.ResponseTopic == "p/reply"
    assert m.properties.CorrelationData == b"\x01\x02"
    assert m.properties.UserProperty == [("a", "1"), ("b", "2"), ("a", "3")]
    assert legacy.wait_messages(1)[0].payload == b"hello"  # a 3.1.1 client gets no properties


def test_request_response_works_end_to_end(broker):
    b = broker()
    responder = V5(b.port, "responder")
    responder.sub("svc/req", 1)
    requester = V5(b.port, "requester")
    requester.sub("svc/resp/requester", 1)
    requester.pub("svc/req", b"ping", 1, props=props(
        PacketTypes.PUBLISH, ResponseTopic="svc/resp/requester", CorrelationData=b"42"))
    req = responder.get()
    responder.pub(req.properties.ResponseTopic, b"pong", 1,
                  props=props(PacketTypes.PUBLISH, CorrelationData=req.properties.CorrelationData))
    resp = requester.get()
    assert resp.payload == b"pong" and resp.properties.CorrelationData == b"42"


# --- reason codes --------------------------------------------------------------------------------


def test_puback_says_no_matching_subscribers_and_unsuback_no_subscription(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5()
    r.send(publish5("nobody/here", b"x", qos=1, pid=7))
    r.expect(b"\x40\x03\x00\x07\x10")  # 0x10 No matching subscribers [MQTT-3.4.2.1]
    r.send(subscribe5(1, [("a", 0)]))
    assert r.recv_packet()[0] == 0x90
    r.send(packet(0xA2, u16(2) + vprops() + s16(b"a") + s16(b"b")))
    first, body, _ = r.recv_packet()
    assert first == 0xB0 and body[-2:] == b"\x00\x11"  # 0x11 No subscription existed


def test_publish_to_sys_or_share_is_refused_with_0x87_but_a_bridge_state_is_routed(broker):
    """As mosquitto: $SYS and "$share/..." are not for clients, except the state a
    (mosquitto) bridge publishes about itself."""
    b = broker()
    watch = Raw5(b.port)
    watch.connect5("watch")
    watch.send(subscribe5(1, [("$SYS/broker/connection/+/state", 0)]))
    assert watch.recv_packet()[0] == 0x90
    r = Raw5(b.port)
    r.connect5()
    for pid, topic in enumerate(["$SYS/broker/uptime", "$SYS/broker/connection/me",
                                 "$SYS/broker/connection/a/b/state", "$share/g/t"], 1):
        r.send(publish5(topic, b"x", qos=1, pid=pid))
        r.expect(b"\x40\x03\x00" + bytes([pid, 0x87]))  # 0x87 Not authorized
    r.send(publish5("$SYS/broker/connection/me/state", b"1", qos=1, pid=9))
    r.expect(b"\x40\x02\x00\x09")  # routed, and delivered
    topic, _, _, payload, _ = watch.publish5()
    assert (topic, payload) == ("$SYS/broker/connection/me/state", b"1")
    watch.no_data(0.3)  # none of the refused ones


def test_take_over_sends_0x8e_and_keepalive_timeout_0x8d(broker):
    b = broker()
    old = Raw5(b.port)
    old.connect5("same")
    Raw5(b.port).connect5("same")
    old.expect_disconnect(0x8E)  # Session taken over
    idle = Raw5(b.port)
    idle.connect5("idle", keepalive=1)
    idle.expect_disconnect(0x8D, timeout=4)  # Keep Alive timeout


def test_qos_above_maximum_gets_disconnect_0x9b(broker):
    b = broker("max_qos 1\n")
    r = Raw5(b.port)
    r.connect5()
    r.send(publish5("q", b"x", qos=2))
    r.expect_disconnect(0x9B)


def test_malformed_packet_after_connect_gets_disconnect_0x81(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5()
    r.send(b"\x82\x02\x00\x01")  # SUBSCRIBE without properties length or filter
    first, body, raw = r.recv_packet()
    assert first == 0xE0 and body[0] in (0x81, 0x82), raw


# --- sessions ------------------------------------------------------------------------------------


def test_session_expiry_keeps_the_session_and_its_messages(broker):
    b = broker()
    c = V5(b.port, "keep", clean_start=True,
           props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    c.sub("se/#", 1)
    c.close()
    p = V5(b.port, "pubber")
    p.pub("se/1", b"while away", 1)
    c = V5(b.port, "keep", clean_start=False,
           props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    assert c.flags["session present"] == 1
    assert c.get().payload == b"while away"


def test_session_expiry_zero_ends_the_session_at_disconnect(broker):
    b = broker()
    c = V5(b.port, "gone", clean_start=True)
    c.sub("x", 1)
    c.close()
    c = V5(b.port, "gone", clean_start=False)
    assert c.flags["session present"] == 0


def test_a_session_expires_after_its_interval(broker):
    b = broker()
    c = V5(b.port, "short", props=props(PacketTypes.CONNECT, SessionExpiryInterval=1))
    c.sub("x", 1)
    c.close()
    time.sleep(2.6)  # the interval and one tick
    c = V5(b.port, "short", clean_start=False,
           props=props(PacketTypes.CONNECT, SessionExpiryInterval=1))
    assert c.flags["session present"] == 0


def test_disconnect_may_not_raise_expiry_from_zero(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5("z")
    r.send(packet(0xE0, b"\x00" + vprops((0x11, u32(30)))))
    r.expect_disconnect(0x82)  # [MQTT-3.14.2-2]


def test_persistent_client_expiration_bounds_311_sessions(broker):
    b = broker("persistent_client_expiration 1h\n")
    c = Client(b.port, "p311", clean_session=False)
    c.connect()
    c.subscribe("x", 1)
    c.disconnect()
    c = Client(b.port, "p311", clean_session=False)
    c.connect()
    assert c.session_present


# --- wills ---------------------------------------------------------------------------------------


def test_disconnect_0x04_publishes_the_will_with_its_properties(broker):
    b = broker()
    w = V5(b.port, "watch")
    w.sub("will/#", 0)
    c = V5(b.port, "dying", will=("will/d", b"bye", 0, False,
                                  props(PacketTypes.WILLMESSAGE, UserProperty=[("k", "v")])))
    c.close(reason=0x04)
    m = w.get()
    assert m.payload == b"bye" and m.properties.UserProperty == [("k", "v")]
    quiet = V5(b.port, "quiet", will=("will/q", b"no", 0, False))
    quiet.close()
    w.none()


@several_workers
def test_will_delay_waits_and_a_reconnect_cancels_it(broker):
    b = broker()
    w = V5(b.port, "watch")
    w.sub("will/#", 0)
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    wp = props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    c = V5(b.port, "delayed", props=cp, will=("will/late", b"late", 0, False, wp))
    c.drop()
    w.none(1.0)  # not at once
    assert w.get(timeout=4).payload == b"late"
    c = V5(b.port, "back", props=cp, will=("will/back", b"never", 0, False, wp))
    c.drop()
    time.sleep(0.5)
    V5(b.port, "back", clean_start=False, props=cp)  # back in time: the will is cancelled
    w.none(3.0)


@several_workers
def test_a_delayed_will_on_sys_is_not_published(broker):
    """$SYS belongs to the broker: a will there is dropped when it would go, delayed or not
    (the delayed path once routed it without the check)."""
    b = broker()
    w = V5(b.port, "watch-sys")
    w.sub("$SYS/fake/#", 0)
    w.sub("will/#", 0)
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    wp = props(PacketTypes.WILLMESSAGE, WillDelayInterval=1)
    V5(b.port, "sys-will", props=cp, will=("$SYS/fake/x", b"forged", 0, False, wp)).drop()
    V5(b.port, "ok-will", props=cp, will=("will/ok", b"ok", 0, False, wp)).drop()
    m = w.get(timeout=4)  # the ordinary delayed will arrives ...
    assert (m.topic, m.payload) == ("will/ok", b"ok")
    w.none(1.0)  # ... and the $SYS one never does


def test_mqttjs_as_an_mqtt5_client(broker):
    """MQTT.js 5 (node): CONNECT properties answered in CONNACK, a Subscription Identifier,
    properties carried through, inbound Topic Aliases."""
    import json
    import os
    import shutil
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    node = shutil.which("node")
    mods = os.path.join(root, "tests", "browser", "node_modules", "mqtt")
    if not node or not os.path.isdir(mods):
        pytest.skip("MQTT.js needs node and 'npm ci' in tests/browser")
    b = broker()
    script = os.path.join(root, "tests", "integration", "mqttjs_v5.js")
    r = subprocess.run([node, script, f"mqtt://{HOST}:{b.port}"], capture_output=True,
                       timeout=20, env={**os.environ, "NODE_PATH": os.path.dirname(mods)})
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["connack"]["reasonCode"] == 0
    cp = out["connack"]["properties"]
    assert cp.get("receiveMaximum") == 20 and cp.get("topicAliasMaximum", 0) > 0, cp
    assert out["granted"] == [1]
    first, *aliased = out["messages"]
    assert first["topic"] == "js5/a" and first["payload"] == "first"
    assert first["userProperties"] == {"k": "v"}
    assert (first["contentType"], first["responseTopic"], first["correlationData"]) == (
        "text/plain", "js5/reply", "c-1")
    assert first["subscriptionIdentifier"] == 7
    assert [(m["topic"], m["payload"]) for m in aliased] == [("js5/b", "aliased-1"),
                                                           ("js5/b", "aliased-2")]


# --- flow control, sizes, aliases ----------------------------------------------------------------


def test_client_receive_maximum_bounds_outbound_inflight(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5("slow", cprops=[(0x21, u16(2))])
    r.send(subscribe5(1, [("rm", 1)]))
    r.recv_packet()
    p = V5(b.port, "p")
    for i in range(5):
        p.pub("rm", b"%d" % i, 1)
    got = [r.publish5() for _ in range(2)]
    try:
        r.recv_packet(timeout=0.5)
        raise AssertionError("a third PUBLISH beyond Receive Maximum 2")
    except TimeoutError:
        pass
    r.send(packet(0x40, u16(got[0][1])))  # one PUBACK frees one slot
    assert r.publish5()[3] == b"2"


def test_receive_maximum_exceeded_0x93_reaches_a_client_that_keeps_sending(broker):
    """[MQTT-3.3.4-9]: more QoS 2 PUBLISH than the server's Receive Maximum (from
    max_inflight_messages) ends the connection with DISCONNECT 0x93. The client is still
    sending when the server decides: the server shuts only its writing side and reads on, so
    the client sees no reset and reads the DISCONNECT (Paho's test_flow_control2)."""
    b = broker("max_inflight_messages 5\n")
    r = Raw5(b.port)
    _, _, cp = r.connect5("flood")
    assert cp[0x21] == [u16(5)]
    r.send(b"".join(publish5("rm2", b"x", qos=2, pid=i) for i in range(1, 9)))
    for _ in range(30):  # still sending while the server closes: no reset, no broken pipe
        r.send(publish5("rm2", b"y"))
        time.sleep(0.01)
    rcs = []
    while True:
        first, body, raw = r.recv_packet()
        if first == 0xE0:
            assert body[0] == 0x93, raw
            break
        assert first == 0x50, raw  # PUBREC for the first five
        rcs.append(body)
    assert len(rcs) == 5
    r.s.shutdown(socket.SHUT_WR)  # the client closes its side: the server's close follows
    t = time.monotonic()
    assert r.s.recv(16) == b""
    assert time.monotonic() - t < 1.0


def test_a_lingering_close_ends_even_if_the_client_never_closes(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5("linger")
    r.send(publish5("q", b"x", qos=3 >> 1, pid=0))  # QoS 1 without a packet id: 0x82
    first, body, raw = r.recv_packet()
    assert first == 0xE0 and body[0] in (0x81, 0x82), raw
    r.s.settimeout(1)
    assert r.s.recv(16) == b""  # the server has shut its writing side
    t = time.monotonic()
    try:  # the client never closes: the server reads and drops, for a bounded time
        while time.monotonic() - t < 8:
            r.s.send(b"\xc0\x00")
            time.sleep(0.05)
        raise AssertionError("the server still reads after 8 s")
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert 1.0 < time.monotonic() - t < 4.5


def test_message_over_the_client_maximum_packet_size_is_not_sent(broker):
    b = broker()
    c = V5(b.port, "small", props=props(PacketTypes.CONNECT, MaximumPacketSize=100))
    c.sub("mps", 0)
    p = V5(b.port, "p")
    p.pub("mps", b"x" * 200)
    p.pub("mps", b"fits")
    assert c.get().payload == b"fits"


def test_inbound_topic_alias_is_set_used_and_bounded(broker):
    b = broker()
    s = V5(b.port, "s")
    s.sub("alias/#", 0)
    r = Raw5(b.port)
    r.connect5("aliaser")
    r.send(publish5("alias/one", b"1", pprops=[(0x23, u16(3))]))
    r.send(publish5("", b"2", pprops=[(0x23, u16(3))]))
    assert [s.get().topic for _ in range(2)] == ["alias/one", "alias/one"]
    r.send(publish5("alias/x", b"3", pprops=[(0x23, u16(11))]))  # above max_topic_alias 10
    r.expect_disconnect(0x94)


def test_outbound_topic_aliases_are_assigned_for_repeated_topics(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5("aliased", cprops=[(0x22, u16(4))])
    r.send(subscribe5(1, [("oa/#", 0)]))
    r.recv_packet()
    p = V5(b.port, "p")
    for _ in range(3):
        p.pub("oa/topic", b"x")
    first = r.publish5()
    assert first[0] == "oa/topic" and first[2][0x23] == [u16(1)]
    for _ in range(2):
        t, _, pr, _, _ = r.publish5()
        assert t == "" and pr[0x23] == [u16(1)]  # alias only: the topic bytes are saved


# --- subscription options and identifiers --------------------------------------------------------


def test_no_local_retain_as_published_and_retain_handling(broker):
    b = broker()
    c = V5(b.port, "self")
    c.sub("nl", 0, noLocal=True)
    c.pub("nl", b"mine")
    c.none()
    ret = V5(b.port, "ret")
    ret.pub("rh/a", b"kept", 1, retain=True)  # acknowledged: stored before 'rap' subscribes
    rap = V5(b.port, "rap")
    rap.sub("rh/#", 0, retainAsPublished=True, retainHandling=2)  # 2: no retained at subscribe
    rap.none()
    ret.pub("rh/b", b"live", 0, retain=True)
    m = rap.get()
    assert m.payload == b"live" and m.retain  # Retain As Published keeps the flag
    rh1 = V5(b.port, "rh1")
    rh1.sub("rh/a", 0, retainHandling=1)
    assert rh1.get().payload == b"kept"
    rh1.sub("rh/a", 0, retainHandling=1)  # not new: nothing sent again
    rh1.none()


def test_subscription_identifiers_are_delivered_for_every_matching_subscription(broker):
    b = broker()
    c = V5(b.port, "ids")
    c.sub("si/+", 0, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    c.sub("si/#", 0, props=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9))
    V5(b.port, "p").pub("si/x", b"x")
    m = c.get()
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 9]


# --- shared subscriptions ----------------------------------------------------------------------


def test_shared_group_members_each_get_their_turn_and_plain_subscribers_everything(broker):
    b = broker()
    members = [V5(b.port, "m%d" % i) for i in range(3)]
    for m in members:
        assert m.sub("$share/g/job/+", 1)[0].value == 1
    legacy = Client(b.port, "legacy311")
    legacy.connect()
    legacy.subscribe("$share/g/job/+", 1)  # 3.1.1 members too (as mosquitto)
    plain = V5(b.port, "plain")
    plain.sub("job/+", 1)
    other = V5(b.port, "other")
    other.sub("$share/h/job/#", 1)  # another group: it gets every message too
    p = V5(b.port, "p")
    for i in range(40):
        p.pub("job/x", b"%d" % i, 1)
    per_member = []
    for m in members:
        mine = []
        while True:
            try:
                mine.append(int(m.get(timeout=1.0).payload))
            except queue.Empty:
                break
        per_member.append(mine)
    per_member.append([int(x.payload) for x in legacy.settle()])
    got = sorted(x for mine in per_member for x in mine)
    assert got == list(range(40)), "each message once to one member of the group"
    assert all(len(mine) == 10 for mine in per_member), [len(x) for x in per_member]  # in turn
    assert len([plain.get() for _ in range(40)]) == 40
    assert len([other.get() for _ in range(40)]) == 40
    plain.none()


@pytest.mark.parametrize("expiry", [0, 300])
def test_a_shared_member_that_drops_hands_its_unacknowledged_messages_on(broker, expiry):
    """MQTT 5 §4.8.2: a member whose connection drops with messages it has not acknowledged
    (in flight or queued) — they go to another member of the group, not lost and not left
    waiting for it (mosquitto keeps them for the offline member). A persistent member
    (expiry 300) keeps those it had in flight, which it gets again when it returns
    [MQTT-4.4.0-1]; its queued ones have moved."""
    b = broker()
    slow = Raw5(b.port)
    cprops = [(0x21, u16(2))] + ([(0x11, u32(expiry))] if expiry else [])
    slow.connect5("slow-member", cprops=cprops)  # Receive Maximum 2, never acks
    slow.send(subscribe5(1, [("$share/g/hand/#", 1)]))
    slow.recv_packet()
    fast = V5(b.port, "fast-member")
    fast.sub("$share/g/hand/#", 1)
    p = V5(b.port, "hand-pub")
    for i in range(12):
        p.pub("hand/x", b"%d" % i, 1)
    held = sorted(slow.publish5()[3] for _ in range(2))  # two in flight, the rest queued
    got = []
    try:
        while True:
            got.append(fast.get(timeout=0.5).payload)
    except queue.Empty:
        pass
    assert 0 < len(got) < 12, got  # the group shared the twelve
    slow.s.close()  # the connection drops (and with expiry 0 the session ends)
    try:
        while len(got) < 12:
            got.append(fast.get(timeout=3).payload)
    except queue.Empty:
        pass
    assert sorted(got, key=int) == [b"%d" % i for i in range(12)], got
    fast.none(0.5)
    if expiry:  # offline, the member is not picked while another is connected
        for i in range(12, 18):
            p.pub("hand/x", b"%d" % i, 1)
        later = [fast.get(timeout=3).payload for _ in range(6)]
        assert sorted(later, key=int) == [b"%d" % i for i in range(12, 18)], later
        back = Raw5(b.port)
        flags, _, _ = back.connect5("slow-member", clean=False, cprops=cprops)
        assert flags & 1, "session present"
        again = sorted(back.publish5()[3] for _ in range(2))
        assert again == held  # re-sent with their packet ids; nothing else was left
        with pytest.raises(TimeoutError):
            back.recv_packet(timeout=0.5)


def test_shared_subscription_rules(broker):
    b = broker()
    p = V5(b.port, "p")
    p.pub("rs/t", b"kept", 0, retain=True)
    p.pub("rs/sync", b"", 1)  # acknowledged once the QoS 0 one before it was taken
    m = V5(b.port, "member")
    m.sub("$share/g/rs/t", 0)
    m.none()  # no retained messages for a shared subscription (MQTT 5 §4.8.2)
    assert not hasattr(m.props, "SharedSubscriptionAvailable")  # absent: available
    c = Raw5(b.port)
    c.connect5("nl")
    c.send(subscribe5(1, [("$share/g/x", 0x04)]))  # No Local on a shared subscription
    c.expect_disconnect(0x82)  # [MQTT-3.8.3-4]
    m.c.unsubscribe("$share/g/rs/t")
    time.sleep(0.3)
    p.pub("rs/t", b"after")
    m.none()


# --- message expiry ------------------------------------------------------------------------------


@several_workers
def test_expired_messages_are_never_delivered_and_the_interval_counts_down(broker):
    b = broker()
    p = V5(b.port, "p")
    p.pub("exp/r", b"old", 0, retain=True,
          props=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    c = V5(b.port, "off", props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    c.sub("exp/q/#", 1)
    c.close()
    # the client's side closes at once; let the broker take the session offline first, or
    # "short" goes out to the still-open connection (onward delivery begun: it may be resent)
    time.sleep(0.5)
    p.pub("exp/q/short", b"short", 1, props=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    p.pub("exp/q/long", b"long", 1, props=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(3.0)  # well past the short interval, even on a loaded machine
    c = V5(b.port, "off", clean_start=False,
           props=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    m = c.get()
    assert m.payload == b"long"
    assert m.properties.MessageExpiryInterval <= 58, m.properties  # counted down
    c.none()
    late = V5(b.port, "late")
    late.sub("exp/r", 0)
    late.none()  # the retained message expired


def test_response_information_when_configured_and_requested(broker):
    b = broker("response_information replies\n")
    c = V5(b.port, "asker", props=props(PacketTypes.CONNECT, RequestResponseInformation=1))
    assert c.props.ResponseInformation == "replies/asker"
    quiet = V5(b.port, "quiet")
    assert not hasattr(quiet.props, "ResponseInformation")


def test_property_block_is_forwarded_in_the_order_it_came(broker):
    b = broker()
    sub = Raw5(b.port)
    sub.connect5("ordersub")
    sub.send(subscribe5(1, [("ord", 0)]))
    sub.recv_packet()
    block = [(0x26, s16(b"k1") + s16(b"v1")), (0x08, s16(b"resp")), (0x01, b"\x01"),
             (0x02, u32(60)), (0x26, s16(b"k2") + s16(b"v2")), (0x03, s16(b"ct"))]
    pub = Raw5(b.port)
    pub.connect5("orderpub")
    pub.send(publish5("ord", b"x", pprops=block))
    first, body, raw = sub.recv_packet()
    # topic, then the block: the expiry (counted down) first, the rest exactly as sent
    kept = vprops(*[e for e in block if e[0] != 0x02])[1:]
    assert kept in body, raw


def test_take_over_of_a_continuing_session_cancels_a_delayed_will(broker):
    b = broker()
    w = V5(b.port, "watch")
    w.sub("tw/#", 0)
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    wp = props(PacketTypes.WILLMESSAGE, WillDelayInterval=5)
    V5(b.port, "tk", props=cp, will=("tw/x", b"late", 0, False, wp))
    V5(b.port, "tk", clean_start=False, props=cp)
    w.none(1.0)  # MQTT 5 §3.1.4: a delayed will of a session that goes on is not sent
    now = V5(b.port, "tk2", props=cp, will=("tw/y", b"now", 0, False))
    V5(b.port, "tk2", clean_start=False, props=cp)
    assert w.get().payload == b"now"  # no delay: it goes when the connection is closed
    del now


def test_shutdown_says_goodbye_with_0x8b(broker):
    b = broker()
    r = Raw5(b.port)
    r.connect5("bye")
    b.proc.send_signal(signal.SIGTERM)
    r.expect_disconnect(0x8B)  # Server shutting down, before the connection closes
    assert b.proc.wait(timeout=10) == 0
