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
