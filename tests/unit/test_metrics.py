"""vswitch/metrics.py on the fake datapath (no root, no devices): the collector
reads the real Switch, the families parse as Prometheus text, and the tiny
HTTP server answers, refuses and times out as it should."""
import asyncio

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from scapy.layers.l2 import Ether

from vswitch import metrics
from vswitch.linkmon import LinkEvent
from vswitch.switch import Switch

PORT_COLUMNS = ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes", "tx_dropped")


class StatsDatapath(FakeDatapath):
    """The fake with the figures the C datapath reports: per-port counters,
    datapath totals and two poll threads."""

    def __init__(self):
        super().__init__()
        self.counters = {}  # port number -> port_stats dict

    def port_stats(self, port_no):
        if port_no not in self.ports:
            return None
        base = 100 * port_no
        return dict(self.counters.get(port_no) or {
            "rx_packets": base + 1, "rx_bytes": base + 2, "rx_dropped": base + 3,
            "rx_malformed": base + 4, "tx_packets": base + 5, "tx_bytes": base + 6,
            "tx_dropped": base + 7, "poll_errors": 0, "dead": 0})

    PMDS = [
        {"cpu": 2, "busy_poll": 1, "packets": 900, "batches": 30, "emc_hits": 700, "megaflow_hits": 150,
         "misses": 50, "upcalls": 49, "upcall_drops": 1, "malformed": 3, "busy_ns": 2_000_000_000,
         "idle_ns": 6_000_000_000, "busy_cycles": 5000, "idle_cycles": 15000, "rx_cycles": 1000,
         "process_cycles": 3000, "tx_cycles": 1000},
        {"cpu": -1, "busy_poll": 0, "packets": 0, "batches": 0, "emc_hits": 0, "megaflow_hits": 0,
         "misses": 0, "upcalls": 0, "upcall_drops": 0, "malformed": 0, "busy_ns": 0,
         "idle_ns": 1_000_000_000, "busy_cycles": 0, "idle_cycles": 2500, "rx_cycles": 0,
         "process_cycles": 0, "tx_cycles": 0},
    ]

    def stats(self):
        keys = ("packets", "batches", "emc_hits", "megaflow_hits", "misses", "upcalls",
                "upcall_drops", "malformed", "busy_ns", "idle_ns", "busy_cycles", "idle_cycles")
        total = {k: sum(p[k] for p in self.PMDS) for k in keys}
        return {**total, "n_flows": len(self.flows), "n_subtables": 3, "n_pmds": len(self.PMDS)}

    def pmd_stats(self):
        return [dict(p) for p in self.PMDS]


def make_switch(dp):
    sw = Switch(dp, clock=Clock())
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"],
              ["add-bond", "br0", "bond0", "m1", "m2"],
              ["add-br", "br1"], ["add-port", "br1", "q1"])
    return sw


@pytest.fixture
def sw():
    switch = make_switch(StatsDatapath())
    yield switch
    switch.close()


@pytest.fixture
def plain_sw():
    switch = make_switch(FakeDatapath())
    yield switch
    switch.close()


def scrape(switch):
    """One scrape of a fresh registry, parsed: {family name: Metric}."""
    text = generate_latest(metrics.make_registry(switch)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(family, **fixed):
    """{label tuple without the fixed ones: value} of a family's samples that match `fixed`."""
    out = {}
    for s in family.samples:
        if all(s.labels.get(k) == v for k, v in fixed.items()):
            rest = tuple(v for k, v in sorted(s.labels.items()) if k not in fixed)
            out[rest[0] if len(rest) == 1 else rest] = s.value
    return out


def value(family, **labels):
    (v,) = [s.value for s in family.samples if s.labels == labels]
    return v


# ------------------------------------------------------------------ ports
def test_port_counters_are_dump_ports_of_every_bridge(sw):
    fams = scrape(sw)
    for col in PORT_COLUMNS:
        fam = fams[f"vswitch_port_{col}"]
        assert fam.type == "counter"
        assert {s.name for s in fam.samples} == {f"vswitch_port_{col}_total"}
        for br in ("br0", "br1"):
            assert samples(fam, bridge=br) == {r["port"]: r[col] for r in sw.dump_ports(br)}
    assert set(samples(fams["vswitch_port_rx_packets"], bridge="br0")) == {"br0", "p1", "p2", "m1", "m2"}
    assert set(samples(fams["vswitch_port_rx_packets"], bridge="br1")) == {"br1", "q1"}
    # rx_errors is the datapath's rx_malformed
    p1 = sw.ifaces["p1"].dp_port  # the fake's counters are by datapath port
    assert value(fams["vswitch_port_rx_errors"], bridge="br0", port="p1") == 100 * p1 + 4
    assert value(fams["vswitch_port_tx_dropped"], bridge="br0", port="p1") == 100 * p1 + 7


def test_counters_follow_the_live_switch_on_every_scrape(sw):
    p2 = sw.ifaces["p2"].dp_port
    registry = metrics.make_registry(sw)
    first = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    sw.dp.counters[p2] = {"rx_packets": 10**12, "rx_bytes": 2**40, "rx_malformed": 9}
    again = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert value(first["vswitch_port_rx_packets"], bridge="br0", port="p2") == 100 * p2 + 1
    assert value(again["vswitch_port_rx_packets"], bridge="br0", port="p2") == 10**12
    assert value(again["vswitch_port_rx_bytes"], bridge="br0", port="p2") == 2**40
    assert value(again["vswitch_port_rx_errors"], bridge="br0", port="p2") == 9
    assert value(again["vswitch_port_tx_packets"], bridge="br0", port="p2") == 0  # dump-ports' default


def test_link_up_from_the_netdevs_link_state_and_absent_when_unknown(sw):
    assert "vswitch_port_link_up" not in scrape(sw)  # no link monitor: nothing known
    for i, (name, carrier) in enumerate((("p1", True), ("p2", False), ("q1", True))):
        sw.interfaces.links[name] = LinkEvent(name=name, ifindex=10 + i, exists=True, admin_up=True,
                                              carrier=carrier, mac=None, mtu=1500)
    fam = scrape(sw)["vswitch_port_link_up"]
    assert fam.type == "gauge"
    assert samples(fam, bridge="br0") == {"p1": 1.0, "p2": 0.0}
    assert samples(fam, bridge="br1") == {"q1": 1.0}


def test_ports_of_a_removed_bridge_disappear(sw):
    configure(sw, ["del-br", "br1"])
    fams = scrape(sw)
    assert samples(fams["vswitch_port_rx_packets"], bridge="br1") == {}
    assert set(samples(fams["vswitch_mac_table_entries"])) == {"br0"}


# ------------------------------------------------------------------ datapath and poll threads
def test_datapath_totals_and_per_pmd_families(sw):
    fams = scrape(sw)
    total = sw.pmd_stats()
    for key, suffix in (("packets", "packets"), ("upcalls", "upcalls"), ("upcall_drops", "upcall_drops"),
                        ("emc_hits", "emc_hits"), ("megaflow_hits", "megaflow_hits"),
                        ("misses", "misses"), ("busy_cycles", "busy_cycles"),
                        ("idle_cycles", "idle_cycles")):
        fam = fams[f"vswitch_datapath_{suffix}"]
        assert fam.type == "counter" and fam.samples[0].name == f"vswitch_datapath_{suffix}_total"
        assert fam.samples[0].value == total[key]
    assert fams["vswitch_datapath_busy_seconds"].samples[0].value == pytest.approx(2.0)
    assert fams["vswitch_datapath_megaflows"].type == "gauge"
    assert fams["vswitch_datapath_megaflows"].samples[0].value == len(sw.dp.flows)
    assert fams["vswitch_datapath_pmds"].samples[0].value == 2

    assert samples(fams["vswitch_pmd_packets"]) == {"0": 900, "1": 0}
    assert samples(fams["vswitch_pmd_busy_cycles"]) == {"0": 5000, "1": 0}
    assert samples(fams["vswitch_pmd_idle_cycles"]) == {"0": 15000, "1": 2500}
    assert samples(fams["vswitch_pmd_idle_seconds"]) == {"0": 6.0, "1": 1.0}
    assert samples(fams["vswitch_pmd_cpu"]) == {"0": 2, "1": -1}
    # hit rate: (700 + 150) / 900; a thread with no lookups yet has none
    assert samples(fams["vswitch_pmd_hit_rate"]) == {"0": pytest.approx(850 / 900, abs=1e-4)}


def test_megaflow_gauge_counts_installed_flows(sw):
    p1, p2 = sw.ifaces["p1"].dp_port, sw.ifaces["p2"].dp_port
    for port, src in ((p1, "02:00:00:00:00:01"), (p2, "02:00:00:00:00:02")):
        sw.dp.receive(port, bytes(Ether(src=src, dst="ff:ff:ff:ff:ff:ff", type=0x88b5) / (b"\0" * 46)))
    sw.handle_upcalls()
    fams = scrape(sw)
    assert fams["vswitch_datapath_megaflows"].samples[0].value == len(sw.dp.flows) == 2
    assert value(fams["vswitch_mac_table_entries"], bridge="br0") == 2
    assert value(fams["vswitch_mac_table_entries"], bridge="br1") == 0


def test_a_datapath_without_pmd_figures_leaves_those_families_out(plain_sw):
    # FakeDatapath has no pmd_stats and its stats() only knows n_flows.
    fams = scrape(plain_sw)
    assert not [n for n in fams if n.startswith("vswitch_pmd_")]
    assert "vswitch_datapath_packets" not in fams
    assert fams["vswitch_datapath_megaflows"].samples[0].value == 0
    assert "vswitch_metrics_collect_errors" not in fams
    # the port counters are there all the same (dump-ports' zeros)
    assert samples(fams["vswitch_port_rx_packets"], bridge="br0") == {
        "br0": 0, "p1": 0, "p2": 0, "m1": 0, "m2": 0}


def test_a_section_that_fails_is_counted_and_the_rest_still_served(plain_sw):
    def broken():
        raise RuntimeError("datapath went away")
    plain_sw.dp.stats = broken
    registry = metrics.make_registry(plain_sw)
    generate_latest(registry)
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert "vswitch_datapath_megaflows" not in fams
    assert samples(fams["vswitch_metrics_collect_errors"]) == {"datapath": 2}
    assert "vswitch_port_rx_packets" in fams and "vswitch_bond_member_enabled" in fams


# ------------------------------------------------------------------ bridges, OpenFlow, bonds
def test_openflow_connections_and_mac_table_per_bridge(sw):
    sw.of["br0"].connected.update({7: 4, 8: 1})
    fams = scrape(sw)
    assert samples(fams["vswitch_openflow_connections"]) == {"br0": 2, "br1": 0}
    assert samples(fams["vswitch_mac_table_entries"]) == {"br0": 0, "br1": 0}


def test_bond_member_enabled_follows_bond_show(sw):
    fam = scrape(sw)["vswitch_bond_member_enabled"]
    shown = {m: v["enabled"] for m, v in sw.feature_show("bond", "bond0")[0]["members"].items()}
    assert samples(fam, bridge="br0", bond="bond0") == {m: float(e) for m, e in shown.items()}
    assert set(shown) == {"m1", "m2"}

    sw.link_changed("m2", False)  # carrier lost: the member is disabled
    sw.clock.now += 1
    sw.run_features()
    shown = {m: v["enabled"] for m, v in sw.feature_show("bond", "bond0")[0]["members"].items()}
    assert shown["m2"] is False
    fam = scrape(sw)["vswitch_bond_member_enabled"]
    assert samples(fam, bridge="br0", bond="bond0") == {"m1": float(shown["m1"]), "m2": 0.0}


# ------------------------------------------------------------------ --metrics argument
@pytest.mark.parametrize("text, expected", [
    ("9477", ("127.0.0.1", 9477)),
    (":9477", ("127.0.0.1", 9477)),
    ("127.0.0.1:9477", ("127.0.0.1", 9477)),
    ("localhost:9100", ("127.0.0.1", 9100)),
    ("[::1]:9477", ("::1", 9477)),
    ("0.0.0.0:9477", ("0.0.0.0", 9477)),      # written out: explicit consent
    ("10.1.2.3:80", ("10.1.2.3", 80)),
    ("[::]:9477", ("::", 9477)),
])
def test_parse_listen(text, expected):
    assert metrics.parse_listen(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("127.0.0.1", "not a number"),
    ("127.0.0.1:", "not a number"),
    ("127.0.0.1:http", "not a number"),
    ("127.0.0.1:0", "not in 1-65535"),
    ("127.0.0.1:65536", "not in 1-65535"),
    ("example.com:9477", "not an IP address"),
    ("::1:9477", "brackets"),
    ("[::1]9477", "[ADDR]:PORT"),
    ("300.1.1.1:9477", "not an IP address"),
])
def test_parse_listen_refuses_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match="metrics address") as info:
        metrics.parse_listen(text)
    assert message in str(info.value)


# ------------------------------------------------------------------ HTTP server
async def _request(port, data, read_timeout=5.0):
    """The whole answer; b"" if the server closed or reset without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), read_timeout)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def _split(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def serve(switch, test, **kwargs):
    """Runs `test(port)` against a metrics server on a fresh loop."""
    async def main():
        server = await metrics.start_metrics_server(switch, "127.0.0.1", 0, **kwargs)
        try:
            return await test(server.sockets[0].getsockname()[1], server)
        finally:
            await metrics.stop_metrics_server(server)
    return asyncio.run(main())


def test_http_get_metrics(sw):
    async def test(port, server):
        return await _request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
    status, headers, body = _split(serve(sw, test))
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert int(headers["Content-Length"]) == len(body)
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert samples(fams["vswitch_port_rx_packets"], bridge="br1") == {
        r["port"]: r["rx_packets"] for r in sw.dump_ports("br1")}


def test_http_head_other_paths_and_methods(sw):
    async def test(port, server):
        return [await _request(port, req) for req in (
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET /metricsx HTTP/1.0\r\n\r\n",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"\x16\x03\x01\x00\xa5garbage\r\n\r\n",
            b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n",
        )]
    head, root, other, post, http09, tls, query = (_split(r) for r in serve(sw, test))
    assert head[0] == 200 and head[2] == b"" and int(head[1]["Content-Length"]) > 1000
    assert root[0] == 404 and other[0] == 404
    assert post[0] == 405 and post[1]["Allow"] == "GET, HEAD"
    assert http09[0] == 400 and tls[0] == 400
    assert query[0] == 200


def test_http_oversized_request_is_refused(sw):
    async def test(port, server):
        big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * (metrics.MAX_REQUEST_BYTES * 2) + b"\r\n\r\n"
        return await _request(port, big)
    status, _, _ = _split(serve(sw, test))
    assert status == 431


def test_http_slow_client_times_out_and_does_not_block_a_scrape(sw):
    async def test(port, server):
        loop = asyncio.get_running_loop()
        # One client sends half a request line and stalls...
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"GET /metr")
        await slow_writer.drain()
        t0 = loop.time()
        # ...a scrape meanwhile is answered at once...
        fast = await asyncio.wait_for(_request(port, b"GET /metrics HTTP/1.1\r\n\r\n"), 0.3)
        # ...and the slow one is cut off after the read timeout.
        slow = await asyncio.wait_for(slow_reader.read(), 3)
        slow_writer.close()
        return fast, slow, loop.time() - t0
    fast, slow, took = serve(sw, test, read_timeout=0.5)
    assert _split(fast)[0] == 200
    assert _split(slow)[0] == 408
    assert 0.4 < took < 2.5


def test_http_connections_beyond_the_limit_are_dropped(sw):
    async def test(port, server):
        idle = []
        for _ in range(metrics.MAX_CLIENTS):
            idle.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.05)
        assert server.metrics.clients == metrics.MAX_CLIENTS
        over = await _request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.05)
        after = await _request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        return over, after
    over, after = serve(sw, test, read_timeout=2)
    assert over == b""  # closed without an answer
    assert _split(after)[0] == 200


def test_stopping_drops_a_stalled_client_at_once(sw, caplog):
    async def main():
        loop = asyncio.get_running_loop()
        server = await metrics.start_metrics_server(sw, "127.0.0.1", 0, read_timeout=30)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /")
        await asyncio.sleep(0.05)
        t0 = loop.time()
        await metrics.stop_metrics_server(server)
        took = loop.time() - t0
        try:
            rest = await asyncio.wait_for(reader.read(), 1)
        except ConnectionResetError:
            rest = b""
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        return took, rest
    took, rest = asyncio.run(main())
    assert took < 1 and rest == b""
    assert not [r for r in caplog.records if r.levelno >= 40]


def test_server_binds_loopback_unless_given_an_address(sw):
    async def main():
        server = await metrics.start_metrics_server(sw, "", 0)
        try:
            return server.sockets[0].getsockname()[0]
        finally:
            await metrics.stop_metrics_server(server)
    assert asyncio.run(main()) == "127.0.0.1"


def test_an_address_in_use_is_a_clear_error(sw):
    async def main():
        first = await metrics.start_metrics_server(sw, "127.0.0.1", 0)
        port = first.sockets[0].getsockname()[1]
        try:
            with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
                await metrics.start_metrics_server(sw, "127.0.0.1", port)
        finally:
            await metrics.stop_metrics_server(first)
    asyncio.run(main())
