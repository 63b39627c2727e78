"""The real `ovs-appctl -t RUNDIR/vswitchd.ctl` against a real vswitchd.

One switch for the module (bridge br0; hosts p1 and p2 on veths; bond0 of
m1 and m2 with LACP and no partner; c1 with a CFM MEP), built once; every
command of the README's ovs-appctl section is run through OVS's own client
and its output checked for content in OVS's layout.  `exit` gets a daemon
of its own."""
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from helpers import netns
from helpers.topology import switch_with_bridge
from helpers.vswitchd import VSwitchd, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not shutil.which("ovs-appctl"), reason="ovs-appctl (openvswitch-common) is not installed"),
]

COMMANDS = ["bond/show", "cfm/show", "coverage/read-counter", "coverage/show", "dpctl/dump-flows",
            "dpif-netdev/pmd-stats-clear", "dpif-netdev/pmd-stats-show", "dpif/show", "exit", "fdb/flush",
            "fdb/show", "help", "lacp/show", "list-commands", "memory/show", "ofproto/trace", "upcall/show", "version",
            "vlog/list", "vlog/reopen", "vlog/set"]


def appctl(ctl, *args):
    return subprocess.run(["ovs-appctl", "-t", ctl, "--timeout=10", *args],
                          capture_output=True, text=True, timeout=20)


def ok(ctl, *args):
    proc = appctl(ctl, *args)
    assert proc.returncode == 0, f"ovs-appctl {' '.join(args)}: {proc.returncode} {proc.stderr}"
    return proc.stdout


def error(ctl, *args):
    """The server's error text (ovs-appctl exits 2 and prints it on stderr)."""
    proc = appctl(ctl, *args)
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout, proc.stderr)
    text, tail = proc.stderr.rsplit("ovs-appctl: ", 1)
    assert tail.endswith("server returned an error\n")
    return text


class Switch:
    def __init__(self, topo):
        self.topo, self.vs = topo, topo.vs
        self.ctl = os.path.join(self.vs.rundir, "vswitchd.ctl")

    def ofport(self, iface):
        return int(self.vs.vsctl("get", "interface", iface, "ofport"))

    def dp_ports(self):
        """{interface: datapath port} from dpif/show."""
        return {m[1]: int(m[2]) for m in re.finditer(r"^    (\S+) \d+/(\d+): ", ok(self.ctl, "dpif/show"), re.M)}

    def ping(self):
        assert self.topo.ping("p1", "p2", count=2)


@pytest.fixture(scope="module")
def sw(tmp_path_factory):
    with switch_with_bridge(tmp_path_factory.mktemp("appctl")) as topo:
        topo.veth_host("p1", "10.0.0.1")
        topo.veth_host("p2", "10.0.0.2")
        far = topo.stack.enter_context(netns.namespace("far"))
        for name in ("m1", "m2", "c1"):
            netns.run(topo.sw, "ip", "link", "add", name, "type", "veth", "peer", "name", name, "netns", far)
            netns.run(topo.sw, "ip", "link", "set", name, "up")
            netns.run(far, "ip", "link", "set", name, "up")
        topo.vs.vsctl("add-bond", "br0", "bond0", "m1", "m2", "lacp=active",
                      "--", "add-port", "br0", "c1", "--", "set", "interface", "c1", "cfm_mpid=1")
        yield Switch(topo)


def test_socket_is_root_only(sw):
    st = os.stat(sw.ctl)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0


def test_fdb_show_lists_the_learned_macs(sw):
    sw.ping()
    text = ok(sw.ctl, "fdb/show", "br0")
    lines = text.splitlines()
    assert lines[0] == " port  VLAN  MAC                Age"
    rows = {mac: (port, vlan, age) for port, vlan, mac, age in (line.split() for line in lines[1:])}
    for host in ("p1", "p2"):
        port, vlan, age = rows[sw.topo.mac(host)]
        assert (port, vlan) == (str(sw.ofport(host)), "0") and 0 <= int(age) < 300
    line = next(line for line in lines if sw.topo.mac("p1") in line)
    assert re.fullmatch(r"[ \d]{4}\d  [ \d]{3}\d  [0-9a-f:]{17}  [ \d]{2}\d", line)  # OVS's columns
    assert "no such bridge" == error(sw.ctl, "fdb/show", "nosuch").strip()


def test_fdb_flush(sw):
    sw.ping()
    assert ok(sw.ctl, "fdb/flush", "br0") == "table successfully flushed\n"
    assert sw.topo.mac("p1") not in ok(sw.ctl, "fdb/show", "br0")
    sw.ping()  # learned again
    assert sw.topo.mac("p1") in ok(sw.ctl, "fdb/show", "br0")
    assert ok(sw.ctl, "fdb/flush") == "table successfully flushed\n"
    assert error(sw.ctl, "fdb/flush", "nosuch") == "no such bridge\n"


def test_dpif_show(sw):
    text = ok(sw.ctl, "dpif/show")
    m = re.match(r"netdev@vswitch: hit:(\d+) missed:(\d+)\n  br0:\n", text)
    assert m and int(m[2]) > 0
    ports = re.findall(r"^    (\S+) (\d+)/(\d+): \((\w+)\)$", text, re.M)
    assert [p[0] for p in ports] == sorted(["br0", "c1", "m1", "m2", "p1", "p2"])
    by_name = {name: (int(of), int(dp), type_) for name, of, dp, type_ in ports}
    assert by_name["br0"][0] == 65534 and by_name["br0"][2] == "internal"
    assert by_name["p1"][0] == sw.ofport("p1") and by_name["p1"][2] == "system"


def test_dpctl_dump_flows_shows_the_megaflows(sw):
    sw.ping()
    dp = sw.dp_ports()
    mac1, mac2 = sw.topo.mac("p1"), sw.topo.mac("p2")
    lines = ok(sw.ctl, "dpctl/dump-flows").splitlines()
    pattern = re.compile(r"recirc_id\(0\),in_port\((\d+)\),packet_type\(ns=0,id=0\),eth\(src=([0-9a-f:]+),"
                         r"dst=([0-9a-f:]+)\)(,\S+)?, packets:(\d+), bytes:(\d+), used:(never|[\d.]+s)"
                         r"(, flags:\S+)?, actions:(\S+)")
    flows = [pattern.fullmatch(line) for line in lines]
    assert all(flows), lines
    to_p2 = [f for f in flows if f[2] == mac1 and f[3] == mac2]
    assert [(int(f[1]), f[9]) for f in to_p2] == [(dp["p1"], str(dp["p2"]))]
    # The same megaflows as vsctl's own dump, which stays as it was.
    assert len(json.loads(sw.vs.vsctl("--format", "json", "dpctl-dump-flows"))) >= len(lines) - 2
    named = ok(sw.ctl, "dpctl/dump-flows", "-m")
    assert f"in_port(p1),packet_type(ns=0,id=0),eth(src={mac1},dst={mac2})" in named
    assert ", actions:p2\n" in named


def test_ofproto_trace_shows_the_datapath_actions(sw):
    sw.ping()
    dp = sw.dp_ports()
    mac1, mac2 = sw.topo.mac("p1"), sw.topo.mac("p2")
    text = ok(sw.ctl, "ofproto/trace", "br0", f"in_port={sw.ofport('p1')},dl_src={mac1},dl_dst={mac2}")
    assert text.startswith(f"Flow: in_port={sw.ofport('p1')},")
    assert '\nbridge("br0")\n-------------\n' in text
    assert f"\nMegaflow: recirc_id=0,eth,in_port={sw.ofport('p1')}," in text
    assert text.endswith(f"\nDatapath actions: {dp['p2']}\n")
    unknown = ok(sw.ctl, "ofproto/trace", "br0", f"in_port=p1,dl_src={mac1},dl_dst=00:00:5e:00:53:01")
    flooded = set(map(int, unknown.rsplit("Datapath actions: ", 1)[1].strip().split(",")))
    assert {dp["br0"], dp["p2"], dp["c1"]} <= flooded and dp["p1"] not in flooded
    assert error(sw.ctl, "ofproto/trace", "br0", "in_port=1,foo=3").startswith(
        "Bad openflow flow syntax: in_port=1,foo=3: ")
    assert error(sw.ctl, "ofproto/trace", "nosuch", "in_port=1") == "nosuch: unknown bridge\n"


def test_pmd_stats_show_and_clear(sw):
    sw.ping()
    before = ok(sw.ctl, "dpif-netdev/pmd-stats-show")
    assert before.startswith("pmd thread")
    received = int(re.search(r"^  packets received: (\d+)$", before, re.M)[1])
    assert received > 0 and re.search(r"^  megaflow hits: \d+$", before, re.M)
    assert re.search(r"^  miss with success upcall: [1-9]\d*$", before, re.M)
    assert ok(sw.ctl, "dpif-netdev/pmd-stats-clear") == ""
    after = ok(sw.ctl, "dpif-netdev/pmd-stats-show")
    assert int(re.search(r"^  packets received: (\d+)$", after, re.M)[1]) < received
    assert json.loads(sw.vs.vsctl("--format", "json", "pmd-stats-show"))["packets"] >= received


def test_bond_lacp_and_cfm_show(sw):
    bond = ok(sw.ctl, "bond/show", "bond0")
    assert bond.startswith("---- bond0 ----\nbond_mode: active-backup\n")
    assert "\nmember m1: " in bond and "\nmember m2: " in bond and "\nlacp_status: " in bond
    assert ok(sw.ctl, "bond/show").startswith("---- bond0 ----\nbond_mode: active-backup\n")
    lacp = ok(sw.ctl, "lacp/show", "bond0")
    assert lacp.startswith("---- bond0 ----\n  status: active")
    assert "\nmember: m1: " in lacp and "\n  actor sys_id: " in lacp and "\n  partner sys_id: " in lacp
    cfm = ok(sw.ctl, "cfm/show", "c1")
    assert cfm.startswith("---- c1 ----\nMPID 1:\n") and "\n  interval: " in cfm
    assert "---- c1 ----" in ok(sw.ctl, "cfm/show")
    assert error(sw.ctl, "bond/show", "nosuch") == "no such bond\n"
    assert error(sw.ctl, "lacp/show", "nosuch") == "no such lacp object\n"
    assert error(sw.ctl, "cfm/show", "nosuch") == "no such CFM object\n"


def test_coverage_show(sw):
    sw.ping()
    text = ok(sw.ctl, "coverage/show")
    lines = text.splitlines()
    assert re.fullmatch(r"Event coverage, avg rate over last: 5 seconds, last minute, last hour,  "
                        r"hash=[0-9a-f]{8}:", lines[0])
    received = next(line for line in lines if line.startswith("netdev_received "))
    assert re.fullmatch(r"netdev_received +\d+\.\d/sec +\d+\.\d{3}/sec +\d+\.\d{4}/sec   total: [1-9]\d*",
                        received)
    assert re.fullmatch(r"\d+ events never hit", lines[-1])
    assert int(ok(sw.ctl, "coverage/read-counter", "unixctl_received")) > 0


def test_vlog_set_changes_a_level_that_vlog_list_shows(sw):
    def level(text, module):
        return re.search(rf"^{re.escape(module)} +(\S+) +(\S+) +(\S+)$", text, re.M).groups()
    listed = ok(sw.ctl, "vlog/list")
    assert listed.startswith("                 console    syslog    file\n")
    assert level(listed, "switch") == ("INFO",) * 3
    try:
        assert ok(sw.ctl, "vlog/set", "switch:file:dbg") == ""
        assert level(ok(sw.ctl, "vlog/list"), "switch") == ("DBG",) * 3
        assert "switch" in sw.vs.vsctl("vlog-list") and "DBG" in [
            e["level"] for e in json.loads(sw.vs.vsctl("--format", "json", "vlog-list")) if e["module"] == "switch"]
        assert error(sw.ctl, "vlog/set", "nosuch:dbg") == 'no destination, level, or module "nosuch"\n'
    finally:
        ok(sw.ctl, "vlog/set", "switch:info")
    assert level(ok(sw.ctl, "vlog/list"), "switch") == ("INFO",) * 3


def test_vlog_reopen(sw):
    log, rotated = sw.vs.log, sw.vs.log + ".1"
    os.rename(log, rotated)
    try:
        assert ok(sw.ctl, "vlog/reopen") == ""
        wait_for(lambda: "reopened log file" in sw.vs.read_log(), what="the new log file")
    finally:
        os.unlink(rotated)


def test_memory_show(sw):
    sw.ping()
    usage = dict(re.findall(r"([a-z][a-z ]*?):(\d+)", ok(sw.ctl, "memory/show")))
    assert usage["handlers"] == "1" and usage["revalidators"] == "1"
    assert usage["ports"] == "6" and int(usage["udpif keys"]) > 0


def test_upcall_show_counts_the_revalidator_rounds_cpu(sw):
    sw.ping()
    wait_for(lambda: "round cpu" in ok(sw.ctl, "upcall/show"), what="a revalidator round")
    text = ok(sw.ctl, "upcall/show")
    flows = re.search(r"flows\s+: \(current (\d+)\) \(limit (\d+)\)", text)
    assert flows and int(flows.group(1)) > 0 and int(flows.group(2)) > 0, text
    last, median, top = map(int, re.search(
        r"round cpu\s+: \(last (\d+)us\) \(median (\d+)us\) \(max (\d+)us\)", text).groups())
    steps = [int(us) for us in re.findall(r"(\d+)us", text.split("last steps", 1)[1].splitlines()[0])]
    assert 0 < last <= top and median <= top and steps and sum(steps) in range(last - len(steps), last + 1), text


def test_version_list_commands_and_help(sw):
    assert ok(sw.ctl, "version") == "vswitchd (vswitch) 0.1.0\n"
    listed = ok(sw.ctl, "list-commands")
    assert listed.startswith("The available commands are:\n")
    assert [line.split()[0] for line in listed.splitlines()[1:]] == COMMANDS
    assert "\n  fdb/show                bridge\n" in listed
    assert ok(sw.ctl, "help") == listed


def test_errors_leave_the_daemon_serving(sw):
    assert error(sw.ctl, "foo") == \
        '"foo" is not a valid command (use "list-commands" to see a list of valid commands)\n'
    assert error(sw.ctl, "fdb/show") == '"fdb/show" command requires at least 1 arguments\n'
    assert error(sw.ctl, "fdb/show", "a", "b") == '"fdb/show" command takes at most 1 arguments\n'
    # Garbage, and a request that never ends, on raw connections.
    garbage = socket.socket(socket.AF_UNIX)
    garbage.connect(sw.ctl)
    garbage.sendall(b"\x00\xffnot json at all")
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(sw.ctl)
    stuck.sendall(b'{"id":1,"method":"version","params":["')
    try:
        garbage.settimeout(5)
        assert garbage.recv(100) == b""  # that connection, and only it, is closed
        start = time.monotonic()
        assert ok(sw.ctl, "version") == "vswitchd (vswitch) 0.1.0\n"
        assert sw.vs.vsctl("br-exists", "br0") == ""
        assert time.monotonic() - start < 2
    finally:
        garbage.close()
        stuck.close()


def test_no_error_in_the_log(sw):
    log = sw.vs.read_log()
    assert "Traceback" not in log and "|ERROR|" not in log, log


def test_exit_stops_the_daemon_cleanly(tmp_path):
    with netns.namespace("exit") as ns:
        vs = VSwitchd(ns, str(tmp_path)).start()
        try:
            ctl = os.path.join(vs.rundir, "vswitchd.ctl")
            vs.vsctl("add-br", "br0")
            pid = vs.pid
            assert error(ctl, "exit", "--now").startswith('"exit": unknown option')
            assert ok(ctl, "exit") == ""
            wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), what="vswitchd to exit")
            for name in ("vswitchd.ctl", "vswitchd.sock", "vswitchd.pid"):
                assert not os.path.exists(os.path.join(vs.rundir, name)), name
            assert "shutting down" in vs.read_log()
            assert "Traceback" not in vs.read_log()
            # A daemon killed outright leaves a stale socket: the next one replaces it.
            vs.start()
            os.kill(vs.pid, signal.SIGKILL)
            wait_for(lambda: not os.path.exists(f"/proc/{vs.pid}") or _zombie(vs.pid), what="SIGKILL")
            assert os.path.exists(ctl)
            vs.start()
            assert ok(ctl, "version") == "vswitchd (vswitch) 0.1.0\n"
        finally:
            vs.stop()


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
