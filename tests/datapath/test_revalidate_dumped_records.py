"""The revalidator's filtered dump reads its records as dpif.DumpedMegaflow
(identity and counters at once; key, mask and actions decoded when read)
through a small record array the Datapath keeps and grows with the active
megaflows (issue 16: a round's CPU on the poll thread's CPU).  Each record
says what the full dump (MegaflowStats, decoded by cffi field by field)
says of the same megaflow, a megaflow whose actions changed is read with
its new ones, and the switch's statistics stay exact through it: OpenFlow
rule counters on the real datapath, between dummy ports (no root)."""
import time

from test_dp_dump_active import IN_PORT_ONLY, NEVER, active, send_and_wait
from test_switch_on_dummy_ports import frame

from dp_ports import datapath_with_ports
from helpers.fake_datapath import configure
from vswitch.datapath import dpif
from vswitch.switch import Switch

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
IPV6_SRC = 0x20010DB8000000000000000000000001
GROWN_FLOWS = 100   # more than ACTIVE_DUMP_FIRST doubles twice, less than thrice
FRAMES, SIZE = 5, 90


def fields(s):
    return (s.fid, s.key, s.mask, s.actions, s.packets, s.bytes, s.used_ns, s.tcp_flags)


def test_records_match_the_full_dump_and_changed_actions_are_read_anew():
    with datapath_with_ports("dummy", 3) as (dp, [p1, p2, p3]):
        dp.flow_put({"in_port": 1}, IN_PORT_ONLY,
                    [("push_vlan", 0x0064), ("set_ipv6_src", IPV6_SRC), ("output", 2)])
        dp.flow_put({"in_port": 3}, IN_PORT_ONLY,
                    [("sample", (dpif.sample_probability(1), 7, 2, 64)), ("output", 2)])
        send_and_wait(p1, p2, FRAMES, SIZE)
        full = sorted(map(fields, dp.flow_dump()))
        dumped = active(dp, 0, 0)       # since 0: every megaflow matches
        assert all(isinstance(s, dpif.DumpedMegaflow) for s in dumped)
        assert sorted(map(fields, dumped)) == full
        hit = next(s for s in dumped if s.key["in_port"] == 1)
        assert (hit.packets, hit.bytes) == (FRAMES, FRAMES * SIZE)
        assert hit.actions[1] == ("set_ipv6_src", IPV6_SRC)
        # The same megaflow, new actions (a put replaces them): read anew.
        dp.flow_put({"in_port": 1}, IN_PORT_ONLY, [("pop_vlan", 0), ("output", 3)])
        since = dpif.now_ns()
        send_and_wait(p1, p3, 1, SIZE)
        (again,) = active(dp, since, 0)
        assert again.fid == hit.fid and again.actions == [("pop_vlan", 0), ("output", 3)]
        assert again.packets == FRAMES + 1


def test_record_array_grows_with_the_active_megaflows_and_is_kept():
    with datapath_with_ports("dummy", 1) as (dp, _):
        for port in range(GROWN_FLOWS):
            dp.flow_put({"in_port": 100 + port}, IN_PORT_ONLY, [("output", 1)])
        first = [len(c) for c in dp.flow_dump_active_chunks(0, 0)]
        start = dpif.ACTIVE_DUMP_FIRST
        assert first == [start, 2 * start, GROWN_FLOWS - 3 * start]
        # The next walk starts where the last one grew to.
        assert [len(c) for c in dp.flow_dump_active_chunks(0, 0)] == [4 * start, GROWN_FLOWS - 4 * start]
        # A smaller chunk than the array still bounds every call.
        assert {len(c) for c in dp.flow_dump_active_chunks(0, 0, chunk=start)} == {start, GROWN_FLOWS % start}
        assert [len(c) for c in dp.flow_dump_active_chunks(NEVER, 0)] == [0]


def rule_packets(sw):
    return {str(r.match): r.packet_count for t in sw.of["br0"].tables.tables for r in t}


def test_openflow_rule_counters_stay_exact_through_filtered_rounds():
    dp = dpif.Datapath()
    sw = Switch(dp)
    try:
        configure(sw, ["add-br", "br0"],
                  *(c for name in ("p1", "p2") for c in (
                      ["add-port", "br0", name], ["set", "Interface", name, "type=dummy"])))
        port = {name: sw.ifaces[name].dp_port for name in ("p1", "p2")}
        configure(sw, ["add-flow", "br0", f"in_port={sw.ifaces['p1'].ofport},actions=output:"
                                          f"{sw.ifaces['p2'].ofport}"])

        def send(n):
            assert dp.dummy_inject(port["p1"], [frame(A, B, i) for i in range(n)]) == n
            deadline = time.monotonic() + 5
            sent = 0
            while sent < n and time.monotonic() < deadline:
                sw.handle_upcalls()
                sent += len(dp.dummy_sent(port["p2"]))
                time.sleep(0.01)
            assert sent == n

        send(1)                 # the upcall: installs the megaflow, counts itself
        sw.revalidate()         # first round: the full dump
        send(4)
        sw.revalidate()         # filtered: DumpedMegaflow records
        assert list(rule_packets(sw).values()) == [5]
        sw.revalidate()         # nothing new: nothing counted twice
        send(3)
        sw.revalidate()
        assert list(rule_packets(sw).values()) == [8]
    finally:
        sw.close()
        dp.close()
