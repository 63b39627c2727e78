"""`vswitchd --metrics`: the endpoint of a real daemon parses with
prometheus-client's own parser and its port counters match dump-ports."""
import time
import urllib.request

import pytest
from helpers import netns
from helpers.vswitchd import VSwitchd
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(60)
PORT = 19477


def scrape(ns):
    with netns.entered(ns):
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/metrics", timeout=5) as reply:
            return reply.read().decode()


def test_metrics_match_dump_ports(tmp_path):
    with netns.namespace("mt") as sw, netns.namespace("mh") as host:
        netns.run(sw, "ip", "link", "set", "lo", "up")
        vs = VSwitchd(sw, str(tmp_path)).start("--metrics", str(PORT))
        try:
            vs.vsctl("add-br", "br0")
            for name, ip in (("m1", "10.8.0.1"), ("m2", "10.8.0.2")):
                netns.run(sw, "ip", "link", "add", name, "type", "veth", "peer", "name", name + "h",
                          "netns", host)
                netns.run(sw, "ip", "link", "set", name, "up")
                vs.vsctl("add-port", "br0", name)
            # Both host ends in one namespace would route locally: just send.
            netns.run(host, "ip", "link", "set", "m1h", "up")
            netns.run(host, "ip", "addr", "add", "10.8.0.1/24", "dev", "m1h")
            netns.run(host, "ping", "-c", "5", "-i", "0.1", "-W", "1", "10.8.0.9", check=False)
            # The kernel keeps probing for the unanswered address a while:
            # compare a scrape with dump-ports taken while nothing arrived.
            for _ in range(20):
                time.sleep(0.5)
                rows = {r["port"]: r for r in vs.json("dump-ports", "br0")}
                text = scrape(sw)
                if rows == {r["port"]: r for r in vs.json("dump-ports", "br0")}:
                    break
            families = {f.name: f for f in text_string_to_metric_families(text)}
            for port in ("m1", "m2"):
                for counter in ("rx_packets", "tx_packets", "rx_bytes"):
                    family = families[f"vswitch_port_{counter}"]
                    value = next(s.value for s in family.samples
                                 if s.labels == {"bridge": "br0", "port": port} and s.name.endswith("_total"))
                    assert value == rows[port][counter], (port, counter)
            assert next(s.value for s in families["vswitch_port_rx_packets"].samples
                        if s.labels["port"] == "m1") >= 1  # the ARP requests arrived
            assert "vswitch_datapath_megaflows" in families
        finally:
            vs.stop()
