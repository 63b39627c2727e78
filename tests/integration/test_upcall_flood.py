"""A flood of new flows must not stall established ones: the upcall ring is
bounded, overflow is dropped and counted, and traffic on installed megaflows
keeps flowing in C while Python works through the misses."""
import contextlib
import socket
import struct
import threading

from helpers import netns
from helpers.vswitchd import running_vswitchd, wait_for


def test_new_flow_flood_does_not_stall_established_traffic(tmp_path):
    with contextlib.ExitStack() as stack:
        sw = stack.enter_context(netns.namespace("fsw"))
        hosts = {}
        vs = stack.enter_context(running_vswitchd(sw, tmp_path))
        vs.vsctl("add-br", "br0")
        for name, ip in (("fa", "10.8.0.1"), ("fb", "10.8.0.2"), ("fc", None)):
            ns = stack.enter_context(netns.namespace("h" + name))
            netns.run(sw, "ip", "link", "add", "name", name, "type", "veth", "peer", "name", "eth0",
                      "netns", ns)
            netns.run(sw, "ip", "link", "set", name, "up")
            if ip:
                netns.run(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            netns.run(ns, "ip", "link", "set", "eth0", "up")
            vs.vsctl("add-port", "br0", name)
            hosts[name] = ns
        # Established: a ping between fa and fb installs its megaflows.
        netns.run(hosts["fa"], "ping", "-c", "2", "-i", "0.2", "10.8.0.2")

        # The flood: 100,000 frames from fc, each with a new source MAC, so
        # each is a new flow (a miss and an upcall).
        stop = threading.Event()
        sent = [0]

        def flood():
            with netns.entered(hosts["fc"]):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind(("eth0", 0))
            try:
                for i in range(100_000):
                    if stop.is_set():
                        break
                    s.send(b"\xff" * 6 + struct.pack("!HI", 0x0200, i) + b"\x88\xb5" + b"\0" * 46)
                    sent[0] += 1
            finally:
                s.close()

        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            ping = netns.run(hosts["fa"], "ping", "-c", "50", "-i", "0.02", "-W", "1", "10.8.0.2",
                             check=False, timeout=60)
        finally:
            stop.set()
            flooder.join()
        stats = vs.json("pmd-stats-show")
        # The flood really overloaded the slow path...
        assert sent[0] > 10_000
        assert stats["misses"] > 10_000
        # ...and the established flow did not notice: every echo came back.
        assert " 0% packet loss" in ping.stdout, ping.stdout
        wait_for(lambda: vs.json("pmd-stats-show")["upcalls"] + vs.json("pmd-stats-show")["upcall_drops"]
                 >= stats["misses"], what="every miss accounted as an upcall or a counted drop")
