"""NetFlow, sFlow and IPFIX as bridge features on the fake datapath: the real
Switch, Bridge, NORMAL and bridge/*_feature.py, configured with vsctl
commands, sending real datagrams to a UDP socket on loopback that the tests
decode by hand (the collectors' view is in tests/integration)."""
import socket
import struct

import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from vswitch.config.commands import execute
from vswitch.datapath import dpif
from vswitch.switch import Switch

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
IFINDEX = {"p1": 101, "p2": 102, "br0": 100}
NF_HEADER = struct.Struct("!HHIIIIBBH")
NF_RECORD = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")


def udp(src, dst, sport, dport=53, size=10):
    return bytes(Ether(src=src, dst=dst) / IP(src="10.0.0.1", dst="10.0.0.2")
                 / UDP(sport=sport, dport=dport) / bytes(size))


@pytest.fixture
def collector():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    yield s
    s.close()


def received(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


@pytest.fixture
def sw():
    dp, clock = FakeDatapath(), Clock()
    switch = Switch(dp, clock=clock)
    switch.clock_ = clock
    # The fake ports have no netdevs: give them ifindexes and counters.
    switch.interfaces.netdev_info = lambda name: (
        {"ifindex": IFINDEX[name], "carrier": True, "admin_up": True, "mtu": 1500,
         "stats": {"rx_packets": 7, "rx_bytes": 700, "tx_packets": 3, "tx_bytes": 300}}
        if name in IFINDEX else None)
    configure(switch, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    yield switch
    switch.close()


def port(sw, name):
    return sw.ifaces[name].dp_port


def deliver(sw, name, data):
    hit = sw.dp.receive(port(sw, name), data)
    sw.handle_upcalls()
    return hit


def netflow_records(datagrams):
    records = []
    for d in datagrams:
        version, count, *_ = NF_HEADER.unpack_from(d)
        assert version == 5 and len(d) == NF_HEADER.size + count * NF_RECORD.size
        for i in range(count):
            r = NF_RECORD.unpack_from(d, NF_HEADER.size + i * NF_RECORD.size)
            records.append({"src": socket.inet_ntoa(r[0]), "dst": socket.inet_ntoa(r[1]),
                            "in": r[3], "out": r[4], "packets": r[5], "octets": r[6],
                            "sport": r[9], "dport": r[10], "proto": r[13]})
    return records


def test_netflow_counts_every_packet_per_5_tuple(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@n", "create", "NetFlow", f'targets="{target}"', "active_timeout=60"],
              ["set", "Bridge", "br0", "netflow=@n"])
    deliver(sw, "p2", udp(MAC_B, MAC_A, 9))  # A unknown yet: learn B
    sent = {1000: 5, 1001: 3}
    for sport, n in sent.items():
        for _ in range(n):
            deliver(sw, "p1", udp(MAC_A, MAC_B, sport))
    # One megaflow per 5-tuple: NetFlow widened the masks.
    flows = [f for f in sw.dp.flows.values() if f.key.get("in_port") == port(sw, "p1")]
    assert sorted(f.key["tp_src"] for f in flows) == [1000, 1001]
    assert all(f.mask["tp_src"] == 0xFFFF and f.mask["nw_src"] == 0xFFFFFFFF for f in flows)
    sw.revalidate()
    sw.run_features()
    assert received(collector) == []  # nothing expired yet
    configure(sw, ["clear", "Bridge", "br0", "netflow"])  # removing it flushes the cache
    records = netflow_records(received(collector))
    got = {r["sport"]: r for r in records if r["in"] == IFINDEX["p1"]}
    frame_len = len(udp(MAC_A, MAC_B, 1000))
    for sport, n in sent.items():
        assert got[sport]["packets"] == n  # the slow path's first packet too
        assert got[sport]["octets"] == n * (frame_len - 14)  # IP-layer bytes
        assert (got[sport]["out"], got[sport]["proto"], got[sport]["dport"]) == (IFINDEX["p2"], 17, 53)
    # Once removed, nothing more is exported and the masks narrow again.
    deliver(sw, "p1", udp(MAC_A, MAC_B, 1002))
    sw.revalidate()
    sw.run_features()
    assert received(collector) == []


def test_netflow_counts_the_last_packets_of_an_invalidated_megaflow(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@n", "create", "NetFlow", f'targets="{target}"'],
              ["set", "Bridge", "br0", "netflow=@n"])
    for _ in range(4):  # B unknown: flooded, tagged with B's MAC
        deliver(sw, "p1", udp(MAC_A, MAC_B, 1000))
    deliver(sw, "p2", udp(MAC_B, MAC_A, 2000))  # B learned: A's flooded megaflow goes
    assert not any(f.key.get("tp_src") == 1000 for f in sw.dp.flows.values())
    configure(sw, ["clear", "Bridge", "br0", "netflow"])
    records = netflow_records(received(collector))
    flood = [r for r in records if r["sport"] == 1000]
    assert sum(r["packets"] for r in flood) == 4
    assert flood[0]["out"] == 0xFFFF  # flooded, as OVS's NF_OUT_FLOOD


def sflow_samples(datagram):
    """(flow samples [(source, rate, pool, in, out, header)], counter sources)."""
    version, addr_type = struct.unpack_from("!II", datagram)
    assert version == 5 and addr_type == 1
    off = 8 + 4 + 12
    (count,) = struct.unpack_from("!I", datagram, off)
    off += 4
    flows, counters = [], []
    for _ in range(count):
        fmt, length = struct.unpack_from("!II", datagram, off)
        body = datagram[off + 8:off + 8 + length]
        if fmt == 1:
            seq, source, rate, pool, drops, inp, outp, nrec = struct.unpack_from("!IIIIIIII", body)
            _, rlen = struct.unpack_from("!II", body, 32)
            proto, frame_len, stripped, hlen = struct.unpack_from("!IIII", body, 40)
            flows.append((source, rate, pool, inp, outp, frame_len, body[56:56 + hlen]))
        elif fmt == 2:
            counters.append(struct.unpack_from("!II", body)[1])
        off += 8 + length
    return flows, counters


def test_sflow_samples_from_the_datapath_and_polls_counters(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@s", "create", "sFlow", f'targets="{target}"', "sampling=1",
                   "polling=5", "header=64", "agent=127.0.0.1"],
              ["set", "Bridge", "br0", "sflow=@s"])
    deliver(sw, "p2", udp(MAC_B, MAC_A, 9))
    frames = [udp(MAC_A, MAC_B, 1000 + i, size=100) for i in range(3)]
    for f in frames:
        deliver(sw, "p1", f)
    assert sw.dp.flows and all(f.actions[0][0] == "sample" for f in sw.dp.flows.values())
    sw.clock_.now += 2  # past the flush delay
    sw.run_features()
    samples, counters = [], []
    for d in received(collector):
        f, c = sflow_samples(d)
        samples += f
        counters += c
    mine = [s for s in samples if s[0] == IFINDEX["p1"]]
    assert [s[6] for s in mine] == [f[:64] for f in frames]  # header bytes as received
    assert [s[2] for s in mine] == [1, 2, 3]  # the sample pool of p1
    assert all(s[1] == 1 and s[4] == IFINDEX["p2"] and s[5] == len(frames[0]) + 4 for s in mine)
    assert sorted(set(counters)) == sorted(IFINDEX.values())  # every port polled
    _, (stats,) = execute(sw.config, [["get", "sFlow", _only(sw, "sFlow"), "statistics"]], sw)
    assert stats[0]["sent_records"] == len(samples) + len(counters)
    assert stats[0]["send_errors"] == 0


def _only(sw, table):
    (uuid,) = sw.config[table]
    return uuid


def test_sflow_sampling_rate_is_in_the_sample_action(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@s", "create", "sFlow", f'targets="{target}"', "sampling=64",
                   "agent=127.0.0.1"], ["set", "Bridge", "br0", "sflow=@s"])
    deliver(sw, "p1", udp(MAC_A, MAC_B, 1000))
    (flow,) = sw.dp.flows.values()
    name, (probability, cookie, out, header) = flow.actions[0]
    assert (name, probability, header) == ("sample", dpif.sample_probability(64), 128)
    # changing the rate replaces the megaflows (their sample actions)
    configure(sw, ["set", "sFlow", _only(sw, "sFlow"), "sampling=8"])
    assert not sw.dp.flows


def test_sflow_agent_interface_without_address_exports_nothing_and_says_why(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@s", "create", "sFlow", f'targets="{target}"', "sampling=1",
                   "agent=nosuchif0"], ["set", "Bridge", "br0", "sflow=@s"])
    deliver(sw, "p1", udp(MAC_A, MAC_B, 1000))
    assert all(a[0] != "sample" for f in sw.dp.flows.values() for a in f.actions)
    _, (stats,) = execute(sw.config, [["get", "sFlow", _only(sw, "sFlow"), "statistics"]], sw)
    assert "nosuchif0 has no IPv4 address" in stats[0]["error"]


IPFIX_SET = struct.Struct("!HH")


def ipfix_data_records(datagrams):
    """{template id: number of data records} and the template ids announced."""
    data, templates = {}, set()
    for d in datagrams:
        version, length, _, _, _ = struct.unpack_from("!HHIII", d)
        assert version == 10 and length == len(d)
        off = 16
        while off < length:
            set_id, set_len = IPFIX_SET.unpack_from(d, off)
            if set_id == 2:
                templates.add(struct.unpack_from("!H", d, off + 4)[0])
            else:
                assert set_id in templates, "data before its template"
                data[set_id] = data.get(set_id, 0) + 1
            off += set_len
    return data, templates


def test_ipfix_turns_every_sampled_packet_into_a_record_without_caching(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@i", "create", "IPFIX", f'targets="{target}"', "sampling=1",
                   "obs_domain_id=7"], ["set", "Bridge", "br0", "ipfix=@i"])
    deliver(sw, "p2", udp(MAC_B, MAC_A, 9))
    tcp = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.2")
                / TCP(sport=5000, dport=80, flags="S"))
    for _ in range(3):
        deliver(sw, "p1", tcp)
    sw.clock_.now += 1
    sw.run_features()
    data, templates = ipfix_data_records(received(collector))
    assert 256 in templates and data.get(256, 0) >= 1
    show = sw.feature_show("ipfix")[0]
    assert show["records_sent"] == 4  # the packet from p2 and the three from p1


def test_ipfix_input_sampling_off_adds_no_sample_action(sw, collector):
    target = "127.0.0.1:%d" % collector.getsockname()[1]
    configure(sw, ["--id=@i", "create", "IPFIX", f'targets="{target}"', "sampling=1",
                   "other_config:enable-input-sampling=false"], ["set", "Bridge", "br0", "ipfix=@i"])
    deliver(sw, "p1", udp(MAC_A, MAC_B, 1000))
    assert all(a[0] != "sample" for f in sw.dp.flows.values() for a in f.actions)


def test_several_targets_and_a_dead_one_never_stall_the_switch(sw, collector):
    """A target nobody listens on (the kernel answers ICMP port unreachable)
    costs nothing: the live one gets every datagram, the switch goes on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    live = collector.getsockname()[1]
    configure(sw, ["--id=@s", "create", "sFlow", f'targets=["127.0.0.1:{dead}","127.0.0.1:{live}"]',
                   "sampling=1", "agent=127.0.0.1"], ["set", "Bridge", "br0", "sflow=@s"])
    for round_ in range(3):
        deliver(sw, "p1", udp(MAC_A, MAC_B, 1000 + round_))
        sw.clock_.now += 2
        sw.run_features()
    got = received(collector)
    _, (stats,) = execute(sw.config, [["get", "sFlow", _only(sw, "sFlow"), "statistics"]], sw)
    assert len(got) == stats[0]["sent_datagrams"] >= 3
    assert stats[0]["send_errors"] <= stats[0]["sent_datagrams"]  # refusals counted, never raised
