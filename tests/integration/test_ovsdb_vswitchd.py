"""A real vswitchd driven by the real ovs-vsctl over OVSDB: `--remote
punix:` at a path of our choosing (as OVS's /run/openvswitch/db.sock would
be) and `ptcp:`, bridge and ports added by ovs-vsctl without --no-wait
(it returns once the switch applied them), hosts in two namespaces ping
through the ports it added; Interface ofport/link_state/error come from the
running switch; ovsdb-client and OVS's Python IDL see changes made by
vswitch's own vsctl; the Open_vSwitch row survives a restart."""
import os
import subprocess
import time
import warnings

import pytest

from helpers import netns
from helpers.ovsdb_server import RawClient
from helpers.vswitchd import VSwitchd, wait_for

pytestmark = pytest.mark.timeout(120)
PTCP_PORT = 16640


@pytest.fixture
def switch(tmp_path):
    with netns.namespace("sw") as sw:
        vs = VSwitchd(sw, str(tmp_path))
        remote = os.path.join(str(tmp_path), "openvswitch", "db.sock")
        vs.start("--remote", f"punix:{remote}", "--remote", f"ptcp:{PTCP_PORT}")
        try:
            vs.remote = remote
            yield vs
        finally:
            vs.stop()


def ovs_vsctl(vs, *args, db=None, check=True):
    proc = netns.run(vs.ns, "ovs-vsctl", f"--db={db or 'unix:' + vs.remote}", "--timeout=20", *args, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ovs-vsctl {' '.join(args)}: {proc.stderr}")
    return proc


def test_ovs_vsctl_builds_a_bridge_that_forwards(switch, tmp_path):
    vs = switch
    with netns.namespace("h1") as h1, netns.namespace("h2") as h2:
        ports, host_ends = [], []
        for host, ip in ((h1, "10.9.0.1"), (h2, "10.9.0.2")):
            sw_end, host_end = netns.veth_pair(vs.ns, host, "ov")
            netns.run(host, "ip", "addr", "add", f"{ip}/24", "dev", host_end)
            ports.append(sw_end)
            host_ends.append(host_end)
        # Without --no-wait: ovs-vsctl returns once cur_cfg caught up.
        ovs_vsctl(vs, "add-br", "br0", "--", "set", "Bridge", "br0", "fail_mode=standalone")
        ovs_vsctl(vs, "add-port", "br0", ports[0], "--", "add-port", "br0", ports[1], "tag=5",
                  "--", "set", "Port", ports[0], "tag=5")
        assert vs.json("list-ports", "br0") == sorted(ports)
        assert netns.run(h1, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.0.2", check=False).returncode == 0

        # A carrier change reaches a monitor of link_state at once.
        client = RawClient(vs.remote)
        initial = client.call("monitor_cond", "Open_vSwitch", "m", {"Interface": [
            {"columns": ["link_state"], "where": [["name", "==", ports[0]]]}]})["result"]["Interface"]
        assert list(initial.values()) == [{"initial": {"link_state": "up"}}]
        netns.run(h1, "ip", "link", "set", host_ends[0], "down")
        started = time.monotonic()
        note = client.notification(timeout=3)
        assert list(note["params"][1]["Interface"].values()) == [{"modify": {"link_state": "down"}}]
        assert time.monotonic() - started < 0.9        # with the link event, not a second later
        netns.run(h1, "ip", "link", "set", host_ends[0], "up")
        assert list(client.notification(timeout=3)["params"][1]["Interface"].values()) == \
            [{"modify": {"link_state": "up"}}]
        client.close()

        # Runtime columns from the running switch, over both remotes.
        out = ovs_vsctl(vs, "get", "Interface", ports[0], "ofport", "link_state", "admin_state",
                        db=f"tcp:127.0.0.1:{PTCP_PORT}").stdout.split()
        assert int(out[0]) >= 1 and out[1:] == ["up", "up"]
        stats = ovs_vsctl(vs, "get", "Interface", ports[0], "statistics:rx_packets").stdout
        assert int(stats) >= 0
        assert ovs_vsctl(vs, "get", "Open_vSwitch", ".", "next_cfg", "cur_cfg").stdout.split() == ["2", "2"]

        # A netdev that does not exist: ovs-vsctl reports it as with OVS.
        proc = ovs_vsctl(vs, "add-port", "br0", "nosuch0", check=False)
        assert proc.returncode == 0 and "Error detected while setting up 'nosuch0'" in proc.stderr
        assert ovs_vsctl(vs, "get", "Interface", "nosuch0", "ofport").stdout.strip() == "-1"
        assert ovs_vsctl(vs, "get", "Interface", "nosuch0", "error").stdout.strip() != "[]"
        ovs_vsctl(vs, "del-port", "nosuch0")
        # Refused, naming the column; nothing changed.
        proc = ovs_vsctl(vs, "set", "Bridge", "br0", "stp_enable=true", check=False)
        assert proc.returncode == 1 and "Bridge column stp_enable" in proc.stderr
        assert vs.json("list-ports", "br0") == sorted(ports)


def test_clients_see_vsctl_changes_and_the_root_row_survives_a_restart(switch):
    vs = switch
    vs.vsctl("add-br", "br0")
    db_sock = os.path.join(vs.rundir, "db.sock")
    monitor = subprocess.Popen(["stdbuf", "-oL", "ovsdb-client", "monitor", f"unix:{db_sock}", "Open_vSwitch",
                                "Interface", "name,ofport", "--format=csv"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import ovs.db.idl
        import ovs.poller
    helper = ovs.db.idl.SchemaHelper(location="/usr/share/openvswitch/vswitch.ovsschema")
    helper.register_columns("Bridge", ["name", "ports"])
    helper.register_columns("Port", ["name", "tag"])
    idl = ovs.db.idl.Idl(f"unix:{vs.remote}", helper)

    def idl_ports():
        idl.run()
        return sorted(row.name for row in idl.tables["Port"].rows.values())
    try:
        assert monitor.stdout.readline().startswith("row")
        assert monitor.stdout.readline().split(",")[1:] == ["initial", "br0", "65534\n"]
        wait_for(lambda: idl_ports() == ["br0"], what="the IDL's first contents")
        vs.vsctl("add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=tap")
        line = monitor.stdout.readline()
        while not line.strip() or line.startswith("row"):
            line = monitor.stdout.readline()
        assert line.split(",")[1:3] == ["insert", "p1"] and int(line.split(",")[3]) >= 1
        wait_for(lambda: idl_ports() == ["br0", "p1"], what="the IDL to see p1")
    finally:
        idl.close()
        monitor.kill()
        monitor.wait()
    root = ovs_vsctl(vs, "get", "Open_vSwitch", ".", "_uuid").stdout
    ovs_vsctl(vs, "set", "Open_vSwitch", ".", "external_ids:system-id=host-1")
    assert vs.stop()
    vs.start("--remote", f"punix:{vs.remote}")
    assert ovs_vsctl(vs, "get", "Open_vSwitch", ".", "_uuid", "external_ids:system-id").stdout == root + "host-1\n"
    assert vs.json("list-ports", "br0") == ["p1"]


def test_a_remote_another_server_holds_stops_the_start(tmp_path):
    import socket
    path = os.path.join(str(tmp_path), "db.sock")
    holder = socket.socket(socket.AF_UNIX)
    holder.bind(path)
    holder.listen(1)
    try:
        with netns.namespace("sw") as sw:
            vs = VSwitchd(sw, str(tmp_path / "d"))
            with pytest.raises(RuntimeError) as failed:
                vs.start("--remote", f"punix:{path}")
            assert f"cannot serve OVSDB: punix:{path}: another server is listening on {path}" in str(failed.value)
    finally:
        holder.close()
