"""One million megaflows: memory and lookup cost of the C classifier.

    python3 bench/megaflow_scale.py [--flows 1000000]

Installs N megaflows with NORMAL's mask (in_port, VLAN, both MACs) into a
datapath through the same call the upcall handler uses, reports the resident
memory they cost (VmRSS delta, which includes Python's transient objects, so
it over- rather than under-states), then measures classifier lookups per
second on a standalone classifier holding the same flows, for hits spread
over all flows (no exact-match cache: the worst case for 10,000+ flows).
Results are printed as a markdown table; the target (issue 3) is 1M megaflows
in under 1 GiB.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from vswitch.datapath import flowkey  # noqa: E402
from vswitch.datapath._datapath import ffi, lib  # noqa: E402
from vswitch.datapath.dpif import Datapath  # noqa: E402

MASK = {"in_port": 0xFFFFFFFF, "vlan_tci": 0xFFFF, "dl_src": (1 << 48) - 1, "dl_dst": (1 << 48) - 1}


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def flow_key(i):
    return {"in_port": 1 + i % 8, "vlan_tci": 0x1000 | (i % 100), "dl_src": 0x020000000000 | i,
            "dl_dst": 0x040000000000 | (i * 7919 % (1 << 40))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=2_000_000)
    args = ap.parse_args()
    n = args.flows

    dp = Datapath(upcall_ring_size=16)
    mask = flowkey.pack(MASK)
    before = rss_bytes()
    t0 = time.perf_counter()
    for i in range(n):
        dp.flow_put(flowkey.pack(flow_key(i)), mask, [("output", 2)])
    put_s = time.perf_counter() - t0
    after = rss_bytes()
    assert dp.stats()["n_flows"] == n
    dp.close()

    cls = lib.vs_cls_new()
    cmask = ffi.from_buffer("struct vs_key *", mask)
    for i in range(n):
        lib.vs_cls_insert(cls, ffi.from_buffer("struct vs_key *", flowkey.pack(flow_key(i))), cmask, i)
    rng = random.Random(7)
    batch = 4096
    keys = ffi.new("struct vs_key[]", batch)
    ids = [rng.randrange(n) for _ in range(batch)]
    for j, i in enumerate(ids):
        ffi.memmove(ffi.addressof(keys[j]), flowkey.pack(flow_key(i)), 72)
    out = ffi.new("int64_t[]", batch)
    rounds = max(1, args.lookups // batch)
    t0 = time.perf_counter()
    for _ in range(rounds):
        lib.vs_cls_lookup_batch(cls, keys, batch, out)
    look_s = time.perf_counter() - t0
    assert [out[j] for j in range(batch)] == ids  # every lookup found its own flow
    lib.vs_cls_free(cls)

    per_flow = (after - before) / n
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| megaflows installed | {n:,} | 1,000,000 |")
    print(f"| resident memory for them | {(after - before) / 2**20:,.0f} MiB ({per_flow:.0f} B/flow) "
          f"| < 1024 MiB: {'met' if after - before < 2**30 else 'NOT met'} |")
    print(f"| install rate (Python flow_put) | {n / put_s:,.0f} flows/s | |")
    print(f"| classifier lookups, random hits over all flows | "
          f"{rounds * batch / look_s / 1e6:.2f} M/s ({look_s / (rounds * batch) * 1e9:.0f} ns each) | |")


if __name__ == "__main__":
    main()
