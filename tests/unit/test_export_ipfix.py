"""IPFIX engine with a fake clock, read back by a small RFC 7011 decoder that
learns the templates from the messages themselves."""
import ipaddress
import struct

import pytest

from vswitch.export import FlowKey, FlowStats, IpfixExporter

T0 = 1_700_000_000.0
# element id -> name, for the decoder (IANA registry)
NAMES = {1: "octets", 2: "packets", 4: "proto", 5: "tos", 6: "tcpflags", 7: "sport",
         8: "src4", 10: "in", 11: "dport", 12: "dst4", 14: "out", 27: "src6", 28: "dst6",
         56: "srcmac", 58: "vlan", 80: "dstmac", 136: "end_reason", 138: "point",
         152: "start_ms", 153: "end_ms", 352: "l2octets"}
ADDRESSES = {"src4", "dst4", "src6", "dst6", "srcmac", "dstmac"}


class Decoder:
    def __init__(self):
        self.templates = {}

    def message(self, data):
        version, length, export_time, seq, domain = struct.unpack_from("!HHIII", data)
        assert version == 10 and length == len(data)
        out = {"time": export_time, "seq": seq, "domain": domain, "templates": [],
               "records": []}
        pos = 16
        while pos < length:
            set_id, set_len = struct.unpack_from("!HH", data, pos)
            assert set_len >= 4 and pos + set_len <= length
            body = data[pos + 4: pos + set_len]
            if set_id == 2:
                out["templates"] += self._templates(body)
            else:
                out["records"] += self._records(self.templates[set_id], body)
            pos += set_len
        return out

    def _templates(self, body):
        ids, pos = [], 0
        while pos + 4 <= len(body):
            tid, count = struct.unpack_from("!HH", body, pos)
            fields = [struct.unpack_from("!HH", body, pos + 4 + 4 * i) for i in range(count)]
            assert all(f[0] < 0x8000 for f in fields)        # no enterprise elements
            self.templates[tid] = fields
            ids.append(tid)
            pos += 4 + 4 * count
        return ids

    def _records(self, fields, body):
        size = sum(length for _, length in fields)
        records = []
        for start in range(0, len(body) - size + 1, size):
            record, pos = {}, start
            for element, length in fields:
                raw = body[pos:pos + length]
                name = NAMES[element]
                record[name] = raw if name in ADDRESSES else int.from_bytes(raw, "big")
                pos += length
            records.append(record)
        return records


def engine(**settings):
    e = IpfixExporter()
    e.configure({"targets": ["127.0.0.1:4739"], "inactive_timeout": 5, "active_timeout": 60,
                 "observation_domain_id": 99, **settings})
    return e


def key(i, version=4, **kw):
    if version == 4:
        kw.setdefault("src_ip", f"10.0.{i // 250}.{i % 250 + 1}")
        kw.setdefault("dst_ip", "10.9.9.9")
    elif version == 6:
        kw.setdefault("src_ip", f"2001:db8::{i + 1:x}")
        kw.setdefault("dst_ip", "2001:db8::ffff")
    return FlowKey(in_port=3, out_port=4, src_mac="02:00:00:00:00:01",
                   dst_mac="02:00:00:00:00:02", ip_version=version, protocol=17,
                   src_port=i, dst_port=53, **kw)


def messages(out):
    return [d for _, d in out]


def test_templates_at_start_then_data_with_standard_elements():
    e = engine(observation_point_id=7, ifindex_map={3: 30})
    e.add_flow_stats(FlowStats(key(1, vlan=100, tos=4), 4, 4 * 118, T0 + 1.5, T0 + 2.25,
                               tcp_flags=0), T0 + 3)
    dec = Decoder()
    first, data = [dec.message(m) for m in messages(e.run(T0 + 10))]
    assert first["templates"] == [256, 257, 258] and first["records"] == []
    assert (first["seq"], first["domain"], first["time"]) == (0, 99, int(T0 + 10))
    assert data["seq"] == 0
    [r] = data["records"]
    assert ipaddress.ip_address(r["src4"]) == ipaddress.ip_address("10.0.0.2")
    assert (r["in"], r["out"], r["vlan"], r["tos"], r["proto"], r["point"]) == \
        (30, 4, 100, 4, 17, 7)
    assert (r["packets"], r["octets"], r["l2octets"]) == (4, 4 * 100, 4 * 118)
    assert (r["start_ms"], r["end_ms"], r["end_reason"]) == \
        (int(T0 * 1000) + 1500, int(T0 * 1000) + 2250, 1)
    assert (r["srcmac"], r["dstmac"]) == (bytes.fromhex("020000000001"),
                                          bytes.fromhex("020000000002"))


def test_ipv6_and_non_ip_flows_use_their_own_templates():
    e = engine()
    e.add_flow_stats(FlowStats(key(1, version=6), 2, 200, T0, T0), T0)
    e.add_flow_stats(FlowStats(key(2, version=0), 3, 300, T0, T0), T0)
    dec = Decoder()
    msgs = [dec.message(m) for m in messages(e.run(T0 + 10))]
    r6, r2 = msgs[1]["records"]
    assert ipaddress.ip_address(r6["src6"]) == ipaddress.ip_address("2001:db8::2")
    assert (r6["packets"], r6["octets"], r6["l2octets"]) == (2, 200 - 2 * 14, 200)
    assert "octets" not in r2 and "src4" not in r2
    assert (r2["packets"], r2["l2octets"]) == (3, 300)


def test_template_refresh_on_the_interval_and_next_wakeup_says_when():
    e = engine(template_interval=30)
    assert e.next_wakeup() == 0.0                    # templates due at once
    assert len(e.run(T0)) == 1                       # templates only
    assert e.next_wakeup() == T0 + 30
    assert e.run(T0 + 29) == []
    [(_, refresh)] = e.run(T0 + 30)
    assert Decoder().message(refresh)["templates"] == [256, 257, 258]
    assert e.show()["template_messages_sent"] == 2
    # a new observation domain gets its templates at once
    e.configure({"observation_domain_id": 5})
    [(_, again)] = e.run(T0 + 31)
    assert Decoder().message(again)["domain"] == 5


def test_sequence_counts_data_records_across_messages_and_flushes():
    e = engine(max_message_size=16 + 4 + 3 * 83)     # three IPv4 records per message
    for i in range(7):
        e.add_flow_stats(FlowStats(key(i), 1, 100, T0, T0), T0)
    dec, raw = Decoder(), messages(e.run(T0 + 10))
    msgs = [dec.message(m) for m in raw]
    assert [(m["seq"], len(m["records"])) for m in msgs] == [(0, 0), (0, 3), (3, 3), (6, 1)]
    assert max(len(m) for m in raw[1:]) == 16 + 4 + 3 * 83
    e.add_flow_stats(FlowStats(key(1), 1, 100, T0 + 11, T0 + 11), T0 + 11)
    [m] = [dec.message(x) for x in messages(e.flush(T0 + 12))]
    assert (m["seq"], m["records"][0]["end_reason"]) == (7, 4)
    assert e.show()["sequence"] == 8


def test_mixed_templates_in_one_message_get_one_set_each():
    e = engine()
    e.add_flow_stats(FlowStats(key(1), 1, 100, T0, T0), T0)
    e.add_flow_stats(FlowStats(key(2, version=6), 1, 100, T0 + 0.1, T0 + 0.1), T0)
    e.add_flow_stats(FlowStats(key(3), 1, 100, T0 + 0.2, T0 + 0.2), T0)
    data = messages(e.run(T0 + 10))[1]
    set_ids, pos = [], 16
    while pos < len(data):
        sid, length = struct.unpack_from("!HH", data, pos)
        set_ids.append(sid)
        pos += length
    assert set_ids == [256, 257, 256]


def test_malformed_input_is_counted():
    e = engine()
    e.add_flow_stats(FlowStats(key(1, version=6, src_ip="10.0.0.1"), 1, 100, T0, T0), T0)
    e.add_flow_stats(FlowStats(key(1, vlan=4096), 1, 100, T0, T0), T0)
    assert e.show()["dropped"] == {"ip_version_mismatch": 1, "bad_vlan": 1}
    assert e.show()["cached_flows"] == 0


@pytest.mark.parametrize("settings", [{"max_message_size": 100},
                                      {"template_interval": 0},
                                      {"observation_domain_id": -1}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(ValueError):
        engine(**settings)
