# SPDX-License-Identifier: MIT
"""mosquitto's logging options: log_dest, log_type, log_timestamp(_format), connection
messages, -v, the $SYS/broker/log topics and re-opening the log file on SIGHUP."""
import os
import pathlib
import re
import shutil
import tempfile
import signal
import time

import pytest

from conftest import Broker, IS_MOSQUITTO, run, BROKER

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log file layout")


def wait_for_text(path, needle, timeout=5.0):
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
        except OSError:
            text = ""
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not in {path}:\n{text}")


def test_log_dest_file_gets_connection_and_subscribe_lines(broker, client, tmp_path):
    log = tmp_path / "broker.log"
    b = broker(f"log_dest file {log}\nlog_type all")
    c = client(b.port, client_id="logger-1").connect()
    c.subscribe("a/b", qos=1)
    c.unsubscribe("a/b")
    text = wait_for_text(log, "logger-1 a/b")  # the unsubscribe line
    assert re.search(r"^\d+: New client connected from 127\.0\.0\.1:\d+ as logger-1 "
                     r"\(p2, c1, k60\)\.$", text, re.M), text
    assert re.search(r"^\d+: logger-1 1 a/b$", text, re.M), text
    c.disconnect()
    wait_for_text(log, "Client logger-1 disconnected.")


def test_log_type_selects_what_is_written(broker, client, tmp_path):
    log = tmp_path / "broker.log"
    b = broker(f"log_dest file {log}\nlog_type error\nlog_type warning")
    c = client(b.port, client_id="quiet-1").connect()
    c.subscribe("x")
    c.disconnect()
    time.sleep(0.5)
    text = log.read_text()
    assert "quiet-1" not in text
    assert "starting" not in text  # notice


def test_log_timestamp_false_and_custom_format(broker, client, tmp_path):
    plain, fmt = tmp_path / "plain.log", tmp_path / "fmt.log"
    b1 = broker(f"log_dest file {plain}\nlog_timestamp false", name="plain")
    b2 = broker(f"log_dest file {fmt}\nlog_timestamp_format %Y-%m-%dT%H:%M:%S", name="fmt")
    client(b1.port, client_id="ts-1").connect()
    client(b2.port, client_id="ts-2").connect()
    t1 = wait_for_text(plain, "as ts-1")
    assert re.search(r"^New client connected from .* as ts-1 ", t1, re.M), t1
    t2 = wait_for_text(fmt, "as ts-2")
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: New client connected .* as ts-2 ",
                     t2, re.M), t2


def test_connection_messages_false_hides_connects(broker, client, tmp_path):
    log = tmp_path / "broker.log"
    b = broker(f"log_dest file {log}\nconnection_messages false")
    c = client(b.port, client_id="hidden-1").connect()
    c.disconnect()
    time.sleep(0.5)
    text = wait_for_text(log, "running")
    assert "hidden-1" not in text


def test_log_dest_topic_publishes_lines_on_sys_broker_log(broker, client):
    b = broker("log_dest topic\nlog_type all")
    mon = client(b.port).connect()
    mon.subscribe("$SYS/broker/log/#")
    client(b.port, client_id="topic-logged").connect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        msgs = mon.wait_messages(1)
        hits = [m for m in msgs if b"as topic-logged" in m.payload]
        if hits:
            assert hits[0].topic == "$SYS/broker/log/N"
            return
        time.sleep(0.1)
    raise AssertionError(f"no log line on $SYS/broker/log: {[m.payload for m in msgs]}")


def test_topic_log_uses_mosquittos_subscribe_topics_and_never_publishes_debug(broker, client,
                                                                            raw):
    from conftest import PUBACK, ack_pkt
    b = broker("log_dest topic\nlog_type all")
    mon = client(b.port).connect()
    mon.subscribe("$SYS/broker/log/#")
    c = client(b.port, client_id="sub-logged").connect()
    c.subscribe("watched/#")
    c.unsubscribe("watched/#")
    r = raw(b.port)
    r.connect("acker")
    r.send(ack_pkt(PUBACK, 77))  # an unknown packet id: a debug line in the log
    time.sleep(1.0)
    msgs = mon.take()
    topics = {m.topic for m in msgs}
    assert "$SYS/broker/log/M/subscribe" in topics, topics
    assert "$SYS/broker/log/M/unsubscribe" in topics, topics
    assert not [t for t in topics if t.startswith("$SYS/broker/log/D")], topics


def test_log_file_is_reopened_on_sighup(broker, client, tmp_path):
    # Started as root, the broker drops to user 'mosquitto' (as mosquitto does) before the
    # re-open, so the log's folder must be writable by that user.
    logdir = pathlib.Path(tempfile.mkdtemp(prefix="starling-log-"))
    os.chmod(logdir, 0o777)
    log = logdir / "broker.log"
    b = broker(f"log_dest file {log}")
    wait_for_text(log, "running")
    rotated = logdir / "broker.log.1"
    log.rename(rotated)
    b.proc.send_signal(signal.SIGHUP)
    wait_for_text(log, "SIGHUP")  # written to the new file
    client(b.port, client_id="after-rotation").connect()
    wait_for_text(log, "as after-rotation")
    assert "after-rotation" not in rotated.read_text()
    shutil.rmtree(logdir, ignore_errors=True)


def test_log_dest_none_writes_nothing(broker, client):
    b = broker("log_dest none")
    client(b.port, client_id="silent").connect().disconnect()
    time.sleep(0.3)
    assert b.stderr() == ""


def test_log_dest_stdout_and_syslog_are_accepted(broker, client, tmp_path):
    b = broker("log_dest stdout\nlog_dest syslog\nlog_facility 5")
    client(b.port, client_id="to-stdout").connect()
    deadline = time.monotonic() + 5
    while "as to-stdout" not in b.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "as to-stdout" in b.stderr()  # the fixture collects stdout with stderr


def test_verbose_flag_enables_every_log_type(tmp_path, client):
    log = tmp_path / "v.log"
    b = Broker(tmp_path, f"log_dest file {log}\nlog_type error", args=["-v"], name="verbose")
    b.start()
    try:
        c = client(b.port, client_id="verbose-1").connect()
        c.subscribe("v/#")
        wait_for_text(log, "verbose-1 0 v/#")
    finally:
        b.check_clean_exit()


@pytest.mark.parametrize("line, expect", [
    ("log_dest carrier-pigeon", "invalid value 'carrier-pigeon' for log_dest"),
    ("log_dest file", "log_dest file needs a path"),
    ("log_type chatty", "invalid value 'chatty' for log_type"),
    ("log_facility 9", "invalid value '9' for log_facility"),
    ("log_timestamp maybe", "expected true or false"),
])
def test_bad_logging_options_name_file_and_line(tmp_path, line, expect):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 1883 127.0.0.1\n" + line + "\n")
    res = run([BROKER, "-c", str(conf)], timeout=10)
    assert res.returncode != 0
    assert f"{conf}:2: " in res.stderr and expect in res.stderr, res.stderr


def test_unwritable_log_file_is_a_startup_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 1883 127.0.0.1\nlog_dest file /nonexistent/dir/x.log\n")
    res = run([BROKER, "-c", str(conf)], timeout=10)
    assert res.returncode != 0
    assert "Unable to open log file /nonexistent/dir/x.log" in res.stderr, res.stderr


@pytest.mark.skipif(os.path.exists("/dev/log") or os.geteuid() != 0,
                    reason="needs root and no system logger on /dev/log to stand in for it")
def test_log_dest_syslog_uses_the_configured_facility(broker, client):
    import socket as sk
    listener = sk.socket(sk.AF_UNIX, sk.SOCK_DGRAM)
    listener.bind("/dev/log")
    os.chmod("/dev/log", 0o666)  # the broker drops to user 'mosquitto' after start-up
    listener.settimeout(0.5)
    try:
        b = broker("log_dest syslog\nlog_facility 5")
        client(b.port, client_id="via-syslog").connect()
        deadline = time.monotonic() + 5
        lines = []
        while time.monotonic() < deadline:
            try:
                lines.append(listener.recv(4096).decode(errors="replace"))
            except sk.timeout:
                continue
            hits = [l for l in lines if "as via-syslog" in l]
            if hits:
                # <PRI> = facility LOCAL5 (21) * 8 + severity notice (5) = 173
                assert hits[0].startswith("<173>"), hits[0]
                assert "starling" in hits[0]
                return
        raise AssertionError(f"no syslog line for the client: {lines}")
    finally:
        listener.close()
        os.unlink("/dev/log")
