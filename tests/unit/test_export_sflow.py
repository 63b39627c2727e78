"""sFlow v5 agent with a fake clock: byte-exact XDR against layouts written
out from sflow_version_5.txt, sequence numbers, batching, bad input."""
import struct

import pytest

from vswitch.export import InterfaceCounters, PacketSample, SflowExporter

T0 = 1_700_000_000.0


def agent(**settings):
    s = SflowExporter()
    s.configure({"targets": ["127.0.0.1:6343"], "agent_address": "192.0.2.1",
                 "sub_agent_id": 2, "boot_time": T0, "flush_delay": 0, **settings})
    return s


def u32(*values):
    return b"".join(struct.pack("!I", v) for v in values)


def sample(header=b"\xaa" * 60, **kw):
    base = dict(header=header, frame_length=len(header), in_port=3, out_port=4,
                sampling_rate=100, sample_pool=500, drops=1, in_vlan=10, out_vlan=20,
                in_priority=5, out_priority=0)
    base.update(kw)
    return PacketSample(**base)


def test_flow_sample_datagram_is_byte_exact():
    s = agent()
    header = bytes(range(61))                       # needs 3 bytes of XDR padding
    s.add_packet_sample(sample(header, frame_length=1000), T0 + 1.5)
    [(target, datagram)] = s.run(T0 + 1.5)
    raw_header = u32(1, 1004, 4, 61) + header + bytes(3)
    switch = u32(10, 5, 20, 0)
    flow_sample = (u32(1, 3, 100, 500, 1, 3, 4, 2)
                   + u32(1, len(raw_header)) + raw_header
                   + u32(1001, len(switch)) + switch)
    expected = (u32(5, 1) + bytes([192, 0, 2, 1]) + u32(2, 1, 1500, 1)
                + u32(1, len(flow_sample)) + flow_sample)
    assert target == ("127.0.0.1", 6343)
    assert datagram == expected


def test_counter_sample_is_byte_exact_and_32_bit_counters_wrap():
    counters = InterfaceCounters(if_speed=10**10, in_octets=2**40, in_ucast_pkts=2**32 + 7,
                                 out_octets=9, out_errors=3, oper_up=False, promiscuous=True)
    s = agent(counters_callback=lambda: {5: counters}, polling_interval=10)
    [(_, datagram)] = s.run(T0)
    generic = (u32(5, 6) + struct.pack("!Q", 10**10) + u32(1, 1) + struct.pack("!Q", 2**40)
               + u32(7, 0, 0, 0, 0, 0) + struct.pack("!Q", 9) + u32(0, 0, 0, 0, 3, 1))
    assert len(generic) == 88
    body = u32(1, 5, 1) + u32(1, 88) + generic
    assert datagram == (u32(5, 1) + bytes([192, 0, 2, 1]) + u32(2, 1, 0, 1)
                        + u32(2, len(body)) + body)


def test_sequence_numbers_per_datagram_per_source_and_per_counter_source():
    polled = []
    s = agent(counters_callback=lambda: polled.append(1) or {1: {}, 2: {}},
              polling_interval=10)

    def flow_seqs(datagram):
        seqs, pos = [], 28
        while pos < len(datagram):
            fmt, length = struct.unpack_from("!II", datagram, pos)
            seq, source = struct.unpack_from("!II", datagram, pos + 8)
            seqs.append((fmt, source, seq))
            pos += 8 + length
        return seqs

    out = []
    for t in range(3):
        s.add_packet_sample(sample(in_port=1), T0 + t)
        s.add_packet_sample(sample(in_port=2), T0 + t)
        out += s.run(T0 + t)
    out += s.run(T0 + 10)
    datagram_seqs = [struct.unpack_from("!I", d, 16)[0] for _, d in out]
    assert datagram_seqs == [1, 2, 3, 4]
    seqs = [x for _, d in out for x in flow_seqs(d)]
    assert [x for x in seqs if x[:2] == (1, 1)] == [(1, 1, 1), (1, 1, 2), (1, 1, 3)]
    assert [x for x in seqs if x[:2] == (1, 2)] == [(1, 2, 1), (1, 2, 2), (1, 2, 3)]
    assert [x for x in seqs if x[0] == 2] == [(2, 1, 1), (2, 2, 1), (2, 1, 2), (2, 2, 2)]
    assert len(polled) == 2


def test_header_is_cut_and_output_formats_follow_the_spec():
    s = agent(header_bytes=64)
    for out_port in (None, [4, 5, 6], [9]):
        s.add_packet_sample(sample(bytes(200), out_port=out_port), T0)
    [(_, d)] = s.run(T0)
    pos, outputs, lengths = 28, [], []
    while pos < len(d):
        _, length = struct.unpack_from("!II", d, pos)
        outputs.append(struct.unpack_from("!I", d, pos + 8 + 24)[0])
        lengths.append(struct.unpack_from("!II", d, pos + 8 + 32 + 8 + 4))
        pos += 8 + length
    assert outputs == [0, 0x80000003, 9]
    assert lengths == [(204, 4)] * 3                 # frame_length, stripped
    assert struct.unpack_from("!I", d, 28 + 8 + 32 + 8 + 12)[0] == 64


def test_datagrams_respect_max_size_and_carry_every_sample():
    s = agent(max_datagram=600)
    for i in range(20):
        s.add_packet_sample(sample(bytes(128)), T0)
    out = [d for _, d in s.run(T0)]
    assert all(len(d) <= 600 for d in out) and len(out) > 1
    assert sum(struct.unpack_from("!I", d, 24)[0] for d in out) == 20
    assert s.show()["pending_samples"] == 0


def test_samples_wait_for_flush_delay_and_next_wakeup_says_when():
    s = agent(flush_delay=1.0)
    assert s.next_wakeup() is None
    s.add_packet_sample(sample(), T0)
    assert s.next_wakeup() == T0 + 1.0
    assert s.run(T0 + 0.5) == []
    assert len(s.run(T0 + 1.0)) == 1
    assert s.next_wakeup() is None


def test_ipv6_agent_address():
    s = agent(agent_address="2001:db8::5")
    s.add_packet_sample(sample(), T0)
    [(_, d)] = s.run(T0)
    assert struct.unpack_from("!II", d) == (5, 2)
    assert d[8:24] == bytes.fromhex("20010db8000000000000000000000005")


def test_bad_samples_and_a_failing_callback_are_counted():
    def broken():
        raise RuntimeError("boom")
    s = agent(counters_callback=broken, ifindex_map={9: 1 << 24})
    for bad in (sample(b""), sample(frame_length=10), sample(sampling_rate=0),
                sample(out_port=-1), sample(in_port=9), sample(in_vlan=5000), "junk"):
        s.add_packet_sample(bad, T0)
    assert s.run(T0) == []
    s.configure({"counters_callback": lambda: {1: {"no_such_counter": 1}, 2: {"in_octets": -1},
                                                3: {}}, "polling_interval": 1})
    out = s.run(T0 + 1)
    assert s.show()["dropped"] == {
        "empty_header": 1, "bad_frame_length": 1, "bad_sampling_rate": 1, "bad_out_port": 1,
        "ifindex_above_24_bits": 1, "bad_vlan": 1, "not_a_packet_sample": 1,
        "counters_callback_failed": 1, "unknown_counter_field": 1, "bad_counter_value": 1}
    assert s.show()["counter_samples"] == 1 and len(out) == 1
    s.add_flow_stats(object(), T0)
    assert s.show()["ignored"] == {"flow_stats": 1}


def test_agent_address_is_required():
    with pytest.raises(ValueError):
        SflowExporter().configure({"targets": ["127.0.0.1:6343"]})
