# SPDX-License-Identifier: MIT
"""TLS-PSK (mosquitto's psk_hint and psk_file): mosquitto_pub/sub --psk against a listener
with a pre-shared-key file, the identity as user name, a reload of the keys, and the start-up
errors. The same tests pass against mosquitto 2.0.11 (MQ_BROKER), its log lines aside."""
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BROKER, HOST, IS_MOSQUITTO, _free_port, run, wait_port

MOSQ_PUB = shutil.which("mosquitto_pub")
MOSQ_SUB = shutil.which("mosquitto_sub")
pytestmark = pytest.mark.skipif(MOSQ_PUB is None or MOSQ_SUB is None,
                                reason="needs mosquitto-clients")

KEYS = "# identity:hex key\ndev1:deadbeef0123\ndev2:00112233445566778899aabbccddeeff\n"


@pytest.fixture
def psk_broker(broker, tmp_path):
    """A broker with its plain listener and a PSK one; returns (b, psk_port, psk_file)."""
    def make(extra="", keys=KEYS):
        f = tmp_path / "psk"
        f.write_text(keys)
        port = _free_port()
        # 'user root': the file stays readable for a reload after the privileges are dropped
        b = broker(f"user root\npsk_file {f}\n{extra}\nlistener {port} {HOST}\n"
                   f"psk_hint starling\nallow_anonymous true")
        assert wait_port(port)
        return b, port, f
    return make


def psk_pub(port, identity, key, topic, message, *extra):
    return run([MOSQ_PUB, "-h", HOST, "-p", str(port), "--psk", key, "--psk-identity", identity,
                "-t", topic, "-m", message, "-q", "1", *extra], timeout=10)


class Sub:
    """mosquitto_sub on the plain listener, waiting for 'count' messages."""

    def __init__(self, port, topic, count, *extra):
        self.p = subprocess.Popen([MOSQ_SUB, "-h", HOST, "-p", str(port), "-t", topic, "-v",
                                   "-C", str(count), "-W", "8", *extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.4)  # subscribed before anything is published

    def lines(self):
        out, _ = self.p.communicate(timeout=10)
        return out.split("\n")[:-1]


def test_a_client_with_the_key_publishes_and_others_are_refused(psk_broker):
    b, port, _ = psk_broker()
    sub = Sub(b.port, "p/#", 2)
    assert psk_pub(port, "dev1", "deadbeef0123", "p/1", "tls13").returncode == 0
    assert psk_pub(port, "dev2", "00112233445566778899aabbccddeeff", "p/2", "tls12",
                   "--tls-version", "tlsv1.2").returncode == 0
    assert psk_pub(port, "dev1", "deadbeef0124", "p/x", "wrong key").returncode != 0
    assert psk_pub(port, "nobody", "deadbeef0123", "p/x", "unknown").returncode != 0
    assert sorted(sub.lines()) == ["p/1 tls13", "p/2 tls12"]


def test_use_identity_as_username_gives_the_acl_the_identity(broker, tmp_path):
    keys, acl = tmp_path / "psk", tmp_path / "acl"
    keys.write_text(KEYS)
    acl.write_text("user dev1\ntopic write dev1/#\n\nuser reader\ntopic read #\n")
    port = _free_port()
    b = broker(f"user root\npsk_file {keys}\nacl_file {acl}\nlistener {port} {HOST}\n"
               f"psk_hint starling\nuse_identity_as_username true")
    assert wait_port(port)
    sub = Sub(b.port, "#", 1, "-u", "reader")
    assert psk_pub(port, "dev1", "deadbeef0123", "other/x", "denied").returncode == 0
    assert psk_pub(port, "dev1", "deadbeef0123", "dev1/x", "allowed").returncode == 0
    assert sub.lines() == ["dev1/x allowed"]


@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log line")
def test_sighup_reads_the_keys_again(psk_broker):
    b, port, f = psk_broker()
    assert psk_pub(port, "dev3", "abcdef", "p/3", "before").returncode != 0
    f.write_text(KEYS + "dev3:abcdef\n")
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("certificate and key reloaded")
    assert psk_pub(port, "dev3", "abcdef", "p/3", "after").returncode == 0
    assert psk_pub(port, "dev1", "deadbeef0123", "p/1", "still").returncode == 0


@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's messages")
@pytest.mark.parametrize("lines, why", [
    ("psk_hint starling", "psk_hint needs a psk_file"),
    ("psk_hint starling\npsk_file /nonexistent/psk", "/nonexistent/psk"),
])
def test_a_psk_listener_that_cannot_work_stops_the_start(tmp_path, lines, why):
    conf = tmp_path / "psk.conf"
    conf.write_text(f"listener {_free_port()} {HOST}\nallow_anonymous true\n{lines}\n")
    r = subprocess.run([BROKER, "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert why in r.stderr, r.stderr
