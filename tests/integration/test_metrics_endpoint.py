"""The metrics endpoint against a real datapath: a Switch built in this process
(as bench/upcall_rate.py does) on two veth ports in a private namespace, its
upcalls handled on an asyncio loop that also serves vswitch.metrics over HTTP,
as the daemon will.  Frames go through the fast path, Prometheus' parser reads
the scrape (fetched with urllib from another thread while the loop keeps
running), and the port counters are those of switch.dump_ports()."""
import asyncio
import os
import socket
import struct
import urllib.error
import urllib.request

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from helpers import netns
from vswitch import metrics
from vswitch.datapath.dpif import Datapath
from vswitch.linkmon import LinkMonitor
from vswitch.switch import Switch

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
              pytest.mark.timeout(60)]

N_FLOOD, N_BACK = 40, 25
MAC_A, MAC_B = bytes.fromhex("020000000a01"), bytes.fromhex("020000000b01")
BROADCAST = b"\xff" * 6
PORT_COLUMNS = ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped")


def config():
    """br0 with pa and qa (no bridge-internal port), as bench/upcall_rate.py."""
    return {"Bridge": {"b": {"name": "br0", "ports": ["p1", "p2"]}},
            "Port": {"p1": {"name": "pa", "interfaces": ["i1"]}, "p2": {"name": "qa", "interfaces": ["i2"]}},
            "Interface": {"i1": {"name": "pa", "type": ""}, "i2": {"name": "qa", "type": ""}}}


def frame(dst, src, seq):
    # ethertype 0x88b5 (local experimental): L2 only, no kernel stack involved
    return dst + src + b"\x88\xb5" + struct.pack("!I", seq) + b"\0" * 42


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def by_port(family):
    return {s.labels["port"]: s.value for s in family.samples if s.labels["bridge"] == "br0"}


@pytest.fixture
def rig():
    with netns.namespace("metrics") as ns:
        for a, b in (("pa", "pb"), ("qa", "qb")):
            netns.run(ns, "ip", "link", "add", "name", a, "type", "veth", "peer", "name", b)
            netns.run(ns, "ip", "link", "set", a, "up")
            netns.run(ns, "ip", "link", "set", b, "up")
        with netns.entered(ns):
            dp = Datapath()
            sw = Switch(dp)
            sw.apply_config(config())  # opens the ports: must run in the namespace
            socks = {}
            for name in ("pb", "qb"):
                socks[name] = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                socks[name].bind((name, 0))
        linkmon = LinkMonitor(netns=ns)
        try:
            yield ns, dp, sw, socks, linkmon
        finally:
            linkmon.close()
            for s in socks.values():
                s.close()
            sw.close()
            dp.close()


async def settle(sw, at_least, timeout=10.0):
    """Waits until br0's counters stop moving (and reach `at_least`); returns dump_ports."""
    loop = asyncio.get_running_loop()
    deadline, last = loop.time() + timeout, None
    while True:
        rows = {r["port"]: r for r in sw.dump_ports("br0")}
        if rows == last and at_least(rows):
            return rows
        if loop.time() > deadline:
            raise AssertionError(f"port counters did not settle: {rows}")
        last = rows
        await asyncio.sleep(0.2)


def test_scrape_over_http_matches_dump_ports_of_a_real_datapath(rig):
    ns, dp, sw, socks, linkmon = rig

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_reader(dp.upcall_fd, sw.handle_upcalls)  # as the daemon
        # carrier of every netdev now, then its changes (the daemon's link monitor)
        for name, ev in linkmon.snapshot().items():
            sw.interfaces.links[name] = ev
            sw.carriers[name] = ev.carrier
        sw.interfaces.following_links = True

        def on_links():
            for ev in linkmon.drain():
                sw.link_event(ev)
        loop.add_reader(linkmon.fileno(), on_links)

        server = await metrics.start_metrics_server(sw, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        url = base + "/metrics"
        try:
            # A floods to qa (unknown destination) and is learned on pa; B
            # answers to A: one megaflow each way, the rest hits the fast path.
            for i in range(N_FLOOD):
                socks["pb"].send(frame(BROADCAST, MAC_A, i))
                await asyncio.sleep(0.002)
            await asyncio.sleep(0.3)
            for i in range(N_BACK):
                socks["qb"].send(frame(MAC_A, MAC_B, i))
                await asyncio.sleep(0.002)
            rows = await settle(sw, lambda r: r["pa"]["rx_packets"] >= N_FLOOD
                                and r["qa"]["rx_packets"] >= N_BACK and r["pa"]["tx_packets"] >= N_BACK)

            ctype, text = await asyncio.to_thread(scrape, url)  # the loop keeps serving
            after = {r["port"]: r for r in sw.dump_ports("br0")}
            stats = dp.stats()

            with pytest.raises(urllib.error.HTTPError) as err:
                await asyncio.to_thread(urllib.request.urlopen, base + "/", timeout=5)
            not_found = err.value.code

            # carrier lost on qa's peer: the scrape says so
            netns.run(ns, "ip", "link", "set", "qb", "down")
            for _ in range(50):
                if sw.netdev_column("Interface", "link_state", "qa") == "down":
                    break
                await asyncio.sleep(0.1)
            _, text_down = await asyncio.to_thread(scrape, url)
            return rows, after, ctype, text, stats, not_found, text_down
        finally:
            loop.remove_reader(dp.upcall_fd)
            loop.remove_reader(linkmon.fileno())
            await metrics.stop_metrics_server(server)

    rows, after, ctype, text, stats, not_found, text_down = asyncio.run(main())
    assert after == rows, "counters moved while scraping"
    assert ctype == CONTENT_TYPE_LATEST
    assert not_found == 404
    fams = families(text)

    # port counters: exactly dump-ports
    for col in PORT_COLUMNS:
        assert by_port(fams[f"vswitch_port_{col}"]) == {p: r[col] for p, r in rows.items()}, col
    assert rows["pa"]["rx_packets"] >= N_FLOOD and rows["qa"]["tx_packets"] >= N_FLOOD
    assert rows["qa"]["rx_packets"] >= N_BACK and rows["pa"]["tx_packets"] >= N_BACK
    assert rows["pa"]["rx_bytes"] >= N_FLOOD * 60
    assert by_port(fams["vswitch_port_rx_errors"]) == {
        p: sw.interface_statistics(p)["rx_malformed"] for p in rows}
    assert by_port(fams["vswitch_port_link_up"]) == {"pa": 1.0, "qa": 1.0}
    assert by_port(families(text_down)["vswitch_port_link_up"]) == {"pa": 1.0, "qa": 0.0}

    # datapath totals and the poll thread(s)
    def total(name):
        return fams[name].samples[0].value
    assert total("vswitch_datapath_packets") == stats["packets"] >= N_FLOOD + N_BACK
    assert total("vswitch_datapath_upcalls") == stats["upcalls"] >= 2
    assert total("vswitch_datapath_upcall_drops") == stats["upcall_drops"] == 0
    assert total("vswitch_datapath_megaflows") == stats["n_flows"] >= 2
    assert (total("vswitch_datapath_emc_hits") + total("vswitch_datapath_megaflow_hits")
            + total("vswitch_datapath_misses")) >= N_FLOOD + N_BACK
    pmd_packets = {s.labels["pmd"]: s.value for s in fams["vswitch_pmd_packets"].samples}
    assert len(pmd_packets) == stats["n_pmds"] >= 1
    assert sum(pmd_packets.values()) == stats["packets"]
    assert sum(s.value for s in fams["vswitch_pmd_busy_cycles"].samples) > 0
    rates = [s.value for s in fams["vswitch_pmd_hit_rate"].samples]
    assert rates and all(0.5 < r <= 1 for r in rates)  # most frames hit the megaflows

    # bridge-level gauges
    assert {s.labels["bridge"]: s.value for s in fams["vswitch_mac_table_entries"].samples} == {"br0": 2}
    assert {s.labels["bridge"]: s.value for s in fams["vswitch_openflow_connections"].samples} == {"br0": 0}
    assert "vswitch_metrics_collect_errors" not in fams
