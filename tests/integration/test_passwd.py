# SPDX-License-Identifier: MIT
"""starling-passwd against Debian's mosquitto_passwd and mosquitto: files go both ways.

Files written by starling-passwd are read by core/passwd (the passwd_verify helper) and by a
real mosquitto (password_file, allow_anonymous false; mosquitto_pub -u/-P accepted with the
right password, refused with a wrong one). Files written by mosquitto_passwd are read by the
helper and edited by starling-passwd. The interactive prompt runs on a pty. Error messages and
exit codes are compared with mosquitto_passwd's.
"""
import os
import pty
import select
import shutil
import subprocess
import time

import pytest

from conftest import HOST, _free_port, wait_port

TOOL = os.environ.get("MQ_PASSWD_TOOL")
VERIFY = os.environ.get("MQ_PASSWD_VERIFY")
MOSQ_PASSWD = shutil.which("mosquitto_passwd")
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
MOSQ_PUB = shutil.which("mosquitto_pub")

pytestmark = pytest.mark.skipif(not TOOL or not VERIFY,
                                reason="MQ_PASSWD_TOOL / MQ_PASSWD_VERIFY not set (tools off)")
needs_mosquitto = pytest.mark.skipif(not (MOSQ_PASSWD and MOSQUITTO and MOSQ_PUB),
                                     reason="Debian's mosquitto and mosquitto-clients absent")


def tool(*args, prog=None):
    return subprocess.run([prog or TOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=20, stdin=subprocess.DEVNULL)


def verify(path, user, password):
    """0 right password, 1 unknown user, 2 wrong password (core/passwd via the helper)."""
    return subprocess.run([VERIFY, str(path), user, password], capture_output=True, text=True,
                          timeout=20).returncode


class Mosquitto:
    """Debian's mosquitto on a free 127.0.0.1 port, requiring a password from every client."""

    def __init__(self, tmp_path, pwfile):
        self.port = _free_port()
        conf = tmp_path / "mosquitto.conf"
        conf.write_text(f"listener {self.port} {HOST}\nallow_anonymous false\n"
                        f"password_file {pwfile}\nuser root\npersistence false\n")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        assert wait_port(self.port, proc=self.proc), "mosquitto did not start"

    def login(self, user, password):
        r = subprocess.run([MOSQ_PUB, "-h", HOST, "-p", str(self.port), "-u", user, "-P",
                            password, "-t", "t", "-m", "x", "-V", "mqttv311"],
                           capture_output=True, text=True, timeout=20)
        return r.returncode

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def mosquitto_with(tmp_path):
    started = []

    def start(pwfile):
        m = Mosquitto(tmp_path, pwfile)
        started.append(m)
        return m
    yield start
    for m in started:
        m.stop()


@needs_mosquitto
def test_files_written_by_starling_passwd_work_in_mosquitto_and_in_core(tmp_path, mosquitto_with):
    pw = tmp_path / "pw"
    assert tool("-c", "-b", pw, "alice", "secret").returncode == 0
    assert tool("-b", "-H", "sha512", pw, "bob", "hunter2").returncode == 0
    assert tool("-b", "-I", "1000", pw, "carol", "p\u00e4ss w:rd").returncode == 0
    assert oct(pw.stat().st_mode & 0o777) == "0o600"
    lines = pw.read_text().splitlines()
    assert lines[0].startswith("alice:$7$101$")
    assert lines[1].startswith("bob:$6$")
    assert lines[2].startswith("carol:$7$1000$")

    for user, good in (("alice", "secret"), ("bob", "hunter2"), ("carol", "p\u00e4ss w:rd")):
        assert verify(pw, user, good) == 0, user
        assert verify(pw, user, good + "x") == 2, user
    assert verify(pw, "dave", "secret") == 1

    m = mosquitto_with(pw)
    assert m.login("alice", "secret") == 0
    assert m.login("bob", "hunter2") == 0
    assert m.login("carol", "p\u00e4ss w:rd") == 0
    assert m.login("alice", "Secret") != 0
    assert m.login("bob", "secret") != 0
    assert m.login("nobody", "secret") != 0


@needs_mosquitto
def test_files_written_by_mosquitto_passwd_are_read_and_edited(tmp_path, mosquitto_with):
    pw = tmp_path / "pw"
    mosq = MOSQ_PASSWD
    assert tool("-c", "-b", pw, "alice", "secret", prog=mosq).returncode == 0
    assert tool("-b", "-H", "sha512", pw, "bob", "hunter2", prog=mosq).returncode == 0
    assert tool("-b", "-I", "500", pw, "carol", "c-pw", prog=mosq).returncode == 0
    assert verify(pw, "alice", "secret") == 0
    assert verify(pw, "bob", "hunter2") == 0
    assert verify(pw, "carol", "c-pw") == 0
    assert verify(pw, "carol", "secret") == 2

    # starling-passwd edits mosquitto's file: delete one, change one, add one
    assert tool("-D", pw, "bob").returncode == 0
    assert tool("-b", pw, "alice", "new-secret").returncode == 0
    assert tool("-b", pw, "dave", "d-pw").returncode == 0
    assert [l.split(":")[0] for l in pw.read_text().splitlines()] == ["alice", "carol", "dave"]
    assert verify(pw, "bob", "hunter2") == 1
    assert verify(pw, "alice", "new-secret") == 0
    assert verify(pw, "carol", "c-pw") == 0, "untouched lines are kept byte for byte"

    # and mosquitto_passwd edits starling-passwd's result, which mosquitto then accepts
    assert tool("-D", pw, "dave", prog=mosq).returncode == 0
    m = mosquitto_with(pw)
    assert m.login("alice", "new-secret") == 0
    assert m.login("carol", "c-pw") == 0
    assert m.login("dave", "d-pw") != 0
    assert m.login("alice", "secret") != 0


@needs_mosquitto
def test_plain_text_files_are_converted_with_U(tmp_path, mosquitto_with):
    pw = tmp_path / "pw"
    pw.write_text("# users\nu1:first pw\n\nu2: second \n")
    r = tool("-U", pw)
    assert r.returncode == 0, r.stderr
    text = pw.read_text()
    assert "first pw" not in text and "second" not in text
    assert text.startswith("# users\nu1:$7$101$")
    assert verify(pw, "u1", "first pw") == 0
    assert verify(pw, "u2", "second") == 0, "blanks around the password are trimmed"
    m = mosquitto_with(pw)
    assert m.login("u1", "first pw") == 0
    assert m.login("u2", "second") == 0
    assert m.login("u2", " second ") != 0


@needs_mosquitto
def test_errors_and_exit_codes_match_mosquitto_passwd(tmp_path):
    pw = tmp_path / "pw"
    assert tool("-c", "-b", pw, "alice", "secret").returncode == 0
    corrupt = tmp_path / "corrupt"
    corrupt.write_text("alice:$6$x$y\nno colon here\n")
    missing = tmp_path / "missing"
    cases = [
        ["-c", "-D", pw, "u"],
        ["-c", "-U", pw],
        ["-D", "-U", pw],
        ["-b", "-D", pw, "u"],
        ["-H", "md5", pw, "u"],
        ["-H"],
        ["-I", "0", "-b", pw, "u", "p"],
        ["-c", "-b", pw, "u"],
        ["-c", pw],
        ["-D", pw],
        ["-U", pw, "extra"],
        ["-b", pw, "a:b", "p"],
        ["-b", pw, "a\tb", "p"],
        ["-D", pw, "nobody"],
        ["-D", corrupt, "alice"],
        ["-D", missing, "alice"],
    ]
    for args in cases:
        ours, theirs = tool(*args), tool(*args, prog=MOSQ_PASSWD)
        assert ours.returncode == theirs.returncode, args
        assert ours.stderr == theirs.stderr, args
    assert tool().returncode == tool(prog=MOSQ_PASSWD).returncode == 1


def run_on_pty(args, answers):
    """Runs the tool on a pty, typing each answer after the prompt before it; returns the exit
    code and everything it wrote to the terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(TOOL, [TOOL, *map(str, args)])
    out = b""
    typed = 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        # both prompts end in "assword: "; answer each one once
        if typed < len(answers) and out.count(b"assword: ") > typed:
            os.write(fd, answers[typed].encode() + b"\n")
            typed += 1
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


def test_interactive_prompt_asks_twice_without_echo(tmp_path):
    pw = tmp_path / "pw"
    rc, out = run_on_pty(["-c", pw, "alice"], ["s3cret word", "s3cret word"])
    assert rc == 0, out
    assert "Password:" in out and "Reenter password:" in out
    assert "s3cret" not in out, "the password was echoed"
    assert verify(pw, "alice", "s3cret word") == 0

    rc, out = run_on_pty([pw, "bob"], ["one", "two"])
    assert rc == 2 and "Error: Passwords do not match." in out
    assert verify(pw, "bob", "one") == 1

    rc, out = run_on_pty([pw, "bob"], [""])
    assert rc == 1 and "Error: Empty password." in out

    rc, out = run_on_pty([pw, "bob"], ["b-pw", "b-pw"])
    assert rc == 0
    assert verify(pw, "bob", "b-pw") == 0 and verify(pw, "alice", "s3cret word") == 0
