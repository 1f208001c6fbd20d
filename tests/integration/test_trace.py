# SPDX-License-Identifier: MIT
"""Packet traces (-v, log_type debug): one line per packet in and out, in mosquitto's words,
so that the scripts operators grep mosquitto's log with work on Starling's. Runs against
mosquitto too (MQ_BROKER=/usr/sbin/mosquitto): the lines checked here are its lines."""
import re
import time

from conftest import IS_MOSQUITTO


def wait_lines(path, patterns, timeout=5.0):
    """Waits until every regex in 'patterns' matches a line of the file; returns its text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
        except OSError:
            text = ""
        if all(re.search(p, text, re.M) for p in patterns):
            return text
        time.sleep(0.05)
    missing = [p for p in patterns if not re.search(p, text, re.M)]
    raise AssertionError(f"lines missing {missing} in:\n{text[-6000:]}")


def debug_broker(broker, tmp_path, types=("all",)):
    """A broker logging to stderr (mosquitto, started as root, could not write a file of the
    test's directory once it drops privileges); returns it and the file its stderr goes to."""
    lines = ["log_dest stderr", "log_timestamp false"] + [f"log_type {t}" for t in types]
    b = broker("\n".join(lines))
    return b, b.err_path


def test_publish_flow_at_qos_1_and_2_is_traced_both_ways(broker, client, tmp_path):
    b, log = debug_broker(broker, tmp_path)
    sub = client(b.port, client_id="tr-sub").connect()
    sub.subscribe("a/#", qos=2)
    pub = client(b.port, client_id="tr-pub").connect()
    pub.publish("a/b", b"hello", qos=1)
    pub.publish("a/c", b"hi", qos=2)
    sub.wait_messages(2)
    wait_lines(log, [
        r"^Sending CONNACK to tr-sub \(0, 0\)$",
        r"^Received SUBSCRIBE from tr-sub$",
        r"^\ta/# \(QoS 2\)$",
        r"^tr-sub 2 a/#$",
        r"^Sending SUBACK to tr-sub$",
        r"^Received PUBLISH from tr-pub \(d0, q1, r0, m\d+, 'a/b', \.\.\. \(5 bytes\)\)$",
        r"^Sending PUBACK to tr-pub \(m\d+, rc0\)$",
        r"^Sending PUBLISH to tr-sub \(d0, q1, r0, m\d+, 'a/b', \.\.\. \(5 bytes\)\)$",
        r"^Received PUBACK from tr-sub \(Mid: \d+, RC:0\)$",
        r"^Received PUBLISH from tr-pub \(d0, q2, r0, m\d+, 'a/c', \.\.\. \(2 bytes\)\)$",
        r"^Sending PUBREC to tr-pub \(m\d+, rc0\)$",
        r"^Received PUBREL from tr-pub \(Mid: \d+\)$",
        r"^Sending PUBCOMP to tr-pub \(m\d+\)$",
        r"^Sending PUBLISH to tr-sub \(d0, q2, r0, m\d+, 'a/c', \.\.\. \(2 bytes\)\)$",
        r"^Received PUBREC from tr-sub \(Mid: \d+\)$",
        r"^Sending PUBREL to tr-sub \(m\d+\)$",
        r"^Received PUBCOMP from tr-sub \(Mid: \d+, RC:0\)$",
    ])


def test_unsubscribe_ping_and_disconnect_are_traced(broker, client, tmp_path):
    b, log = debug_broker(broker, tmp_path)
    c = client(b.port, client_id="tr-2").connect(keepalive=1)
    c.subscribe("x/y", qos=0)
    c.unsubscribe("x/y")
    time.sleep(1.6)  # paho pings after the keep-alive interval
    c.disconnect()
    wait_lines(log, [
        r"^Received UNSUBSCRIBE from tr-2$",
        r"^\tx/y$",
        r"^Sending UNSUBACK to tr-2$",
        r"^Received PINGREQ from tr-2$",
        r"^Sending PINGRESP to tr-2$",
        r"^Received DISCONNECT from tr-2$",
    ])


def test_no_packet_lines_without_debug(broker, client, tmp_path):
    b, log = debug_broker(broker, tmp_path, types=("notice", "subscribe"))
    c = client(b.port, client_id="tr-3").connect()
    c.subscribe("q", qos=1)
    c.publish("q", b"x", qos=1)
    c.wait_messages(1)
    text = wait_lines(log, [r"^tr-3 1 q$"])
    time.sleep(0.3)
    text = log.read_text()
    assert not re.search(r"^(Received|Sending) ", text, re.M), text
