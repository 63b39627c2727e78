"""Differential test: the C megaflow classifier against a pure-Python
reference on random masks and flows.  Megaflows installed by the switch never
overlap, so the reference is "the one flow whose mask and masked key match";
the test builds non-overlapping sets by construction."""
import random

from vswitch.datapath import flowkey
from vswitch.datapath._datapath import ffi, lib

FIELDS = list(flowkey.FIELDS)


def random_mask(rng):
    mask = {}
    for name in rng.sample(FIELDS, rng.randint(1, 5)):
        full = flowkey.full_mask(name)
        bits = flowkey.FIELDS[name][1]
        mask[name] = full if rng.random() < 0.6 else full ^ ((1 << rng.randint(1, bits)) - 1)
        if not mask[name]:
            mask[name] = full
    return mask


def random_key(rng, small=True):
    # Small value ranges make hits likely.
    return {name: rng.randint(0, 3) if small else rng.getrandbits(flowkey.FIELDS[name][1])
            for name in FIELDS}


def reference_lookup(flows, key):
    hits = [fid for fid, (k, m) in enumerate(flows) if flowkey.apply_mask(key, m) == k]
    return hits


def c_key(values):
    return flowkey.to_c(values, ffi.new("struct vs_key *"))


def test_c_classifier_matches_reference_on_random_flows():
    rng = random.Random(1234)
    cls = lib.vs_cls_new()
    try:
        # Build a flow set where no packet matches two flows: every flow
        # matches on a distinct value of a "discriminator" field set, as
        # non-overlapping megaflows would.
        flows = []
        masks = [random_mask(rng) for _ in range(12)]
        for fid in range(600):
            mask = dict(rng.choice(masks))
            mask["in_port"] = 0xFFFFFFFF  # discriminator: unique per flow
            key = flowkey.apply_mask(random_key(rng), mask)
            key["in_port"] = fid
            flows.append((key, mask))
            assert lib.vs_cls_insert(cls, c_key(key), c_key(mask), fid) == 0
        probes = []
        for _ in range(3000):
            probe = random_key(rng)
            probe["in_port"] = rng.randrange(700)
            if rng.random() < 0.5:  # half the probes are built to hit a flow
                k, m = flows[rng.randrange(len(flows))]
                probe.update({f: (probe.get(f, 0) & ~mm) | k.get(f, 0) for f, mm in m.items()})
            probes.append(probe)
        keys = ffi.new("struct vs_key[]", len(probes))
        for i, p in enumerate(probes):
            flowkey.to_c(p, keys[i])
        out = ffi.new("int64_t[]", len(probes))
        lib.vs_cls_lookup_batch(cls, keys, len(probes), out)
        hits = 0
        for i, p in enumerate(probes):
            expect = reference_lookup(flows, p)
            assert len(expect) <= 1
            assert out[i] == (expect[0] if expect else -1), f"probe {i}: {p}"
            hits += bool(expect)
        assert hits > 1000  # the test exercised hits, not only misses
    finally:
        lib.vs_cls_free(cls)


def test_datapath_flow_put_modify_delete_dump():
    from vswitch.datapath.dpif import Datapath

    rng = random.Random(99)
    mask = {"dl_dst": flowkey.full_mask("dl_dst"), "vlan_tci": 0xFFFF}
    keys = [{"dl_dst": rng.getrandbits(48), "vlan_tci": 0x1000 | i} for i in range(200)]
    dp = Datapath(upcall_ring_size=16)
    try:
        for i, k in enumerate(keys):
            assert dp.flow_put(k, mask, [("output", i + 1)]) is True
        # The same mask and key again modifies the actions in place.
        assert dp.flow_put(keys[0], mask, [("pop_vlan", 0), ("output", 7)]) is False
        for k in keys[1::2]:
            assert dp.flow_del(k, mask)
        assert not dp.flow_del(keys[1], mask)  # already gone
        dumped = {(f.key["dl_dst"], f.key["vlan_tci"]): f.actions for f in dp.flow_dump()}
        expect = {(k["dl_dst"], k["vlan_tci"]): [("output", i + 1)] for i, k in enumerate(keys) if i % 2 == 0}
        expect[(keys[0]["dl_dst"], keys[0]["vlan_tci"])] = [("pop_vlan", 0), ("output", 7)]
        assert dumped == expect
        assert dp.stats()["n_flows"] == 100 and dp.stats()["n_subtables"] == 1
        dp.flow_flush()
        assert dp.flow_dump() == []
    finally:
        dp.close()


def test_poll_thread_lookups_on_dummy_ports_match_the_reference():
    """The same differential test end to end: scapy frames received by the
    poll thread on a dummy port (no root), parsed, looked up EMC → megaflow
    classifier and output to the port the matching flow names, or upcalled
    when no flow matches; the reference decides from parse_frame's key.
    Flows never overlap: each matches one exact tp_src of its own."""
    import time

    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    from vswitch.datapath.dpif import Datapath, parse_frame

    rng = random.Random(4321)
    fields = ["dl_src", "dl_dst", "vlan_tci", "nw_src", "nw_dst", "nw_proto", "tp_dst"]

    def build(tp_src, n):
        vid = rng.randrange(3)
        l4 = TCP if rng.random() < 0.5 else UDP
        f = Ether(src=f"02:00:00:00:00:0{rng.randrange(3)}", dst=f"02:00:00:00:01:0{rng.randrange(3)}")
        if vid:
            f = f / Dot1Q(vlan=vid)
        f = f / IP(src=f"10.0.0.{rng.randrange(3)}", dst=f"10.0.1.{rng.randrange(3)}")
        return bytes(f / l4(sport=tp_src, dport=rng.randrange(3)) / n.to_bytes(4, "big"))

    def key_of(frame):
        key = parse_frame(frame, 1)
        del key["tcp_flags"]
        return key

    flows = []  # (key, mask, output port)
    for fid in range(60):
        mask = {name: flowkey.full_mask(name) for name in rng.sample(fields, rng.randint(0, 4))}
        mask["tp_src"] = flowkey.full_mask("tp_src")  # the discriminator
        mask["in_port"] = 0xFFFFFFFF
        flows.append((flowkey.apply_mask(key_of(build(1000 + fid, 0)), mask), mask, 2 + fid % 6))
    probes = [build(1000 + rng.randrange(80), n) for n in range(600)]  # a quarter name no flow
    expect = {}
    for n, probe in enumerate(probes):
        hits = [port for k, m, port in flows if flowkey.apply_mask(key_of(probe), m) == k]
        assert len(hits) <= 1
        expect[n] = hits[0] if hits else None
    assert 150 < sum(v is not None for v in expect.values()) < 550  # hits and misses both

    dp = Datapath(upcall_ring_size=1024)
    try:
        for port_no in range(1, 8):
            dp.add_port(port_no, "dummy", f"d{port_no}")
        for k, m, port in flows:
            dp.flow_put(k, m, [("output", port)])
        for start in range(0, len(probes), 100):  # below the receive queue's bound
            assert dp.dummy_inject(1, probes[start:start + 100]) == len(probes[start:start + 100])
            deadline = time.monotonic() + 5
            while dp.port_type_status(1)["rx_queue"] != "0" and time.monotonic() < deadline:
                time.sleep(0.01)
        got, ups, deadline = {}, [], time.monotonic() + 5
        while len(got) + len(ups) < len(probes) and time.monotonic() < deadline:
            for port_no in range(2, 8):
                for frame in dp.dummy_sent(port_no):
                    got[int.from_bytes(frame[-4:], "big")] = port_no
            ups += dp.recv_upcalls()
            time.sleep(0.01)
        got.update({int.from_bytes(u.frame[-4:], "big"): None for u in ups})
        assert got == expect
        assert all(u.in_port == 1 for u in ups)
    finally:
        dp.close()
