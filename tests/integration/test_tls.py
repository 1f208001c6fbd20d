# SPDX-License-Identifier: MIT
"""TLS listeners (mosquitto's certfile/keyfile/cafile/... options): mosquitto_pub/sub, paho's
tls_set and openssl s_client against certificates made here with the openssl command."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (BROKER, HOST, IS_MOSQUITTO, CONNACK, Client, _free_port, connect_pkt,
                      packet, roundtrip_ok, run)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

MOSQ_PUB = shutil.which("mosquitto_pub")
MOSQ_SUB = shutil.which("mosquitto_sub")


# --- certificates -----------------------------------------------------------------------------

def _ossl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def _key(d, name):
    _ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
          f"{name}.key", cwd=d)


def _ca(d, name, cn):
    _key(d, name)
    _ossl("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt", "-days", "2",
          "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d, name, subj, ca, ext):
    _key(d, name)
    _ossl("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
    (d / f"{name}.ext").write_text(ext + "\n")
    _ossl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
          "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
          cwd=d)


SERVER_EXT = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"
CLIENT_EXT = "extendedKeyUsage=clientAuth"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA with a server (two of them, for reloads) and a client, and another CA with a
    client of its own: paths by name ('ca', 'server', 'server2', 'client', 'other-client')."""
    d = tmp_path_factory.mktemp("pki")
    _ca(d, "ca", "Starling Test CA")
    _ca(d, "other-ca", "Another CA")
    _leaf(d, "server", "/CN=server-one", "ca", SERVER_EXT)
    _leaf(d, "server2", "/CN=server-two", "ca", SERVER_EXT)
    _leaf(d, "client", "/O=Starling/OU=Devices/CN=device-1", "ca", CLIENT_EXT)
    _leaf(d, "other-client", "/CN=intruder", "other-ca", CLIENT_EXT)
    return {p.stem if p.suffix == ".crt" else p.stem + ".key": str(p)
            for p in d.iterdir() if p.suffix in (".crt", ".key")} | {"dir": d}


def tls_lines(pki, port, *extra):
    return [f"listener {port} {HOST}", f"cafile {pki['ca']}", f"certfile {pki['server']}",
            f"keyfile {pki['server.key']}", *extra]


@pytest.fixture
def tls_broker(broker, pki):
    """Factory: a broker with its plain listener (.port) and a TLS one (.tls_port)."""
    def make(*extra, log_all=False):
        port = _free_port()
        lines = tls_lines(pki, port, *extra)
        if log_all:
            lines.append("log_type all")
        b = broker(lines)
        b.tls_port = port
        return b
    return make


def paho(port, pki, cert=None, client_id=""):
    c = Client(port, client_id)
    kw = {"ca_certs": pki["ca"]}
    if cert:
        kw.update(certfile=pki[cert], keyfile=pki[cert + ".key"])
    c.c.tls_set(**kw)
    return c


def mosq_pub(port, pki, *args, cert=None):
    cmd = [MOSQ_PUB, "-h", HOST, "-p", str(port), "--cafile", pki["ca"], "-t", "tls/t", "-q", "1"]
    if cert:
        cmd += ["--cert", pki[cert], "--key", pki[cert + ".key"]]
    return run(cmd + list(args), timeout=10)


def s_client(port, pki, *args, data=b""):
    """openssl s_client with 'data' on stdin (a CONNECT, then DISCONNECT so that the broker
    closes and s_client ends); returns (returncode, stdout bytes, stderr text)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-CAfile",
                        pki["ca"], "-verify_return_error", "-ign_eof", *args],
                       input=data, capture_output=True, timeout=10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


CONNECT_DISCONNECT = connect_pkt("s-client") + b"\xe0\x00"
CONNACK_OK = bytes([CONNACK << 4, 2, 0, 0])


def tls_socket(port, pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(pki[cert], pki[cert + ".key"])
    s = socket.create_connection((HOST, port), timeout=5)
    return ctx.wrap_socket(s, server_hostname=HOST)


def tls_connack(port, pki, cert=None):
    """The CONNACK a raw TLS client gets, or None when the broker ends the connection (in the
    handshake, or just after it: with TLS 1.3 the client hears of a refused certificate on
    its first read). A timeout is an error."""
    try:
        with tls_socket(port, pki, cert) as s:
            s.sendall(connect_pkt("raw-tls"))
            return s.recv(4) or None
    except (ssl.SSLError, ConnectionError):
        return None


def server_cn(port, pki):
    with tls_socket(port, pki) as s:
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        return subject["commonName"]


# --- clients over TLS -------------------------------------------------------------------------

@pytest.mark.skipif(MOSQ_SUB is None, reason="needs mosquitto-clients")
def test_mosquitto_pub_and_sub_over_tls(tls_broker, pki):
    b = tls_broker(log_all=True)
    sub = subprocess.Popen([MOSQ_SUB, "-h", HOST, "-p", str(b.tls_port), "--cafile", pki["ca"],
                            "-t", "tls/t", "-q", "1", "-C", "2", "-W", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert b.wait_log(" 1 tls/t", 5)  # its SUBSCRIBE is in (log_type subscribe)
        assert mosq_pub(b.tls_port, pki, "-m", "hello").returncode == 0
        big = "x" * 100_000  # many TLS records, split across receives
        assert mosq_pub(b.tls_port, pki, "-m", big).returncode == 0
        out, err = sub.communicate(timeout=10)
    finally:
        sub.kill()
    assert sub.returncode == 0, err
    assert out.split("\n")[:2] == ["hello", big]


def test_paho_tls_set_round_trip_and_plain_listener_alongside(tls_broker, pki):
    b = tls_broker()
    sub = paho(b.tls_port, pki, client_id="tls-sub").connect()
    assert sub.subscribe("tls/#", 1) == (1,)
    pub = paho(b.tls_port, pki, client_id="tls-pub").connect()
    payloads = [os.urandom(n) for n in (0, 1, 300, 16_384, 70_000)]
    for i, p in enumerate(payloads):
        pub.publish(f"tls/{i}", p, qos=1)
    got = sub.wait_messages(len(payloads))
    assert [m.payload for m in got] == payloads
    plain = Client(b.port, "plain-pub").connect()  # the plain listener is unchanged
    plain.publish("tls/plain", b"from plain", qos=1)
    assert sub.wait_messages(len(payloads) + 1)[-1].payload == b"from plain"
    for c in (sub, pub, plain):
        c.disconnect()


def test_openssl_s_client_gets_connack(tls_broker, pki):
    b = tls_broker()
    rc, out, err = s_client(b.tls_port, pki, data=CONNECT_DISCONNECT)
    assert rc == 0, err
    assert b"Verify return code: 0 (ok)" in out
    assert CONNACK_OK in out


# --- client certificates ------------------------------------------------------------------------

def test_require_certificate_accepts_our_ca_and_refuses_the_rest(tls_broker, pki):
    b = tls_broker("require_certificate true")
    ok = paho(b.tls_port, pki, cert="client", client_id="with-cert").connect()
    ok.disconnect()
    if MOSQ_PUB:
        assert mosq_pub(b.tls_port, pki, "-m", "x", cert="client").returncode == 0
        assert mosq_pub(b.tls_port, pki, "-m", "x").returncode != 0
        assert mosq_pub(b.tls_port, pki, "-m", "x", cert="other-client").returncode != 0
    assert tls_connack(b.tls_port, pki, "client") == CONNACK_OK
    # without a certificate, and with one from another CA: the handshake fails
    for cert, reason in ((None, "peer did not return a certificate"),
                         ("other-client", "certificate verify failed")):
        assert tls_connack(b.tls_port, pki, cert) is None
        assert b.wait_log(reason), b.stderr()
    # the refusals cost nobody else anything
    assert roundtrip_ok(b.port)
    paho(b.tls_port, pki, cert="client", client_id="after").connect().disconnect()


def test_tls_version_is_the_minimum(tls_broker, pki):
    b13 = tls_broker("tls_version tlsv1.3")
    assert s_client(b13.tls_port, pki, "-tls1_3", data=CONNECT_DISCONNECT)[0] == 0
    rc, out, _ = s_client(b13.tls_port, pki, "-tls1_2", data=CONNECT_DISCONNECT)
    assert rc != 0 and CONNACK_OK not in out
    assert b13.wait_log("TLS handshake failed")
    default = tls_broker()  # unset: TLS 1.2 and 1.3
    for v in ("-tls1_2", "-tls1_3"):
        rc, out, err = s_client(default.tls_port, pki, v, data=CONNECT_DISCONNECT)
        assert rc == 0 and CONNACK_OK in out, (v, err)


def test_ciphers_restrict_tls12(tls_broker, pki):
    b = tls_broker("ciphers ECDHE-ECDSA-AES128-GCM-SHA256")
    rc, out, _ = s_client(b.tls_port, pki, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384",
                          data=CONNECT_DISCONNECT)
    assert rc != 0
    rc, out, err = s_client(b.tls_port, pki, "-tls1_2", "-cipher",
                            "ECDHE-ECDSA-AES128-GCM-SHA256", data=CONNECT_DISCONNECT)
    assert rc == 0 and CONNACK_OK in out, err


@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log line")
@pytest.mark.parametrize("option, username", [
    ("use_identity_as_username", "device-1"),
    ("use_subject_as_username", "CN=device-1,OU=Devices,O=Starling"),
])
def test_certificate_names_the_user(tls_broker, pki, option, username):
    # What the broker makes of the username (password_file, ACLs) is the authentication
    # code's; here: the certificate's name reaches the connection (debug log line).
    b = tls_broker("require_certificate true", f"{option} true", log_all=True)
    paho(b.tls_port, pki, cert="client", client_id="dev").connect().disconnect()
    assert b.wait_log(f"username='{username}'"), b.stderr()


def test_identity_as_username_without_certificate_is_refused(tls_broker, pki):
    # certificates not required, so none is asked for (as mosquitto: SSL_VERIFY_NONE) and no
    # client has a name
    b = tls_broker("use_identity_as_username true")
    for cert in (None, "client"):
        c = paho(b.tls_port, pki, cert=cert, client_id="anon")
        c.connect(expect_rc=4)  # 3.1.1: bad user name or password, as mosquitto
        c.close()
    assert b.wait_log("no username in a client certificate")


def test_certificate_user_name_is_the_one_the_password_file_and_acl_see(tls_broker, pki,
                                                                         tmp_path):
    """use_identity_as_username with a password file and an ACL: the certificate authenticates
    (no password asked, whatever the CONNECT's user name and password say), and the ACL's
    'user device-1' rules are the ones that apply, to publishes, deliveries and the will."""
    from test_auth import TOOL, make_pw  # noqa: E402
    if not os.path.exists(TOOL):
        pytest.skip("starling-passwd not built")
    pw = make_pw(tmp_path / "pw", {"someone": "else"})
    acl = tmp_path / "acl"
    acl.write_text("user device-1\ntopic readwrite dev/device-1/#\ntopic read all/#\n"
                   "user someone\ntopic readwrite #\n")
    b = tls_broker("require_certificate true", "use_identity_as_username true",
                   f"password_file {pw}", f"acl_file {acl}", "allow_anonymous false",
                   "user root")  # the files are readable by root only (test_acl.py)
    watcher = Client(b.port, "watcher")
    watcher.c.username_pw_set("someone", "else")
    watcher.connect()
    watcher.subscribe("#")
    dev = paho(b.tls_port, pki, cert="client", client_id="dev")
    dev.c.username_pw_set("mallory", "wrong")  # replaced by the certificate's name
    dev.c.will_set("all/will", b"gone")  # device-1 may not write all/#: the will is dropped
    dev.connect()
    dev.subscribe("dev/device-1/#")
    dev.subscribe("secret/#")  # granted (3.1.1) but the ACL lets nothing through
    dev.publish("dev/device-1/up", b"ok", qos=1)
    dev.publish("secret/x", b"denied", qos=1)
    got = watcher.wait_messages(1)
    assert [(m.topic, m.payload) for m in got] == [("dev/device-1/up", b"ok")]
    watcher.publish("secret/x", b"hidden", qos=1)
    watcher.publish("dev/device-1/down", b"cmd", qos=1)
    mine = dev.wait_messages(2)  # its own publish and the command
    assert sorted(m.topic for m in mine) == ["dev/device-1/down", "dev/device-1/up"]
    dev.no_messages(0.3)
    dev.c.loop_stop()  # an unexpected end: the will would go now, if it had been allowed
    dev.c.socket().shutdown(socket.SHUT_RDWR)
    dev.c.socket().close()
    watcher.no_messages(0.5)


# --- the wrong protocol on each listener ----------------------------------------------------------

@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log line")
def test_plain_mqtt_on_a_tls_listener_closes_that_connection(tls_broker, pki):
    b = tls_broker()
    with socket.create_connection((HOST, b.tls_port), timeout=5) as s:
        s.sendall(connect_pkt("plain-on-tls"))
        data = b""
        while True:  # an alert at most, then the close
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert not data.startswith(bytes([CONNACK << 4]))
    assert b.wait_log("plain MQTT on a TLS listener"), b.stderr()
    assert roundtrip_ok(b.port)
    paho(b.tls_port, pki, client_id="fine").connect().disconnect()


@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log line")
def test_tls_client_on_a_plain_listener_closes_that_connection(tls_broker, pki):
    b = tls_broker()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with tls_socket(b.port, pki) as s:
            s.sendall(connect_pkt("tls-on-plain"))
            assert s.recv(10) == b""
    assert b.wait_log("a TLS handshake on a plain MQTT listener"), b.stderr()
    assert roundtrip_ok(b.port)
    paho(b.tls_port, pki, client_id="fine").connect().disconnect()


# --- reload and start-up --------------------------------------------------------------------------

@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's log lines")
def test_sighup_reloads_certificate_for_new_connections(broker, pki, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(pki["server"], cert)
    shutil.copy(pki["server.key"], key)
    port = _free_port()
    # a reload reads the files as the user the broker runs as: stay root when started as
    # root (the test's files are not readable by 'mosquitto')
    b = broker([f"listener {port} {HOST}", f"certfile {cert}", f"keyfile {key}", "user root"])
    assert server_cn(port, pki) == "server-one"
    old = paho(port, pki, client_id="old").connect()
    assert old.subscribe("reload/t", 1) == (1,)
    shutil.copy(pki["server2"], cert)
    shutil.copy(pki["server2.key"], key)
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log(f"TLS listener on port {port}: certificate and key reloaded")
    assert server_cn(port, pki) == "server-two"
    new = paho(port, pki, client_id="new").connect()
    new.publish("reload/t", b"across", qos=1)
    assert old.wait_messages(1)[0].payload == b"across"  # the old connection lives on
    # a broken file on reload: the running certificate stays
    cert.write_text("not a certificate\n")
    b.proc.send_signal(signal.SIGHUP)
    assert b.wait_log("keeping the running certificate and key")
    assert server_cn(port, pki) == "server-two"
    for c in (old, new):
        c.disconnect()


@pytest.mark.skipif(IS_MOSQUITTO, reason="Starling's messages")
@pytest.mark.parametrize("case", ["missing-cert", "missing-key", "garbage-cert", "wrong-key",
                                  "missing-ca", "cert-without-key"])
def test_bad_files_refuse_to_start(pki, tmp_path, case):
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    files = {"certfile": pki["server"], "keyfile": pki["server.key"], "cafile": pki["ca"]}
    expect = {
        "missing-cert": ("certfile", "/nonexistent/server.crt", "No such file or directory"),
        "missing-key": ("keyfile", "/nonexistent/server.key", "No such file or directory"),
        "garbage-cert": ("certfile", str(junk), "Unable to load server certificate"),
        "wrong-key": ("keyfile", pki["client.key"], "key values mismatch"),
        "missing-ca": ("cafile", "/nonexistent/ca.crt", "No such file or directory"),
        "cert-without-key": ("keyfile", None, "both certfile and keyfile"),
    }[case]
    option, path, reason = expect
    files[option] = path
    lines = [f"listener {_free_port()} {HOST}", "allow_anonymous true"]
    lines += [f"{k} {v}" for k, v in files.items() if v is not None]
    conf = tmp_path / "bad.conf"
    conf.write_text("\n".join(lines) + "\n")
    r = run([BROKER, "-c", str(conf)], timeout=10)
    assert r.returncode != 0
    assert reason in r.stderr, r.stderr
    if path:
        assert path in r.stderr, r.stderr


@pytest.mark.skipif(not os.environ.get("MQ_SLOW"), reason="takes 10+ s; set MQ_SLOW=1")
@pytest.mark.timeout(40)
def test_stalled_handshake_ends_with_the_connect_timeout(tls_broker, pki):
    b = tls_broker()
    with socket.create_connection((HOST, b.tls_port), timeout=20) as s:
        s.sendall(b"\x16\x03\x01\x00\xff")  # the start of a ClientHello, then nothing
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 9 <= time.monotonic() - t0 <= 15
    assert b.wait_log("no CONNECT in time")
    assert roundtrip_ok(b.port)
