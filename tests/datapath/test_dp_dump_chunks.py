"""Chunked megaflow dumps (vs_dp_flow_dump_next): bounded chunks, every flow
exactly once when nothing changes, across several subtables and chunk
boundaries; flows deleted between two chunks are never reported afterwards
and flows that stay are all reported, as the revalidator needs."""
import random

from vswitch.datapath import flowkey
from vswitch.datapath.dpif import DUMP_CHUNK, Datapath, now_ns

N_FLOWS = 3000
CHUNK = 128
NEVER = 2 ** 64 - 1          # a `since` no hit reaches: the active walk returns idle flows
IDLE_FUTURE_NS = 10 ** 12    # ... and every flow installed before now + this is idle


def put_flows(dp, rng):
    """N_FLOWS megaflows spread over three masks (three subtables)."""
    masks = [{"dl_dst": flowkey.full_mask("dl_dst")},
             {"dl_dst": flowkey.full_mask("dl_dst"), "vlan_tci": 0xFFFF},
             {"dl_type": 0xFFFF, "nw_dst": 0xFFFFFFFF}]
    flows = {}
    for i in range(N_FLOWS):
        mask = masks[i % 3]
        key = ({"dl_dst": rng.getrandbits(48)} if i % 3 == 0 else
               {"dl_dst": rng.getrandbits(48), "vlan_tci": 0x1000 | i % 4096} if i % 3 == 1 else
               {"dl_type": 0x0800, "nw_dst": 0x0A000000 + i})
        assert dp.flow_put(key, mask, [("output", 1 + i % 7)])
        flows[flowkey.pack(key) + flowkey.pack(mask)] = (key, mask, 1 + i % 7)
    return flows


def test_chunks_are_bounded_and_cover_every_flow_once():
    dp = Datapath(upcall_ring_size=16)
    try:
        flows = put_flows(dp, random.Random(5))
        assert dp.stats()["n_subtables"] == 3
        chunks = list(dp.flow_dump_chunks(CHUNK))
        assert all(len(c) <= CHUNK for c in chunks)
        assert len(chunks) >= N_FLOWS // CHUNK
        seen = [s.packed_key + s.packed_mask for c in chunks for s in c]
        assert len(seen) == len(set(seen)) == N_FLOWS
        assert set(seen) == set(flows)
        for c in chunks:
            for s in c:
                assert s.actions == [("output", flows[s.packed_key + s.packed_mask][2])]
        assert len(dp.flow_dump()) == N_FLOWS
    finally:
        dp.close()


def test_flows_deleted_between_chunks_are_not_reported_and_the_rest_are():
    dp = Datapath(upcall_ring_size=16)
    try:
        flows = put_flows(dp, random.Random(6))
        rng = random.Random(7)
        deleted, seen = set(), []
        for chunk in dp.flow_dump_chunks(CHUNK):
            seen += [s.packed_key + s.packed_mask for s in chunk]
            assert not deleted & {s.packed_key + s.packed_mask for s in chunk}
            for fid in rng.sample(sorted(set(flows) - deleted), 20):
                key, mask, _ = flows[fid]
                assert dp.flow_del(key, mask)
                deleted.add(fid)
        kept = set(flows) - deleted
        assert kept <= set(seen)        # deletes shrink no table: nothing that stayed is missed
        assert dp.stats()["n_flows"] == len(kept)
    finally:
        dp.close()


def test_interleaved_default_size_dumps_each_see_every_flow():
    """Two walks of the default chunk size interleaved chunk by chunk, as
    the revalidator's and a `dpctl/dump-flows` may be (the daemon runs one
    chunk per turn of its loop), each report every flow once with its own
    actions."""
    dp = Datapath(upcall_ring_size=16)
    try:
        flows = put_flows(dp, random.Random(8))
        assert N_FLOWS > 2 * DUMP_CHUNK
        first, second = (dp.flow_dump_chunks(),
                         dp.flow_dump_active_chunks(NEVER, now_ns() + IDLE_FUTURE_NS))
        seen = {"first": [], "second": []}
        pending = {"first": first, "second": second}
        while pending:
            for name, walk in list(pending.items()):
                chunk = next(walk, None)
                if chunk is None:
                    del pending[name]
                    continue
                seen[name] += [(s.packed_key + s.packed_mask, s.actions) for s in chunk]
        for name, got in seen.items():
            fids = [fid for fid, _ in got]
            assert len(fids) == len(set(fids)) == N_FLOWS, name
            assert set(fids) == set(flows), name
            assert all(actions == [("output", flows[fid][2])] for fid, actions in got), name
    finally:
        dp.close()
