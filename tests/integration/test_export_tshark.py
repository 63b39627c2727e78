"""All three exporters captured on lo and decoded by tshark (Wireshark's
dissectors as an independent reader): no malformed packet, no expert warning
or error, and the decoded fields are the ones we fed in."""
import socket
import time

import pytest

from helpers.collectors import LoopbackCapture, flow_key, tcp_frame

from vswitch.export import (FlowKey, FlowStats, InterfaceCounters, IpfixExporter,
                            NetflowV5Exporter, PacketSample, SflowExporter, UdpSender)


@pytest.fixture
def sinks():
    """Three bound UDP sockets on 127.0.0.1, so the datagrams have a receiver."""
    socks = []
    try:
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def ints(frame, field):
    return [int(v, 0) for v in frame.get(field, [])]


def drain(sock) -> int:
    n = 0
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return n
        n += 1


def test_tshark_decodes_every_datagram_cleanly(tmp_path, sinks):
    ports = [s.getsockname()[1] for s in sinks]
    targets = [f"127.0.0.1:{p}" for p in ports]
    base = time.time()
    netflow, ipfix, sflow = NetflowV5Exporter(), IpfixExporter(), SflowExporter()
    netflow.configure({"targets": [targets[0]], "engine_type": 2, "engine_id": 9,
                       "inactive_timeout": 5, "boot_time": base - 60})
    ipfix.configure({"targets": [targets[1]], "observation_domain_id": 77,
                     "inactive_timeout": 5, "template_interval": 10})
    sflow.configure({"targets": [targets[2]], "agent_address": "127.0.0.1",
                     "sub_agent_id": 5, "flush_delay": 0, "max_datagram": 1400,
                     "counters_callback": lambda: {1: InterfaceCounters(in_octets=123456)}})
    v4 = [flow_key(i, tos=0x20) for i in range(35)]
    v6 = [flow_key(i, version=6, protocol=17) for i in range(3)]
    l2 = [FlowKey(in_port=3, out_port=4, ip_version=0, src_mac="02:00:00:00:aa:01",
                  dst_mac="ff:ff:ff:ff:ff:ff")]
    for n, key in enumerate(v4 + v6 + l2):
        stats = FlowStats(key, n + 1, (n + 1) * 200, base, base + 1, tcp_flags=0x18)
        netflow.add_flow_stats(stats, base + 1)
        ipfix.add_flow_stats(stats, base + 1)
    frame = tcp_frame(1, 200, vlan=12)
    for n in range(12):
        sflow.add_packet_sample(PacketSample(frame, len(frame), 1, [2, 4], 64, 64 * (n + 1),
                                             in_vlan=12, out_vlan=12), base + 1)

    with LoopbackCapture(str(tmp_path), ports) as capture:
        out = netflow.run(base + 10) + ipfix.run(base + 10) + ipfix.run(base + 21) \
            + sflow.run(base + 10)
        assert UdpSender().send(out) == len(out)
        capture.stop(expect_packets=len(out))
    assert [drain(s) for s in sinks] == [sum(t == (("127.0.0.1", p)) for t, _ in out)
                                         for p in ports]

    decode_as = {ports[0]: "cflow", ports[1]: "cflow", ports[2]: "sflow"}
    assert capture.problems(decode_as) == []
    frames = capture.decode(decode_as)
    assert len(frames) == len(out)
    v5 = [f for f in frames if f.get("cflow.version") == ["5"]]
    ipfix_frames = [f for f in frames if f.get("cflow.version") == ["10"]]
    sflow_frames = [f for f in frames if "sflow_245.version" in f]

    # NetFlow v5: 35 IPv4 flows in datagrams of 30 and 5, sequence 0 then 30
    assert [ints(f, "cflow.count") for f in v5] == [[30], [5]]
    assert [ints(f, "cflow.sequence") for f in v5] == [[0], [30]]
    assert {(f["cflow.engine_type"][0], f["cflow.engine_id"][0]) for f in v5} == {("2", "9")}
    packets = [p for f in v5 for p in ints(f, "cflow.packets")]
    octets = [o for f in v5 for o in ints(f, "cflow.octets")]
    assert packets == list(range(1, 36))
    assert octets == [(n + 1) * (200 - 14) for n in range(35)]
    assert [a for f in v5 for a in f["cflow.srcaddr"]] == [k.src_ip for k in v4]
    assert {t for f in v5 for t in ints(f, "cflow.tos")} == {0x20}

    # IPFIX: template, data messages, refreshed template; the sequence number
    # counts the data records sent before each message
    per_message = [len(ints(f, "cflow.packets")) for f in ipfix_frames]
    assert per_message[0] == per_message[-1] == 0 and sum(per_message) == 39
    assert [ints(f, "cflow.sequence") for f in ipfix_frames] == \
        [[sum(per_message[:i])] for i in range(len(ipfix_frames))]
    assert {f["cflow.od_id"][0] for f in ipfix_frames} == {"77"}
    for template in (ipfix_frames[0], ipfix_frames[-1]):
        assert ints(template, "cflow.template_id") == [256, 257, 258]
    data = ipfix_frames[1:-1]
    assert [p for f in data for p in ints(f, "cflow.packets")] == list(range(1, 40))
    assert [o for f in data for o in ints(f, "cflow.octets")] == \
        [(n + 1) * (200 - 14) for n in range(38)]          # IP flows only
    assert [o for f in data for o in ints(f, "cflow.layer2_octet_delta_count")] == \
        [(n + 1) * 200 for n in range(39)]
    assert [a for f in data for a in f.get("cflow.srcaddrv6", [])] == [k.src_ip for k in v6]
    assert "02:00:00:00:aa:01" in [m for f in data for m in f["cflow.srcmac"]]
    assert {r for f in data for r in ints(f, "cflow.flow_end_reason")} == {1}

    # sFlow: consecutive datagram sequence numbers, 12 flow samples and a
    # counter sample, with what we fed
    assert [ints(f, "sflow_245.sequence_number") for f in sflow_frames] == \
        [[n + 1] for n in range(len(sflow_frames))]
    assert {(f["sflow_245.agent"][0], f["sflow_245.sub_agent_id"][0])
            for f in sflow_frames} == {("127.0.0.1", "5")}
    samples = [s for f in sflow_frames for s in ints(f, "sflow.flow_sample.sequence_number")]
    assert samples == list(range(1, 13))
    assert [p for f in sflow_frames for p in ints(f, "sflow.flow_sample.sample_pool")] == \
        [64 * (n + 1) for n in range(12)]
    assert {r for f in sflow_frames for r in ints(f, "sflow.flow_sample.sampling_rate")} == {64}
    assert {r for f in sflow_frames for r in ints(f, "sflow_245.header.frame_length")} == \
        {len(frame) + 4}
    assert {v for f in sflow_frames for v in ints(f, "sflow_245.vlan.in")} == {12}
    assert {o for f in sflow_frames for o in f.get("sflow.flow_sample.output_interface", [])} == \
        {"0x80000002"}
    assert [c for f in sflow_frames for c in ints(f, "sflow_245.ifinoct")] == [123456]
