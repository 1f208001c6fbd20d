# SPDX-License-Identifier: MIT
"""The starling command line, configuration errors, daemon mode and signals (mosquitto(8))."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (BROKER, HOST, IS_MOSQUITTO, WORKERS, _free_port, check_stderr_text,
                      host_has_ipv6, listen_sockets, port_closed, roundtrip_ok, run, wait_port)

pytestmark = pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's own command line")


def conf(tmp_path, text, name="s.conf"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def start(args, tmp_path, name="cli"):
    errf = open(tmp_path / f"{name}.stderr", "wb")
    proc = subprocess.Popen([BROKER] + args, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
    proc.errf = errf
    proc.errpath = tmp_path / f"{name}.stderr"
    return proc


def stop(proc, sig=signal.SIGTERM, timeout=10):
    try:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            raise AssertionError("broker did not exit after the signal")
    finally:
        proc.errf.close()


def listening(port):
    """Local addresses (hex as in /proc/net/tcp*) that LISTEN on 'port'."""
    return [addr for _, addr in listen_sockets(port)]


def test_help_exits_0_with_usage():
    r = run([BROKER, "-h"])
    assert r.returncode == 0
    assert "Usage: starling" in r.stdout
    assert "MQTT v5.0/v3.1.1/v3.1 broker" in r.stdout  # mosquitto's words; all three are spoken
    assert "-c" in r.stdout and "-p" in r.stdout and "-d" in r.stdout
    r = run([BROKER, "--help"])
    assert r.returncode == 0 and "Usage" in r.stdout


@pytest.mark.parametrize("args", [["-z"], ["--bogus"], ["extra-arg"], ["-c"], ["-p"]])
def test_bad_option_exits_nonzero(args):
    r = run([BROKER] + args)
    assert r.returncode != 0
    assert r.stderr
    assert "Usage" in r.stderr or "Error" in r.stderr


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-5", "12x"])
def test_invalid_port_exits_1(port):
    r = run([BROKER, "-p", port])
    assert r.returncode == 1
    assert "Invalid port" in r.stderr


def test_unknown_config_option_names_file_and_line(tmp_path):
    path = conf(tmp_path, "# comment\n\nno_such_option 1\n")
    r = run([BROKER, "-c", path])
    assert r.returncode != 0
    assert f"{path}:3" in r.stderr
    assert "no_such_option" in r.stderr


@pytest.mark.parametrize("line", ["max_qos 7", "max_inflight_messages lots",
                                  "allow_anonymous maybe", "listener 70000",
                                  "workers -3", "max_packet_size 10", "sys_interval x"])
def test_bad_config_value_names_file_and_line(tmp_path, line):
    path = conf(tmp_path, f"listener {_free_port()} {HOST}\n{line}\n")
    r = run([BROKER, "-c", path])
    assert r.returncode != 0
    assert f"{path}:2" in r.stderr
    assert line.split()[0] in r.stderr


@pytest.mark.parametrize("opt", ["auth_plugin /x.so", "tls_engine x", "dhparamfile /x",
                                 "ocsp_stapling true", "use_unix_socket true"])
def test_unimplemented_mosquitto_option_is_refused_by_name(tmp_path, opt):
    path = conf(tmp_path, f"listener {_free_port()} {HOST}\nallow_anonymous true\n{opt}\n")
    r = run([BROKER, "-c", path])
    assert r.returncode != 0
    assert f"{path}:3" in r.stderr
    assert opt.split()[0] in r.stderr


def test_error_in_included_file_names_that_file(tmp_path):
    d = tmp_path / "conf.d"
    d.mkdir()
    (d / "a.conf").write_text("max_qos 1\nwhatever 3\n")
    path = conf(tmp_path, f"listener {_free_port()} {HOST}\ninclude_dir {d}\n")
    r = run([BROKER, "-c", path])
    assert r.returncode != 0
    assert f"{d}/a.conf:2" in r.stderr


def test_missing_config_file_exits_nonzero(tmp_path):
    path = str(tmp_path / "absent.conf")
    r = run([BROKER, "-c", path])
    assert r.returncode != 0
    assert path in r.stderr


def test_port_option_without_config_listens_on_loopback_only(tmp_path):
    port = _free_port()
    proc = start(["-p", str(port)], tmp_path)
    try:
        assert wait_port(port, 5, proc)
        addrs = listening(port)
        assert "0100007F" in addrs, addrs  # 127.0.0.1
        assert "00000000" not in addrs and "00000000000000000000000000000000" not in addrs
        assert roundtrip_ok(port)
        if host_has_ipv6():  # and ::1, as mosquitto 2's local-only mode
            assert "00000000000000000000000001000000" in addrs, addrs
            with socket.socket(socket.AF_INET6) as s:
                s.settimeout(2)
                assert s.connect_ex(("::1", port)) == 0
    finally:
        rc = stop(proc)
    err = proc.errpath.read_text(errors="replace")
    check_stderr_text(err)
    assert rc == 0
    assert f"Opening ipv4 listen socket on port {port}." in err
    assert host_has_ipv6() == (f"Opening ipv6 listen socket on port {port}." in err)


def test_port_option_adds_a_listener_to_configured_ones(tmp_path):
    p1, p2 = _free_port(), _free_port()
    path = conf(tmp_path, f"listener {p1} {HOST}\nallow_anonymous true\nworkers {WORKERS}\n")
    proc = start(["-c", path, "-p", str(p2)], tmp_path)
    try:
        assert wait_port(p1, 5, proc)
        assert wait_port(p2, 5, proc)
        assert roundtrip_ok(p1) and roundtrip_ok(p2)
    finally:
        rc = stop(proc)
    assert rc == 0


def test_listener_port_in_use_exits_nonzero(tmp_path):
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen(1)
        port = s.getsockname()[1]
        path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\n")
        r = run([BROKER, "-c", path], timeout=10)
        assert r.returncode != 0
        check_stderr_text(r.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0(tmp_path, sig):
    port = _free_port()
    path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\nworkers {WORKERS}\n")
    proc = start(["-c", path], tmp_path)
    assert wait_port(port, 5, proc)
    assert roundtrip_ok(port)
    t0 = time.monotonic()
    rc = stop(proc, sig)
    assert rc == 0
    assert time.monotonic() - t0 < 5
    err = proc.errpath.read_text(errors="replace")
    check_stderr_text(err)
    assert "terminating" in err
    assert port_closed(port, 2)


def test_signal_exits_0_with_connected_clients(tmp_path, client):
    port = _free_port()
    path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\nworkers {WORKERS}\n")
    proc = start(["-c", path], tmp_path)
    assert wait_port(port, 5, proc)
    cs = [client(port, f"c{i}", clean_session=False) for i in range(8)]
    for c in cs:
        c.c.reconnect_delay_set(30, 30)
        c.connect()
        c.subscribe("x/#", 1)
    rc = stop(proc, signal.SIGTERM)
    assert rc == 0
    check_stderr_text(proc.errpath.read_text(errors="replace"))


def test_sighup_does_not_stop_the_broker(tmp_path):
    port = _free_port()
    path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\nworkers {WORKERS}\n")
    proc = start(["-c", path], tmp_path)
    try:
        assert wait_port(port, 5, proc)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert proc.poll() is None
        assert roundtrip_ok(port)
    finally:
        rc = stop(proc)
    assert rc == 0


def test_verbose_flag_logs_and_runs(tmp_path):
    port = _free_port()
    path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\nworkers {WORKERS}\n")
    proc = start(["-c", path, "-v"], tmp_path)
    try:
        assert wait_port(port, 5, proc)
        assert roundtrip_ok(port)
    finally:
        rc = stop(proc)
    assert rc == 0
    assert "running" in proc.errpath.read_text(errors="replace")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its new parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_daemon_mode_writes_pid_file_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    pidf = tmp_path / "starling.pid"
    # as root the broker drops to user 'mosquitto' after writing the pid file, and could
    # then not remove it from pytest's private (0700) directory: stay root for this test
    user = "user root\n" if os.geteuid() == 0 else ""
    path = conf(tmp_path, f"listener {port} {HOST}\nallow_anonymous true\n"
                          f"workers {WORKERS}\npid_file {pidf}\n{user}")
    r = run([BROKER, "-d", "-c", path], timeout=10)
    assert r.returncode == 0, r.stderr
    pid = None
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not pidf.exists():
            time.sleep(0.05)
        assert pidf.exists(), "no pid file"
        time.sleep(0.05)
        pid = int(pidf.read_text().strip())
        assert wait_port(port, 5)
        assert roundtrip_ok(port)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.05)
        assert not _pid_alive(pid), "daemon did not exit on SIGTERM"
        pid = None
        assert port_closed(port, 2)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and pidf.exists():
            time.sleep(0.05)
        assert not pidf.exists(), "pid file not removed at exit"
    finally:
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
