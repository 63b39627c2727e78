"""NetFlow v5 engine with a fake clock, decoded by a reader written from
Cisco's format description (not from the engine's structs)."""
import struct

import pytest

from vswitch.export import FlowKey, FlowStats, NetflowV5Exporter

BOOT = 1_700_000_000.0
TARGET = ("127.0.0.1", 2055)


def decode(datagram):
    version, count, uptime, secs, nsecs, seq, etype, eid, sampling = \
        struct.unpack_from("!HHIIIIBBH", datagram, 0)
    assert version == 5 and len(datagram) == 24 + 48 * count
    records = []
    for i in range(count):
        r = datagram[24 + 48 * i: 72 + 48 * i]
        records.append({
            "src": ".".join(map(str, r[0:4])), "dst": ".".join(map(str, r[4:8])),
            "nexthop": r[8:12], "input": struct.unpack("!H", r[12:14])[0],
            "output": struct.unpack("!H", r[14:16])[0],
            "packets": struct.unpack("!I", r[16:20])[0],
            "octets": struct.unpack("!I", r[20:24])[0],
            "first": struct.unpack("!I", r[24:28])[0], "last": struct.unpack("!I", r[28:32])[0],
            "sport": struct.unpack("!H", r[32:34])[0], "dport": struct.unpack("!H", r[34:36])[0],
            "flags": r[37], "proto": r[38], "tos": r[39]})
    return {"count": count, "uptime": uptime, "secs": secs, "nsecs": nsecs, "seq": seq,
            "engine": (etype, eid), "sampling": sampling, "records": records}


def key(i, **kw):
    base = dict(in_port=1, out_port=2, src_ip=f"10.1.{i // 200}.{i % 200 + 1}",
                dst_ip="192.0.2.1", protocol=6, src_port=i + 1, dst_port=443, tos=8)
    base.update(kw)
    return FlowKey(**base)


def engine(**settings):
    nf = NetflowV5Exporter()
    nf.configure({"targets": ["127.0.0.1:2055"], "boot_time": BOOT, "inactive_timeout": 10,
                  "active_timeout": 60, **settings})
    return nf


def stats(k, packets, size, t, **kw):
    return FlowStats(k, packets, packets * size, t, t + 1, **kw)


def test_header_and_record_fields_come_from_the_flow_and_the_clock():
    nf = engine(engine_type=3, engine_id=42, ifindex_map={1: 11, 2: 12})
    nf.add_flow_stats(stats(key(0), 10, 114, BOOT + 5, tcp_flags=0x02), BOOT + 5)
    nf.add_flow_stats(stats(key(0), 5, 114, BOOT + 6, tcp_flags=0x10), BOOT + 6)
    [(target, datagram)] = nf.run(BOOT + 20.25)
    d = decode(datagram)
    assert target == TARGET
    assert (d["count"], d["seq"], d["engine"], d["sampling"]) == (1, 0, (3, 42), 0)
    assert (d["uptime"], d["secs"], d["nsecs"]) == (20250, int(BOOT + 20), 250_000_000)
    [r] = d["records"]
    assert (r["src"], r["dst"], r["sport"], r["dport"], r["proto"], r["tos"]) == \
        ("10.1.0.1", "192.0.2.1", 1, 443, 6, 8)
    assert (r["input"], r["output"]) == (11, 12)
    assert (r["packets"], r["octets"]) == (15, 15 * 100)      # IP bytes: 114 - 14
    assert (r["first"], r["last"], r["flags"]) == (5000, 7000, 0x12)
    assert r["nexthop"] == bytes(4)


def test_vlan_tagged_frames_lose_18_header_bytes_unless_told_otherwise():
    nf = engine()
    nf.add_flow_stats(stats(key(0, vlan=5), 2, 118, BOOT), BOOT)
    nf.add_flow_stats(stats(key(1, vlan=5), 2, 114, BOOT, l2_header_len=14), BOOT)
    records = decode(nf.run(BOOT + 30)[0][1])["records"]
    assert [r["octets"] for r in records] == [200, 200]


def test_no_more_than_30_records_per_datagram_and_sequence_counts_records():
    nf = engine()
    for i in range(65):
        nf.add_flow_stats(stats(key(i), 1, 100, BOOT), BOOT)
    out = [decode(d) for _, d in nf.run(BOOT + 30)]
    assert [(d["count"], d["seq"]) for d in out] == [(30, 0), (30, 30), (5, 60)]
    assert {r["sport"] for d in out for r in d["records"]} == set(range(1, 66))
    assert nf.show()["flow_sequence"] == 65 and nf.show()["records_sent"] == 65


def test_sequence_numbers_carry_on_across_flush_and_reconfiguration():
    nf = engine()
    for i in range(3):
        nf.add_flow_stats(stats(key(i), 1, 100, BOOT), BOOT)
    assert decode(nf.flush(BOOT + 1)[0][1])["seq"] == 0
    nf.configure({"active_timeout": 5, "inactive_timeout": 2, "engine_id": 1})
    for i in range(2):
        nf.add_flow_stats(stats(key(i), 1, 100, BOOT + 2), BOOT + 2)
    d = decode(nf.run(BOOT + 10)[0][1])
    assert (d["seq"], d["count"], d["engine"]) == (3, 2, (0, 1))


def test_sequence_wraps_at_32_bits():
    nf = engine()
    nf.flow_sequence = 0xFFFFFFFF
    for i in range(2):
        nf.add_flow_stats(stats(key(i), 1, 100, BOOT), BOOT)
    assert decode(nf.run(BOOT + 30)[0][1])["seq"] == 0xFFFFFFFF
    assert nf.flow_sequence == 1


def test_counts_above_32_bits_are_split_over_records():
    nf = engine()
    nf.add_flow_stats(FlowStats(key(0), 3_000_000, 3_000_000 * 3014, BOOT, BOOT + 1), BOOT)
    records = decode(nf.run(BOOT + 30)[0][1])["records"]
    assert len(records) == 3
    assert sum(r["packets"] for r in records) == 3_000_000
    assert sum(r["octets"] for r in records) == 3_000_000 * 3000
    assert all(r["octets"] <= 0xFFFFFFFF for r in records)


def test_what_v5_cannot_carry_or_what_is_malformed_is_counted_not_raised():
    nf = engine(ifindex_map={7: 70000})
    bad = [
        FlowStats(key(0, src_ip="10.0.0.256"), 1, 100, BOOT, BOOT),
        FlowStats(key(0, src_mac="zz"), 1, 100, BOOT, BOOT),
        FlowStats(key(0), -1, 100, BOOT, BOOT),
        FlowStats(key(0), 1, 100, BOOT + 1, BOOT),
        FlowStats(key(0), 10, 100, BOOT, BOOT),          # fewer bytes than headers
        FlowStats(key(0, src_port=70000), 1, 100, BOOT, BOOT),
        "not a record",
    ]
    for record in bad:
        nf.add_flow_stats(record, BOOT)
    nf.add_flow_stats(FlowStats(key(0, ip_version=6, src_ip="::1", dst_ip="::2"), 1, 100,
                                BOOT, BOOT), BOOT)
    nf.add_flow_stats(FlowStats(key(0), 0, 0, BOOT, BOOT), BOOT)
    nf.add_flow_stats(FlowStats(key(1, in_port=7), 1, 100, BOOT, BOOT), BOOT)
    assert nf.run(BOOT + 30) == []
    show = nf.show()
    assert show["dropped"] == {"bad_ip_address": 1, "bad_mac": 1, "bad_counters": 1,
                               "bad_timestamps": 1, "bytes_below_headers": 1,
                               "bad_l4_port": 1, "not_flow_stats": 1,
                               "ifindex_above_16_bits": 1}
    assert show["ignored"] == {"not_ipv4": 1, "empty_delta": 1}
    nf.add_packet_sample(object(), BOOT)
    assert nf.show()["ignored"]["packet_sample"] == 1


def test_next_wakeup_follows_the_cache():
    nf = engine()
    assert nf.next_wakeup() is None
    nf.add_flow_stats(stats(key(0), 1, 100, BOOT), BOOT)
    assert nf.next_wakeup() == BOOT + 1 + 10


@pytest.mark.parametrize("settings", [{"engine_id": 256}, {"active_timeout": -1},
                                      {"targets": ["nohostport"]}, {"targets": ["h:0"]}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        engine(**settings)


def test_a_bad_setting_leaves_the_whole_previous_configuration_in_place():
    nf = engine(engine_id=4, active_timeout=20)
    with pytest.raises(ValueError):
        nf.configure({"engine_id": 5, "targets": ["127.0.0.1:9999"], "inactive_timeout": -1})
    show = nf.show()
    assert (show["engine_id"], show["targets"], show["active_timeout"],
            show["inactive_timeout"]) == (4, ["127.0.0.1:2055"], 20, 10)
