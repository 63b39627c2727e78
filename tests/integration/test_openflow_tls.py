"""OpenFlow over TLS against real peers, with certificates made at test time
(openssl CLI, tests/helpers/pki.py) in the test's temporary directory:

- pssl: the real ovs-ofctl with a certificate from the switch's CA dumps and
  adds flows; one whose certificate comes from another CA is refused, the
  log says why and no connection is left;
- ssl: the switch dials the real ovs-testcontroller (package
  openvswitch-testcontroller) listening on pssl: and negotiates OpenFlow;
- a new SSL row restarts the ssl/pssl services with the new certificates;
- set-ssl with a missing file fails naming it and stores nothing.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest
from helpers import netns
from helpers.pki import CA, have_openssl
from helpers.topology import switch_with_bridge
from helpers.vswitchd import have, wait_for

from vswitch.ofproto.conn.tls import HANDSHAKE_TIMEOUT

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(not (have("ovs-ofctl") and have_openssl()), reason="needs ovs-ofctl and openssl")]
PORT = 16655


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca1, ca2 = CA(d, "ca1"), CA(d, "ca2")
    return {"switch": ca1.issue("switch"), "ofctl": ca1.issue("ofctl"), "controller": ca1.issue("controller"),
            "stranger": ca2.issue("stranger"), "switch2": ca2.issue("switch2"), "ofctl2": ca2.issue("ofctl2"),
            "ca1": ca1.cert, "ca2": ca2.cert}


def ofctl(ns, who, ca, *args, port=PORT):
    return netns.run(ns, "ovs-ofctl", "-O", "OpenFlow13", f"--private-key={who.key}",
                     f"--certificate={who.cert}", f"--ca-cert={ca}", "--timeout=10", *args[:1],
                     f"ssl:127.0.0.1:{port}", *args[1:], check=False, timeout=30)


def established(ns, port=PORT):
    out = netns.run(ns, "ss", "-tnH", "state", "established", f"( sport = :{port} or dport = :{port} )").stdout
    return len([line for line in out.splitlines() if line.strip()])


def listening(ns, port=PORT):
    return f":{port}" in netns.run(ns, "ss", "-ltn").stdout


def set_ssl(vs, who, ca):
    vs.vsctl("set-ssl", who.key, who.cert, ca)


def test_pssl_with_ovs_ofctl_and_a_stranger_refused(tmp_path, pki):
    with switch_with_bridge(tmp_path) as topo:
        vs, sw = topo.vs, topo.sw
        set_ssl(vs, pki["switch"], pki["ca1"])
        vs.vsctl("set-controller", "br0", f"pssl:{PORT}:127.0.0.1")
        wait_for(lambda: listening(sw), what="pssl listener")

        done = ofctl(sw, pki["ofctl"], pki["ca1"], "add-flow", "priority=7,in_port=1,actions=output:2")
        assert done.returncode == 0, done.stderr
        done = ofctl(sw, pki["ofctl"], pki["ca1"], "dump-flows")
        assert done.returncode == 0 and "priority=7,in_port=1 actions=output:2" in done.stdout, done
        assert "priority=7,in_port=1 actions=output:2" in vs.vsctl("dump-flows", "br0")
        assert "TLS TLSv1.3 with peer certificate commonName=ofctl (ca1)" in vs.read_log() or \
            "TLSv1.2 with peer certificate commonName=ofctl (ca1)" in vs.read_log()

        # A client whose certificate comes from another CA (it trusts ours).
        wait_for(lambda: established(sw) == 0, what="ovs-ofctl's connections to end")
        done = ofctl(sw, pki["stranger"], pki["ca1"], "dump-flows")
        assert done.returncode != 0 and "priority=7" not in done.stdout
        log = wait_for(lambda: (lambda text: text if "TLS handshake with 127.0.0.1:" in text else None)(
            vs.read_log()), what="the refusal in the log")
        assert re.search(r"br0<->pssl:\d+:127\.0\.0\.1: TLS handshake with 127\.0\.0\.1:\d+ failed: "
                         r"peer certificate refused: .*; connection refused", log), log
        assert established(sw) == 0
        # A plain TCP client gets no OpenFlow out of a pssl port.
        assert netns.run(sw, "ovs-ofctl", "--timeout=5", "dump-flows", f"tcp:127.0.0.1:{PORT}",
                         check=False, timeout=30).returncode != 0

        # A new SSL row (another CA's certificates): the listener restarts with them.
        set_ssl(vs, pki["switch2"], pki["ca2"])
        wait_for(lambda: "SSL configuration changed, restarting pssl:" in vs.read_log(), what="restart")
        wait_for(lambda: listening(sw), what="pssl listener again")
        assert ofctl(sw, pki["ofctl"], pki["ca1"], "dump-flows").returncode != 0
        done = wait_for(lambda: (lambda d: d if d.returncode == 0 else None)(
            ofctl(sw, pki["ofctl2"], pki["ca2"], "dump-flows")), what="ca2 client accepted")
        assert "priority=7,in_port=1" in done.stdout

        # Without an SSL row, pssl is not offered and the log says why.
        vs.vsctl("del-ssl")
        wait_for(lambda: not listening(sw), what="pssl listener to close")
        wait_for(lambda: f"not starting pssl:{PORT}:127.0.0.1: it needs the SSL configuration and none "
                         "is set" in vs.read_log(), what="the reason in the log")


@pytest.mark.skipif(not have("ovs-testcontroller"), reason="needs ovs-testcontroller (openvswitch-testcontroller)")
def test_ssl_to_ovs_testcontroller(tmp_path, pki):
    with switch_with_bridge(tmp_path) as topo:
        vs, sw = topo.vs, topo.sw
        c = pki["controller"]
        ctl_log = tmp_path / "testcontroller.log"
        with open(ctl_log, "w") as out:
            ctl = subprocess.Popen(["ip", "netns", "exec", sw, "ovs-testcontroller", f"pssl:{PORT}:127.0.0.1",
                                    "-p", c.key, "-c", c.cert, "-C", pki["ca1"], "-vconsole:info",
                                    f"--unixctl={tmp_path}/testcontroller.ctl"],
                                   stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: listening(sw), what="ovs-testcontroller to listen")
            set_ssl(vs, pki["switch"], pki["ca1"])
            vs.vsctl("set-controller", "br0", f"ssl:127.0.0.1:{PORT}")
            name = f"br0->ssl:127.0.0.1:{PORT}"
            wait_for(lambda: f"{name}: negotiated OpenFlow" in vs.read_log(), what="OpenFlow over TLS")
            assert f"{name}: TLS" in vs.read_log() and "peer certificate commonName=controller (ca1)" in vs.read_log()
            wait_for(lambda: established(sw) == 2, what="one connection (both ends)")

            # The switch's certificate from a CA the controller does not trust: dropped, not let back in.
            set_ssl(vs, pki["switch2"], pki["ca1"])
            wait_for(lambda: f"SSL configuration changed, restarting ssl:127.0.0.1:{PORT}" in vs.read_log(),
                     what="restart")
            wait_for(lambda: re.search(f"{re.escape(name)}: (TLS handshake failed|disconnected by a TLS error) "
                                       r"\(the peer refused our certificate \(TLSV1_ALERT_UNKNOWN_CA\)\)", vs.read_log()), what="the refused reconnection")
            # The refused connection's teardown can lag the log line under load.
            wait_for(lambda: established(sw) == 0, what="no connection left")
            assert vs.read_log().count(f"{name}: negotiated OpenFlow") == 1
        finally:
            ctl.send_signal(signal.SIGTERM)
            try:
                ctl.wait(10)
            except subprocess.TimeoutExpired:
                ctl.kill()
                ctl.wait()


def test_set_ssl_with_a_missing_file_fails_naming_it(tmp_path, pki):
    with switch_with_bridge(tmp_path) as topo:
        vs = topo.vs
        missing = str(tmp_path / "nope" / "cert.pem")
        s = pki["switch"]
        done = vs.vsctl_proc("set-ssl", s.key, missing, s.ca)
        assert done.returncode != 0
        assert f"certificate {missing}: no such file" in done.stderr
        assert vs.vsctl("get-ssl") == "" and vs.vsctl("list", "SSL") == ""
        assert os.path.exists(vs.db)


def test_a_silent_peer_cannot_hold_a_pssl_slot(tmp_path, pki):
    with switch_with_bridge(tmp_path) as topo:
        vs, sw = topo.vs, topo.sw
        set_ssl(vs, pki["switch"], pki["ca1"])
        vs.vsctl("set-controller", "br0", f"pssl:{PORT}:127.0.0.1")
        wait_for(lambda: listening(sw), what="pssl listener")
        with netns.entered(sw):
            s = socket.create_connection(("127.0.0.1", PORT), timeout=HANDSHAKE_TIMEOUT + 5)
        start = time.monotonic()
        try:
            while s.recv(4096):   # no TLS ClientHello from us, so nothing but EOF comes back
                pass
        except ConnectionResetError:
            pass
        finally:
            s.close()
        assert HANDSHAKE_TIMEOUT - 0.5 <= time.monotonic() - start <= HANDSHAKE_TIMEOUT + 3
        wait_for(lambda: f"failed: no TLS handshake within {HANDSHAKE_TIMEOUT:g} s" in vs.read_log()
                 or "SSL handshake is taking longer than" in vs.read_log(), what="the reason in the log")
