"""vswitchd's ovs-appctl texts: the renderers against lines Open vSwitch 3.1
printed (captured from a private ovs-vswitchd on this machine), coverage's
moving averages with a hand-driven clock, vlog/set's OVS spec words, and the
commands on a real Switch over the fake datapath (no root)."""
import asyncio

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from vswitch import vlog
from vswitch.appctl import commands as appctl_commands
from vswitch.appctl import render
from vswitch.appctl.coverage import Coverage
from vswitch.appctl.protocol import Reply, UnixctlError
from vswitch.datapath import dpif, flowkey
from vswitch.round_cpu import RoundCpu
from vswitch.switch import Switch

FULL = {f: flowkey.full_mask(f) for f in flowkey.FIELDS}
MAC1, MAC2 = flowkey.mac_int("82:d8:07:69:3a:15"), flowkey.mac_int("76:9b:5e:47:ce:d6")


def mf(key, mask, actions, packets=0, nbytes=0, used_ns=0, tcp_flags=0):
    return dpif.MegaflowStats(key=key, mask=mask, actions=actions, packets=packets, bytes=nbytes,
                              used_ns=used_ns, tcp_flags=tcp_flags)


# ---------------------------------------------------------------- dpctl/dump-flows (ODP syntax)

def test_dump_flows_lines_are_ovs_lines():
    arp = mf({"in_port": 2, "dl_src": MAC1, "dl_dst": 0xFFFFFFFFFFFF, "dl_type": 0x0806,
              "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "nw_proto": 1},
             {"in_port": FULL["in_port"], "dl_src": FULL["dl_src"], "dl_dst": FULL["dl_dst"],
              "dl_type": 0xFFFF, "nw_src": FULL["nw_src"], "nw_dst": FULL["nw_dst"], "nw_proto": 0xFF},
             [("output", 1), ("output", 3)])
    ip = mf({"in_port": 3, "dl_src": MAC2, "dl_dst": MAC1, "dl_type": 0x0800, "nw_frag": 0},
            {"in_port": FULL["in_port"], "dl_src": FULL["dl_src"], "dl_dst": FULL["dl_dst"],
             "dl_type": 0xFFFF, "nw_frag": 0xFF},
            [("output", 2)], packets=2, nbytes=196, used_ns=10**9 - 53 * 10**6)
    text = render.format_dp_flows([arp, ip], now_ns=10**9)
    assert text == (  # as ovs-appctl dpctl/dump-flows printed them (OVS 3.1, netdev datapath)
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=82:d8:07:69:3a:15,dst=ff:ff:ff:ff:ff:ff),"
        "eth_type(0x0806),arp(sip=10.0.0.1,tip=10.0.0.2,op=1), packets:0, bytes:0, used:never, actions:1,3\n"
        "recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth(src=76:9b:5e:47:ce:d6,dst=82:d8:07:69:3a:15),"
        "eth_type(0x0800),ipv4(frag=no), packets:2, bytes:196, used:0.053s, actions:2\n")


def test_odp_vlan_masks_l4_names_and_flags():
    key = {"in_port": 1, "vlan_tci": 0x1000 | 10, "dl_type": 0x0800, "nw_src": 0x0A000000,
           "nw_proto": 6, "tp_dst": 80}
    mask = {"in_port": FULL["in_port"], "vlan_tci": 0x1FFF, "dl_type": 0xFFFF, "nw_src": 0xFFFFFF00,
            "nw_proto": 0xFF, "tp_dst": 0xFFFF}
    assert render.format_odp_flow(key, mask, {1: "p1"}) == (
        "recirc_id(0),in_port(p1),packet_type(ns=0,id=0),eth_type(0x8100),vlan(vid=10),"
        "encap(eth_type(0x0800),ipv4(src=10.0.0.0/255.255.255.0,proto=6),tcp(dst=80))")
    # An untagged key has no vlan(), as OVS's; pcp shows when set, /mask when partial.
    assert "vlan" not in render.format_odp_flow({"vlan_tci": 0}, {"vlan_tci": 0x1FFF})
    assert render.format_vlan_tci(0x1000 | (5 << 13) | 7, 0xFFFF) == "vid=7,pcp=5"
    assert render.format_vlan_tci(0x1000 | 7, 0x0F00 | 0x1000) == "vid=7/0xf00"
    v6 = render.format_odp_flow({"dl_type": 0x86DD, "ipv6_dst": 1, "nw_proto": 58, "tp_src": 135},
                                {"dl_type": 0xFFFF, "ipv6_dst": FULL["ipv6_dst"], "nw_proto": 0xFF,
                                 "tp_src": 0xFFFF})
    assert v6.endswith("eth_type(0x86dd),ipv6(dst=::1,proto=58),icmpv6(type=135)")
    assert render.format_tcp_flags(0x02 | 0x10) == "S."
    assert render.format_tcp_flags(0x01 | 0x02 | 0x08 | 0x10) == "SFP."
    assert render.format_tcp_flags(0) == "none"
    line = render.format_dp_flows([mf(key, mask, [], 1, 60, 1, tcp_flags=0x12)], now_ns=1)
    assert line.endswith(", packets:1, bytes:60, used:0.000s, flags:S., actions:drop\n")


def test_odp_actions():
    f = render.format_odp_actions
    assert f([]) == "drop"
    assert f([("push_vlan", 0x1000 | 10), ("output", 2), ("pop_vlan", 0), ("output", 3)]) == \
        "push_vlan(vid=10,pcp=0),2,pop_vlan,3"
    assert f([("output", 2)], {2: "p2"}) == "p2"
    assert f([("set_eth_src", MAC1), ("set_ipv4_dst", 0x0A000002), ("set_tp_dst", 8080)], nw_proto=17) == \
        "set(eth(src=82:d8:07:69:3a:15)),set(ipv4(dst=10.0.0.2)),set(udp(dst=8080))"
    assert f([("trunc", 100), ("output", 4)]) == "trunc(100),4"
    assert f([("userspace", 0x100)]) == "userspace(pid=0,userdata(00000100))"
    assert f([("sample", (dpif.sample_probability(4), 7, 0, 128))]).startswith("sample(sample=25.0%,")


# ---------------------------------------------------------------- fdb/show, dpif/show, pmd, vlog

def test_fdb_show_layout_is_ovs():
    text = render.format_fdb([{"port": 1, "vlan": 0, "mac": "82:d8:07:69:3a:15", "age": 0},
                              {"port": "LOCAL", "vlan": 4095, "mac": "76:9b:5e:47:ce:d6", "age": 299}])
    assert text == (" port  VLAN  MAC                Age\n"
                    "    1     0  82:d8:07:69:3a:15    0\n"       # an OVS 3.1 line, byte for byte
                    "LOCAL  4095  76:9b:5e:47:ce:d6  299\n")


def test_dpif_show_layout_is_ovs():
    text = render.format_dpif_show(4, 5, {"br0": [("p2", 2, 3, "system"), ("br0", 65534, 1, "internal"),
                                                  ("p1", 1, 2, "system")]})
    assert text == ("netdev@vswitch: hit:4 missed:5\n"
                    "  br0:\n"
                    "    br0 65534/1: (internal)\n"
                    "    p1 1/2: (system)\n"              # OVS 3.1: "    p1 1/2: (system)"
                    "    p2 2/3: (system)\n")


def test_upcall_show_has_ovs_flows_line_and_round_cpu():
    cpu = RoundCpu(clock=iter([0, 250_000, 250_000, 900_000, 900_000, 1_000_000]).__next__,
                   wall=iter([0, 3_500_000]).__next__)
    cpu.start()
    cpu.step()       # 250 µs
    cpu.resume()
    cpu.step()       # 650 µs
    cpu.resume()
    cpu.step()       # 100 µs
    cpu.finish()
    text = render.format_upcall_show(3, 200000, cpu.summary())
    assert text == ("netdev@vswitch:\n"
                    "  flows         : (current 3) (limit 200000)\n"   # OVS: "(current 3) (avg 2) (max 4) (limit 200000)"
                    "  round cpu     : (last 1000us) (median 1000us) (max 1000us) over 1 rounds\n"
                    "  longest step  : (last 650us) (median 650us) (max 650us) of 3 steps\n"
                    "  last steps    : 250us 650us 100us\n"
                    "  dump duration : 3ms\n")
    assert render.format_upcall_show(0, 10, None) == "netdev@vswitch:\n  flows         : (current 0) (limit 10)\n"


def test_pmd_stats_lines_are_ovs_lines():
    counters = dict.fromkeys(render.PMD_COUNTERS, 0)
    counters.update(packets=9, batches=9, emc_hits=0, megaflow_hits=4, upcalls=5, upcall_drops=0)
    text = render.format_pmd_stats([("pmd thread numa_id 0 core_id 1:", counters)])
    assert text.splitlines() == [  # OVS 3.1's lines for the same counters (its main thread's block)
        "pmd thread numa_id 0 core_id 1:",
        "  packets received: 9",
        "  packet recirculations: 0",
        "  avg. datapath passes per packet: 1.00",
        "  phwol hits: 0",
        "  mfex opt hits: 0",
        "  simple match hits: 0",
        "  emc hits: 0",
        "  smc hits: 0",
        "  megaflow hits: 4",
        "  avg. subtable lookups per megaflow hit: 0.00",
        "  miss with success upcall: 5",
        "  miss with failed upcall: 0",
        "  avg. packets per output batch: 1.00"]
    counters.update(busy_cycles=100, idle_cycles=300)
    tail = render.format_pmd_stats([("pmd thread:", counters)]).splitlines()[-4:]
    assert tail == ["  idle cycles: 300 (75.00%)", "  processing cycles: 100 (25.00%)",
                    "  avg cycles per packet: 44.44 (400/9)",
                    "  avg processing cycles per packet: 11.11 (100/9)"]
    assert render.pmd_header({"cpu": -1}) == "pmd thread:"
    assert render.pmd_header({"cpu": 3}, numa=0) == "pmd thread numa_id 0 core_id 3:"


def test_vlog_list_and_memory_layouts():
    text = render.format_vlog_list([{"module": "backtrace", "level": "OFF"}, {"module": "bridge.lacp",
                                                                             "level": "DBG"}])
    lines = text.splitlines()
    assert lines[:2] == ["                 console    syslog    file",
                         "                 -------    ------    ------"]
    # OVS 3.1: "backtrace          OFF       INFO       INFO" -- same columns.
    assert lines[2] == "backtrace          OFF        OFF        OFF"
    assert lines[3] == "bridge.lacp        DBG        DBG        DBG"
    assert render.format_memory({"rules": 5, "handlers": 1, "udpif keys": 5, "ofconns": 0}) == \
        "handlers:1 rules:5 udpif keys:5\n"


def test_trace_layout_and_port_numbers():
    trace = {"bridge": "br0", "flow": "in_port=p1,dl_dst=00:00:00:00:00:02,dl_src=00:00:00:00:00:01",
             "pipeline": "NORMAL", "trace": ["trunk port p1: frame is in VLAN 0", "flood to: br0, p2"],
             "megaflow": "in_port=p1,vlan_tci=0x0000,dl_dst=00:00:00:00:00:02",
             "datapath_actions": "push_vlan(vid=10,pcp=0),br0,p2"}
    assert render.format_trace(trace, {"p1": 1, "br0": "LOCAL"}, {"p1": 2, "p2": 3, "br0": 1}) == (
        "Flow: in_port=1,dl_dst=00:00:00:00:00:02,dl_src=00:00:00:00:00:01\n"
        "\n"
        'bridge("br0")\n'
        "-------------\n"
        " trunk port p1: frame is in VLAN 0\n"
        " flood to: br0, p2\n"
        "\n"
        "Megaflow: recirc_id=0,eth,in_port=1,vlan_tci=0x0000,dl_dst=00:00:00:00:00:02\n"
        "Datapath actions: push_vlan(vid=10,pcp=0),1,3\n")
    assert render.split_actions("a,b(c,d(e,f)),g") == ["a", "b(c,d(e,f))", "g"]


# ---------------------------------------------------------------- coverage

def test_coverage_rates_over_5s_minute_and_hour():
    totals = {"netdev_received": 0, "never": 0}
    cov = Coverage(lambda: dict(totals))
    for _ in range(12):              # one minute at 10 packets per second
        totals["netdev_received"] += 50
        cov.run()
    totals["netdev_received"] += 25  # then 5 per second for one interval
    cov.run()
    lines = cov.show().splitlines()
    assert lines[0].startswith("Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=")
    assert lines[1] == ("netdev_received            5.0/sec     9.583/sec        0.1736/sec   total: 625")
    assert lines[2] == "1 events never hit"
    # Missed runs spread what came meanwhile over the slots, as OVS.
    totals["netdev_received"] += 100
    cov.run(slots=4)
    assert cov.min["netdev_received"][(cov.idx - 1) % 12] == 25


def test_coverage_hash_depends_on_names_and_ranks_only():
    a = Coverage(lambda: {"x": 5, "y": 3, "z": 0})._hash({"x": 5, "y": 3, "z": 0})
    assert a == Coverage._hash({"x": 5, "y": 3})
    assert a != Coverage._hash({"x": 5, "y": 6})


# ---------------------------------------------------------------- vlog/set words

def test_vlog_spec_words_as_ovs():
    known = {"switch": None, "bridge.lacp": None}
    parse = appctl_commands.parse_vlog_spec
    assert parse("switch:dbg", known) == "switch:dbg"
    assert parse("switch:file:warn", known) == "switch:warn"
    assert parse("ANY:console:info", known) == "ANY:info"
    assert parse("bridge.lacp", known) == "bridge.lacp:dbg"
    assert parse("off", known) == "ANY:off"
    for spec, error in [("nosuch:dbg", 'no destination, level, or module "nosuch"'),
                        ("switch:whatever", 'no destination, level, or module "whatever"'),
                        ("switch:dbg:info", "cannot specify multiple levels"),
                        ("file:console", "cannot specify multiple destinations"),
                        ("switch:bridge.lacp", "cannot specify multiple modules")]:
        with pytest.raises(UnixctlError, match=f"^{error}$"):
            parse(spec, known)
    with pytest.raises(UnixctlError, match="PATTERN"):
        parse("PATTERN:file:%m", known)


# ---------------------------------------------------------------- the commands on a Switch

class StatsDatapath(FakeDatapath):
    """The fake datapath with the fast path's counters, which tests set."""

    def __init__(self):
        super().__init__()
        self.pmds = [{"cpu": -1, **dict.fromkeys(render.PMD_COUNTERS, 0)}]

    def stats(self):
        return {"n_flows": len(self.flows), "packets": self.hits + self.misses, "emc_hits": 0,
                "megaflow_hits": self.hits, "misses": self.misses, "upcalls": self.misses,
                "upcall_drops": 0, "malformed": 0, "samples": 0, "sample_drops": 0}

    def pmd_stats(self):
        return [dict(p) for p in self.pmds]


class FakeDaemon:
    def __init__(self, switch):
        self.switch, self.connmgrs, self.stop = switch, {}, asyncio.Event()


@pytest.fixture
def cmds():
    dp, clock = StatsDatapath(), Clock()
    sw = Switch(dp, clock=clock)
    configure(sw, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    c = appctl_commands.Commands(FakeDaemon(sw))
    yield c
    sw.close()


def call(c, name, *args):
    return c.server.commands[name].callback(list(args))


def frame(src, dst):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())


def test_fdb_show_prints_openflow_numbers_least_recent_first(cmds):
    sw = cmds.switch
    p1, p2 = sw.ifaces["p1"].dp_port, sw.ifaces["p2"].dp_port
    sw.dp.receive(p1, frame("00:00:00:00:00:01", "00:00:00:00:00:02"))
    sw.handle_upcalls()
    sw.clock.now += 3
    sw.dp.receive(p2, frame("00:00:00:00:00:02", "00:00:00:00:00:01"))
    sw.handle_upcalls()
    assert call(cmds, "fdb/show", "br0") == (
        " port  VLAN  MAC                Age\n"
        f"{sw.ifaces['p1'].ofport:>5}     0  00:00:00:00:00:01    3\n"
        f"{sw.ifaces['p2'].ofport:>5}     0  00:00:00:00:00:02    0\n")
    with pytest.raises(UnixctlError, match="^no such bridge$"):
        call(cmds, "fdb/show", "nosuch")
    assert call(cmds, "fdb/flush", "br0") == "table successfully flushed"
    assert call(cmds, "fdb/show", "br0") == " port  VLAN  MAC                Age\n"
    with pytest.raises(UnixctlError, match="^no such bridge$"):
        call(cmds, "fdb/flush", "nosuch")


def test_dpif_show_trace_and_memory_on_the_switch(cmds):
    sw = cmds.switch
    text = call(cmds, "dpif/show")
    assert text.startswith("netdev@vswitch: hit:0 missed:0\n  br0:\n")
    assert f"    p1 {sw.ifaces['p1'].ofport}/{sw.ifaces['p1'].dp_port}: (system)\n" in text
    trace = call(cmds, "ofproto/trace", "br0", "in_port=p1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02")
    flood = sorted([sw.ifaces["br0"].dp_port, sw.ifaces["p2"].dp_port])
    assert trace.startswith(f"Flow: in_port={sw.ifaces['p1'].ofport},")
    assert trace.endswith(f"Datapath actions: {','.join(map(str, flood))}\n")
    with pytest.raises(UnixctlError, match="^nosuch: unknown bridge$"):
        call(cmds, "ofproto/trace", "nosuch", "in_port=1")
    with pytest.raises(UnixctlError, match="^Bad openflow flow syntax: in_port=1,foo=3: "):
        call(cmds, "ofproto/trace", "br0", "in_port=1,foo=3")
    assert call(cmds, "memory/show") == "handlers:1 ports:3 revalidators:1\n"


def test_pmd_stats_clear_is_a_baseline(cmds):
    pmd = cmds.switch.dp.pmds[0]
    pmd.update(packets=10, batches=5, megaflow_hits=7, upcalls=3)
    assert "  packets received: 10\n" in call(cmds, "dpif-netdev/pmd-stats-show")
    assert call(cmds, "dpif-netdev/pmd-stats-clear") == ""
    pmd.update(packets=14, batches=7, megaflow_hits=10, upcalls=4)
    text = call(cmds, "dpif-netdev/pmd-stats-show", "netdev@vswitch")
    assert "  packets received: 4\n" in text and "  megaflow hits: 3\n" in text
    assert "  miss with success upcall: 1\n" in text
    assert call(cmds, "dpif-netdev/pmd-stats-show", "-pmd", "5") == ""  # no such core: nothing
    with pytest.raises(UnixctlError, match="please specify an existing datapath"):
        call(cmds, "dpif-netdev/pmd-stats-show", "ovs-system")


def test_vlog_set_then_list_and_exit(cmds):
    logger = vlog.modules()["switch"]
    before = logger.level
    try:
        assert call(cmds, "vlog/set", "switch:file:dbg") == ""
        assert "\nswitch             DBG        DBG        DBG\n" in call(cmds, "vlog/list")
        with pytest.raises(UnixctlError, match='no destination, level, or module "nosuch"'):
            call(cmds, "vlog/set", "switch:warn", "nosuch")
        assert logger.level == vlog.LEVELS["dbg"]  # all checked before any is applied
    finally:
        logger.setLevel(before)
    reply = call(cmds, "exit")
    assert isinstance(reply, Reply) and not cmds.daemon.stop.is_set()
    reply.then()
    assert cmds.daemon.stop.is_set()
    with pytest.raises(UnixctlError):
        call(cmds, "exit", "--now")


def test_coverage_counters_come_from_the_switch(cmds):
    sw = cmds.switch
    sw.dp.receive(sw.ifaces["p1"].dp_port, frame("00:00:00:00:00:01", "00:00:00:00:00:02"))
    assert call(cmds, "coverage/read-counter", "netdev_received") == "1"
    assert call(cmds, "coverage/read-counter", "datapath_miss") == "1"
    with pytest.raises(UnixctlError, match="^No such counter$"):
        call(cmds, "coverage/read-counter", "nope")
    text = call(cmds, "coverage/show")
    assert "\nnetdev_received " in text and text.endswith(" events never hit\n")
