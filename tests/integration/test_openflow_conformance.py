"""A fast slice of os-ken's OpenFlow 1.3 switch conformance suite
(os_ken/tests/switch/tester.py) against vswitch, with a private OVS as the
tester switch (tests/helpers/osken_conformance.py sets both up).  The full
comparison with OVS is the script itself; its results are in
docs/CONFORMANCE.md."""
import json
import os
import shutil

import pytest

from helpers import ovs_peer

pytestmark = pytest.mark.timeout(120)

# Output, MPLS pop, set-field through a datapath edit (IPv6 traffic class,
# also after pop_mpls or pop_pbb + goto_table; ARP opcode), PBB push and
# pop_pbb + match on what it uncovers, pbb_isid with a mask, push_vlan 0x88a8
# onto a tag, copy_ttl_in (OVS 3.1 fails the PBB, 0x88a8 and copy-TTL ones).
CASES = [
    "action/00_OUTPUT.json",
    "action/20_POP_MPLS.json",
    "action/25_SET_FIELD/08_IP_DSCP_IPv6.json",
    "action/25_SET_FIELD/21_ARP_OP.json",
    "action/26_PUSH_PBB.json",
    "action/17_PUSH_VLAN_multiple.json",
    "action/12_COPY_TTL_IN.json",
    "match/37_PBB_ISID_Mask.json",
]  # (group cases measure throughput for ~10 s each: left to the script)
# Seen with OVS as the target too: the tester switch counts the packet on
# its port but no packet-in reaches the tester within its 3 s, now and then
# (more often on a loaded machine): such cases get up to two more runs.
TESTER_LOSS = "increment in rx_packets in tester"


def _failures(results):
    return [c for cases in results.values() for c in cases if c["result"] != "OK"]


def test_osken_switch_suite_slice_passes_on_vswitch(tmp_path):
    ovs_peer.skip_unless_available()
    from helpers import osken_conformance
    cases_dir = tmp_path / "cases"
    cases_dir.mkdir()
    files = {}
    for i, rel in enumerate(CASES):
        path = cases_dir / f"{i:02d}_{os.path.basename(rel)}"
        shutil.copy(os.path.join(osken_conformance.SUITE, "of13", rel), path)
        files[json.load(open(path))[0]] = path   # the file's description names it in the log
    results = osken_conformance.run("vswitch", [str(cases_dir)], str(tmp_path), timeout=50)
    cases = results["cases"]
    assert len(cases) >= 30, f"only {len(cases)} cases ran (logs in {tmp_path})"
    failed = _failures(results)
    for attempt in range(2):
        if not failed or not all(TESTER_LOSS in c["reason"] for c in failed):
            break
        retry = tmp_path / f"retry{attempt}"   # a fresh vswitchd (its database lives in the workdir)
        (retry / "cases").mkdir(parents=True)
        for c in failed:
            shutil.copy(files[c["file"]], retry / "cases")
        failed = _failures(osken_conformance.run("vswitch", [str(retry / "cases")], str(retry), timeout=40))
    assert not failed, "\n".join(f"{c['file']} {c['case']}: {c['reason']}" for c in failed)
