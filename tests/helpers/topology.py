"""A switch with VM-like hosts for integration tests: a real vswitchd with
bridge br0 in its own namespace, and hosts in namespaces of their own joined
by a veth (the switch end an afpacket or afxdp port) or by a switch-owned tap.

    with switch_with_bridge(tmp_path) as topo:
        topo.veth_host("p1", "10.0.0.1", tag=10)          # Port columns
        topo.veth_host("x1", "10.0.0.2", "type=afxdp")    # Interface columns
        topo.tap_host("vm1", "10.0.0.3")
        assert topo.ping("p1", "vm1")

Every namespace (and with it every link) and the daemon go away when the
block ends.
"""
import contextlib

from helpers import netns
from helpers.vswitchd import running_vswitchd, wait_for


class Topology:
    """sw: the switch's namespace; hosts: name -> (namespace, ifname, ip)."""

    ping_wait = 1  # seconds ping waits for each reply

    def __init__(self, stack, sw, vs):
        self.stack, self.sw, self.vs, self.hosts = stack, sw, vs, {}

    def veth_host(self, port, ip, *iface_cols, queues=None, sw_end_up=True, **port_cols):
        """A host namespace joined by a veth whose switch end becomes `port`,
        with the given Port columns (key=value) and Interface columns
        ("col=value" strings).  Returns the host's namespace."""
        ns = self.stack.enter_context(netns.namespace("h" + port))
        q = ["numrxqueues", str(queues), "numtxqueues", str(queues)] if queues else []
        netns.run(self.sw, "ip", "link", "add", "name", port, *q, "type", "veth", "peer",
                  "name", "eth0", *q, "netns", ns)
        if sw_end_up:
            netns.run(self.sw, "ip", "link", "set", port, "up")
        self._host_up(ns, "eth0", ip)
        cols = [f"{k}={v}" for k, v in port_cols.items()]
        extra = ["--", "set", "interface", port, *iface_cols] if iface_cols else []
        self.vs.vsctl("add-port", "br0", port, *cols, *extra)
        self.hosts[port] = (ns, "eth0", ip)
        return ns

    def tap_host(self, port, ip):
        """A switch-owned tap `port` whose kernel side moves into a new host
        namespace.  Returns the host's namespace."""
        ns = self.stack.enter_context(netns.namespace("h" + port))
        self.vs.vsctl("add-port", "br0", port, "--", "set", "interface", port, "type=tap")
        wait_for(lambda: netns.run(self.sw, "ip", "link", "show", port, check=False).returncode == 0,
                 what=f"tap {port} to appear")
        netns.run(self.sw, "ip", "link", "set", port, "netns", ns)
        self._host_up(ns, port, ip)
        self.hosts[port] = (ns, port, ip)
        return ns

    @staticmethod
    def _host_up(ns, ifname, ip):
        netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", ifname)
        netns.run(ns, "ip", "link", "set", ifname, "up")

    def ping(self, src, dst, count=3):
        proc = netns.run(self.hosts[src][0], "ping", "-c", str(count), "-i", "0.2",
                         "-W", str(self.ping_wait), self.hosts[dst][2], check=False)
        return proc.returncode == 0

    def mac(self, port):
        ns, ifname, _ = self.hosts[port]
        return netns.run(ns, "cat", f"/sys/class/net/{ifname}/address").stdout.strip()


@contextlib.contextmanager
def switch_with_bridge(workdir, topology=Topology):
    """A vswitchd in a fresh namespace with bridge br0; yields `topology`."""
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("sw"))
        vs = stack.enter_context(running_vswitchd(sw, workdir))
        vs.vsctl("add-br", "br0")
        yield topology(stack, sw, vs)
