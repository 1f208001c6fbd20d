# SPDX-License-Identifier: MIT
"""password_file, allow_anonymous, per_listener_settings, session ownership and SIGHUP reload.

Password files are written by starling-passwd and by Debian's mosquitto_passwd; clients are raw
sockets (exact CONNACK codes), paho-mqtt and mosquitto_pub. mosquitto 2.0 answers every refused
CONNECT of 3.1.1 with 0x05 (not authorised), whatever the reason; so does Starling. A client id
taken by another user is refused with 0x02 (Starling's session_owner_check).
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import (BROKER, HOST, IS_MOSQUITTO, PINGREQ_PKT, PINGRESP_PKT, Client, _free_port,
                      connack_bytes, connect_pkt, run)

TOOL = os.environ.get("MQ_PASSWD_TOOL") or os.path.join(
    os.path.dirname(BROKER), "..", "tools", "starling-passwd")
MOSQ_PASSWD = shutil.which("mosquitto_passwd")
MOSQ_PUB = shutil.which("mosquitto_pub")

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's own options and behaviour")
needs_tool = pytest.mark.skipif(not os.path.exists(TOOL), reason="starling-passwd not built")
needs_mosq = pytest.mark.skipif(not (MOSQ_PASSWD and MOSQ_PUB),
                                reason="mosquitto_passwd / mosquitto_pub absent")


def make_pw(path, users, prog=None):
    """Writes a password file with 'users' {name: password} through starling-passwd (or prog)."""
    first = True
    for user, password in users.items():
        args = [prog or TOOL] + (["-c"] if first else []) + ["-b", str(path), user, password]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        first = False
    return path


def login(port, client_id, user=None, password=None, clean=True):
    """CONNECT over a raw socket; returns (3.1.1 return code, the socket)."""
    from conftest import Raw
    r = Raw(port)
    r.send(connect_pkt(client_id, clean=clean, username=user, password=password))
    first, body, raw = r.recv_packet()
    assert first == 0x20 and len(body) == 2, f"bad CONNACK {raw!r}"
    return body[1], r


def rc_of(port, client_id, user=None, password=None):
    rc, r = login(port, client_id, user, password)
    if rc != 0:
        assert r.wait_closed(), "a refused CONNECT closes the connection"
    r.close()
    return rc


def alive(r):
    r.send(PINGREQ_PKT)
    r.expect(PINGRESP_PKT)


# --- password_file --------------------------------------------------------------------------

def check_logins(port):
    assert rc_of(port, "a1", "alice", "secret") == 0
    assert rc_of(port, "a2", "alice", "Secret") == 5, "wrong password"
    assert rc_of(port, "a3", "alice") == 5, "no password"
    assert rc_of(port, "a4", "mallory", "secret") == 5, "unknown user"
    assert rc_of(port, "a5", "bob", "hunter2") == 0


@needs_tool
def test_password_file_from_starling_passwd(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret", "bob": "hunter2"})
    b = broker(f"password_file {pw}\nallow_anonymous false")
    check_logins(b.port)
    assert rc_of(b.port, "anon") == 5, "anonymous refused with allow_anonymous false"


@needs_mosq
def test_password_file_from_mosquitto_passwd_with_mosquitto_pub(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret", "bob": "hunter2"}, prog=MOSQ_PASSWD)
    b = broker(f"password_file {pw}\nallow_anonymous false")
    check_logins(b.port)

    def pub(*auth):
        return run([MOSQ_PUB, "-h", HOST, "-p", str(b.port), "-V", "mqttv311", "-t", "t",
                    "-m", "x", *auth]).returncode
    assert pub("-u", "alice", "-P", "secret") == 0
    assert pub("-u", "alice", "-P", "nope") != 0
    assert pub() != 0


def test_a_line_hashing_the_empty_password_authenticates_nobody(broker, tmp_path):
    """As in mosquitto (which reads a zero-length password as none; its CVE-2018 test)."""
    pw = tmp_path / "pw"
    pw.write_text("empty:$6$o+53eGXtmlfHeYrg$FY7X9DNQ4uU1j0NiPmGOOSU05ZSzhqNmNhXIof/0nLpVb1zDhc"
                  "RHdaC72E3YryH7dtTiG/r6jH6C8J+30cZBgA==\n")  # sha512("" + salt)
    b = broker(f"password_file {pw}\nallow_anonymous false")
    assert rc_of(b.port, "e1", "empty", "") == 5
    assert rc_of(b.port, "e2", "empty") == 5
    assert rc_of(b.port, "e3", "empty", "x") == 5


@needs_tool
def test_anonymous_allowed_beside_a_password_file(broker, tmp_path, client):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    b = broker(f"password_file {pw}\nallow_anonymous true")
    assert rc_of(b.port, "anon") == 0
    assert rc_of(b.port, "a1", "alice", "wrong") == 5, "a user name is always checked"
    c = client(b.port, "paho-alice")
    c.c.username_pw_set("alice", "secret")
    c.connect()
    c2 = client(b.port, "paho-bad")
    c2.c.username_pw_set("alice", "bad")
    c2.connect(expect_rc=5)


def test_user_name_without_password_file_needs_allow_anonymous(broker):
    b = broker("allow_anonymous false")
    assert rc_of(b.port, "u1", "alice", "whatever") == 5
    b2 = broker("allow_anonymous true")
    assert rc_of(b2.port, "u1", "alice", "whatever") == 0


@needs_tool
def test_reconnects_with_the_same_credentials_are_served_again(broker, tmp_path):
    """The second login of a user takes the verified-credentials cache; both must succeed and a
    wrong password must still fail after a success."""
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    b = broker(f"password_file {pw}\nallow_anonymous false")
    for i in range(5):
        assert rc_of(b.port, "same", "alice", "secret") == 0
        assert rc_of(b.port, "same", "alice", "secret!") == 5


# --- per_listener_settings -------------------------------------------------------------------

@needs_tool
def test_per_listener_settings_two_listeners(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    p2 = _free_port()
    b = broker(["per_listener_settings true", "auto_id_prefix one-",
                f"listener {p2} {HOST}", "allow_anonymous false", f"password_file {pw}",
                "allow_zero_length_clientid false"])
    # the first listener: anonymous, no password file
    assert rc_of(b.port, "anon") == 0
    assert rc_of(b.port, "x1", "anyone", "anything") == 0
    assert rc_of(b.port, "") == 0, "zero-length ids allowed there"
    # the second: password file, no anonymous, no zero-length ids
    assert rc_of(p2, "anon") == 5
    assert rc_of(p2, "x2", "alice", "secret") == 0
    assert rc_of(p2, "x3", "alice", "wrong") == 5
    assert rc_of(p2, "", "alice", "secret") == 2


@needs_tool
def test_without_per_listener_settings_the_options_are_global(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    p2 = _free_port()
    b = broker([f"listener {p2} {HOST}", "allow_anonymous false", f"password_file {pw}"])
    for port in (b.port, p2):
        assert rc_of(port, "anon") == 5
        assert rc_of(port, "x", "alice", "secret") == 0


# --- sessions belong to their user -----------------------------------------------------------

@needs_tool
def test_take_over_by_another_user_is_refused(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret", "bob": "hunter2"})
    b = broker(f"password_file {pw}\nallow_anonymous true")
    rc, a = login(b.port, "dev-1", "alice", "secret", clean=False)
    assert rc == 0
    rc, m = login(b.port, "dev-1", "bob", "hunter2", clean=False)
    assert rc == 2, "another user's client id: identifier rejected"
    assert m.wait_closed()
    assert rc_of(b.port, "dev-1") == 2, "an anonymous client is another user too"
    alive(a)  # the owner stays connected
    rc, a2 = login(b.port, "dev-1", "alice", "secret", clean=False)
    assert rc == 0, "the owner may take its own session over"
    assert a.wait_closed()
    a2.close()
    time.sleep(0.2)
    rc, m = login(b.port, "dev-1", "bob", "hunter2", clean=True)
    assert rc == 2, "an offline session is still alice's, clean start or not"


@needs_tool
def test_session_owner_check_false_restores_the_old_take_over(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret", "bob": "hunter2"})
    b = broker(f"password_file {pw}\nallow_anonymous true\nsession_owner_check false")
    rc, a = login(b.port, "dev-1", "alice", "secret", clean=False)
    assert rc == 0
    rc, m = login(b.port, "dev-1", "bob", "hunter2", clean=False)
    assert rc == 0
    assert a.wait_closed(), "taken over, as mosquitto does"
    alive(m)


def test_no_password_file_means_no_ownership_by_default(broker):
    b = broker()
    rc, a = login(b.port, "dev-1", "alice", "x", clean=False)
    assert rc == 0
    rc, m = login(b.port, "dev-1", "bob", "y", clean=False)
    assert rc == 0, "unauthenticated names own nothing"
    assert a.wait_closed()


# --- reload ----------------------------------------------------------------------------------

@needs_tool
def test_sighup_adds_and_removes_users_and_keeps_connections(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    b = broker(f"password_file {pw}\nallow_anonymous false\nuser root")  # see test_acl.py
    rc, a = login(b.port, "alice-1", "alice", "secret")
    assert rc == 0
    assert rc_of(b.port, "bob-1", "bob", "hunter2") == 5
    make_pw(pw, {"bob": "hunter2"})  # alice removed, bob added
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("password_file and acl_file re-read")
    assert rc_of(b.port, "bob-2", "bob", "hunter2") == 0
    assert rc_of(b.port, "alice-2", "alice", "secret") == 5, "removed: the cache is gone too"
    alive(a)  # existing connections stay


def padded_pw(path, real, filler_line, n):
    """A password file with the lines of 'real' (a starling-passwd file) and 'n' more users
    that reuse 'filler_line''s hash: long enough that a reload takes a while to read it."""
    name, _, rest = filler_line.partition(":")
    body = "".join(f"{name}-{i}:{rest}\n" for i in range(n))
    path.write_text(real.read_text() + body)


@needs_tool
def test_a_connect_right_after_sighup_meets_the_new_rules(broker, tmp_path):
    """Once kill -HUP has returned, a CONNECT is decided by the files as they are then, as in
    mosquitto's single loop, which handles the signal before its next connection: the CONNECT
    waits while the control thread reads them. With 20,000 lines to read, that window (about
    20 ms here, 150 ms under ThreadSanitizer) is long enough that a CONNECT decided by the old
    table would get the old answer."""
    users = {"alice": "secret", "bob": "hunter2"}
    files = {u: make_pw(tmp_path / u, {u: users[u]}) for u in users}
    filler = files["alice"].read_text().splitlines()[0]
    pw = tmp_path / "pw"
    padded_pw(pw, files["alice"], filler, 20000)
    b = broker(f"password_file {pw}\nallow_anonymous false\nuser root")
    assert rc_of(b.port, "a0", "alice", "secret") == 0
    for i, (new, old) in enumerate([("bob", "alice"), ("alice", "bob")] * 2):
        padded_pw(pw, files[new], filler, 20000)
        b.proc.send_signal(signal.SIGHUP)  # returns once the signal is pending
        t0 = time.monotonic()
        assert rc_of(b.port, f"n{i}", new, users[new]) == 0, f"round {i}: {new} met the old rules"
        assert rc_of(b.port, f"o{i}", old, users[old]) == 5, f"round {i}: {old} met the old rules"
        assert time.monotonic() - t0 < 5
    assert b.wait_log("password_file and acl_file re-read")


@needs_tool
def test_two_connects_with_one_id_during_a_reload_keep_their_order(broker, tmp_path):
    """Two CONNECTs with one client id that come while a reload is read both wait for it, and
    are then taken in the order they came: the later one keeps the session. One worker: with
    several, the two connections may reach the session's owner through different workers, in
    either order, 10 ms apart or not (as without a reload)."""
    from conftest import Raw
    alice = make_pw(tmp_path / "alice", {"alice": "secret"})
    pw = tmp_path / "pw"
    padded_pw(pw, alice, alice.read_text().splitlines()[0], 20000)
    b = broker(f"password_file {pw}\nallow_anonymous false\nuser root", workers=1)
    for i in range(3):
        b.proc.send_signal(signal.SIGHUP)
        first = Raw(b.port)
        first.send(connect_pkt(f"same-{i}", username="alice", password="secret"))
        time.sleep(0.01)
        later = Raw(b.port)
        later.send(connect_pkt(f"same-{i}", username="alice", password="secret"))
        assert later.recv_packet()[1][1] == 0, "the later CONNECT is accepted"
        assert first.recv_packet()[1][1] == 0, "the earlier one was accepted first"
        assert first.wait_closed(), "the earlier connection is taken over"
        alive(later)
        later.close()
        assert b.wait_log(f"as same-{i}")


@needs_tool
def test_bad_password_lines_are_reported_and_skipped(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    with open(pw, "a") as f:
        f.write("broken line without colon\nbob:$7$notahash\n")
    b = broker(f"password_file {pw}\nallow_anonymous false")
    assert b.wait_log(f"{pw}:2:")
    assert b.wait_log(f"{pw}:3:")
    assert rc_of(b.port, "a", "alice", "secret") == 0


def start_fails(tmp_path, extra):
    port = _free_port()
    conf = tmp_path / "bad.conf"
    conf.write_text(f"listener {port} {HOST}\nworkers 1\n{extra}\n")
    r = run([BROKER, "-c", str(conf)])
    assert r.returncode != 0
    return r.stderr


def test_missing_password_file_refuses_to_start(tmp_path):
    err = start_fails(tmp_path, f"password_file {tmp_path}/nope")
    assert f"{tmp_path}/nope" in err and "No such file or directory" in err


def test_unreadable_acl_file_refuses_to_start(tmp_path):
    d = tmp_path / "a-directory"
    d.mkdir()
    err = start_fails(tmp_path, f"acl_file {d}")
    assert str(d) in err


def test_bad_acl_line_refuses_to_start(tmp_path):
    acl = tmp_path / "acl"
    acl.write_text("topic read a/#\nfrobnicate b\n")
    err = start_fails(tmp_path, f"acl_file {acl}")
    assert f"{acl}:2:" in err


@needs_tool
def test_bad_file_on_reload_keeps_the_old_rules(broker, tmp_path):
    pw = make_pw(tmp_path / "pw", {"alice": "secret"})
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite a/#\n")
    b = broker(f"password_file {pw}\nacl_file {acl}\nallow_anonymous false\nuser root")
    acl.write_text("user alice\ntopic bogus-access-line\ntpoic a/#\n")
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("the previous rules stay in force")
    assert f"{acl}:3:" in b.stderr()
    assert rc_of(b.port, "a", "alice", "secret") == 0
    pw.unlink()
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("No such file or directory")
    assert rc_of(b.port, "a", "alice", "secret") == 0, "the old password table stays"
