"""Per-table flow limits (ofproto/table_limits.py) as OVS's Flow_Table:
an add beyond flow_limit gets OFPFMFC_TABLE_FULL and changes nothing, or
(overflow_policy evict) evicts the evictable rule that expires soonest with
a flow-removed of reason EVICTION; replacing an identical rule and modifies
are not adds; a lowered limit evicts at once (evict) or only refuses new
adds (refuse); names and max_entries show in table stats and features; the
C front end never takes an add into a limited table, over a real socket."""
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest
from test_ofconn_busy_poll import Mgr
from test_ofconn_front import Transport

from vswitch.config import schema
from vswitch.ofproto import flow_table
from vswitch.ofproto.ofp import (ApplyActions, BarrierRequest, FlowMod, Match, OFPError, Output, decode, encode,
                                 split_messages)
from vswitch.ofproto.ofp import messages as m
from vswitch.ofproto.ofp import multipart as mp
from vswitch.ofproto.ofp.constants import (OFPFC_ADD, OFPFC_MODIFY, OFPFF_SEND_FLOW_REM, OFPRR_EVICTION)
from vswitch.ofproto.ofp.errors import error_name
from vswitch.ofproto.conn.ofconn import OFConnection
from vswitch.ofproto.ofswitch import OFSwitch
from vswitch.ofproto.table_limits import DEFAULT_MAX_ENTRIES, TableSettings, eviction_order

OF10, OF13 = 1, 4
LIMIT = 3
T0 = 100.0                 # the fake clock's start
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Host:
    """A Switch stand-in: no datapath, no megaflows."""

    def flush_bridge(self, name):
        """Nothing cached."""

    def revalidate_rules(self, name, changes):
        """Nothing cached."""

    def megaflows_use_table(self, name, table_id):
        return False


def switch(limit=LIMIT, evict=False, name="acl", table_id=0):
    ofs = OFSwitch("br0", Host())
    ofs.notes = []
    ofs.notify = lambda kind, msg: ofs.notes.append((kind, msg))
    ofs.configure({}, 0, {table_id: TableSettings(name, limit, evict)}, T0)
    return ofs


def fm(n, priority=10, idle=0, hard=0, command=OFPFC_ADD, table_id=0, version=OF13, port=2,
       flags=OFPFF_SEND_FLOW_REM):
    return FlowMod(command=command, table_id=table_id, priority=priority, idle_timeout=idle,
                   hard_timeout=hard, flags=flags, match=Match.exact(eth_type=0x800, ipv4_dst=0x0A000000 + n),
                   instructions=[ApplyActions([Output(port)])], version=version)


def dsts(ofs, table_id=0):
    return sorted(r.match["ipv4_dst"][0] - 0x0A000000 for r in ofs.tables.tables[table_id])


def test_the_add_beyond_the_limit_is_table_full_and_changes_nothing():
    ofs = switch()
    for n in range(LIMIT):
        ofs.flow_mod(fm(n), T0)
    with pytest.raises(OFPError) as exc:
        ofs.flow_mod(fm(LIMIT), T0)
    assert (exc.value.type, exc.value.code) == ("FLOW_MOD_FAILED", "TABLE_FULL")
    assert error_name(OF13, *exc.value.numbers(OF13)) == ("FLOW_MOD_FAILED", "TABLE_FULL")
    # OF1.0 has one code for it: OFPFMFC_ALL_TABLES_FULL (0)
    assert exc.value.numbers(OF10) == (3, 0)
    assert dsts(ofs) == list(range(LIMIT)) and ofs.notes == []
    # another table has no limit
    ofs.flow_mod(fm(LIMIT, table_id=1), T0)
    assert dsts(ofs, 1) == [LIMIT]


def test_replacing_an_identical_rule_and_modifying_are_not_adds():
    ofs = switch()
    for n in range(LIMIT):
        ofs.flow_mod(fm(n), T0)
    ofs.flow_mod(fm(0, port=5), T0)                       # same match and priority: replaced
    ofs.flow_mod(fm(1, port=6, command=OFPFC_MODIFY), T0)
    ports = {r.match["ipv4_dst"][0] - 0x0A000000: r.actions()[0].port for r in ofs.tables.tables[0]}
    assert ports == {0: 5, 1: 6, 2: 2}
    with pytest.raises(OFPError):                          # another priority is another rule
        ofs.flow_mod(fm(0, priority=11), T0)
    # an OF1.0 modify that matches nothing adds: limited too
    with pytest.raises(OFPError) as exc:
        ofs.flow_mod(fm(9, command=OFPFC_MODIFY, version=OF10), T0)
    assert exc.value.code == "TABLE_FULL" and len(dsts(ofs)) == LIMIT


def test_evict_removes_the_soonest_to_expire_and_sends_flow_removed():
    ofs = switch(evict=True)
    ofs.flow_mod(fm(0), T0)                     # permanent: never evicted
    ofs.flow_mod(fm(1, hard=50), T0)            # expires at T0 + 50
    ofs.flow_mod(fm(2, idle=30, hard=90), T0)   # expires at T0 + 30 unless used
    ofs.flow_mod(fm(3), T0 + 1)
    assert dsts(ofs) == [0, 1, 3]
    (kind, msg), = ofs.notes
    assert kind == "flow_removed" and msg.reason == OFPRR_EVICTION
    assert msg.match["ipv4_dst"][0] == 0x0A000002 and msg.idle_timeout == 30
    # traffic pushes an idle deadline back: the hard one goes next
    ofs.notes.clear()
    ofs.flow_mod(fm(4, idle=10), T0 + 2)        # evicts 1 (T0 + 50) ...
    assert dsts(ofs) == [0, 3, 4]
    rule4 = next(r for r in ofs.tables.tables[0] if r.match["ipv4_dst"][0] == 0x0A000004)
    rule4.account(1, 60, T0 + 100)              # ... and 4 was used: now T0 + 110
    ofs.flow_mod(fm(5, hard=200), T0 + 3)
    assert dsts(ofs) == [0, 3, 5]
    assert [msg.match["ipv4_dst"][0] - 0x0A000000 for _, msg in ofs.notes] == [1, 4]


def test_the_eviction_heap_picks_what_a_pass_over_the_table_picks():
    """Differential: random adds (timed and permanent, some replacing),
    traffic on random rules, deletes, a limit changed midway; at every
    evicting add the victim is the first of table_limits.eviction_order
    (the plain sort of every rule), computed before the add."""
    rng = random.Random(7)
    ofs = switch(limit=40, evict=True)
    now = T0
    for step in range(2000):
        now += rng.random()
        if step == 1000:
            ofs.configure({}, 0, {0: TableSettings("acl", 25, True)}, now)
        rules = list(ofs.tables.tables[0])
        if rules and rng.random() < 0.3:
            rng.choice(rules).account(1, 60, now)
            continue
        if rules and rng.random() < 0.05:
            victim = rng.choice(rules)
            ofs.tables.remove([victim])
            continue
        n = rng.randrange(200)
        idle, hard = rng.choice((0, 0, rng.randrange(1, 60))), rng.choice((0, rng.randrange(1, 90)))
        table = ofs.tables.tables[0]
        adding = not any(r.match["ipv4_dst"][0] == 0x0A000000 + n for r in table)
        limit = ofs.tables.limits.settings[0].flow_limit
        expected = eviction_order(table)[:1] if adding and table.count >= limit else []
        before = table.count
        ofs.notes.clear()
        try:
            ofs.flow_mod(fm(n, idle=idle, hard=hard), now)
        except OFPError:
            assert adding and expected == []
            continue
        assert [msg.match["ipv4_dst"][0] for _, msg in ofs.notes] == \
            [r.match["ipv4_dst"][0] for r in expected], step
        # an add never grows a table at (or, after the lowered limit, above) its limit
        assert table.count == (before + 1 if adding and before < limit else before), step


def test_evict_without_an_evictable_rule_is_table_full():
    ofs = switch(evict=True)
    for n in range(LIMIT):
        ofs.flow_mod(fm(n), T0)
    with pytest.raises(OFPError) as exc:
        ofs.flow_mod(fm(LIMIT, hard=5), T0)
    assert exc.value.code == "TABLE_FULL" and dsts(ofs) == [0, 1, 2] and ofs.notes == []


def test_lowering_the_limit_evicts_with_evict_and_keeps_with_refuse():
    for evict, kept in ((True, [0, 3]), (False, [0, 1, 2, 3])):
        ofs = switch(limit=10, evict=evict)
        ofs.flow_mod(fm(0), T0)
        ofs.flow_mod(fm(1, hard=20), T0)
        ofs.flow_mod(fm(2, hard=10), T0)
        ofs.flow_mod(fm(3, hard=30), T0)
        ofs.configure({}, 0, {0: TableSettings("acl", 2, evict)}, T0 + 1)
        assert dsts(ofs) == kept
        assert sorted(msg.match["ipv4_dst"][0] - 0x0A000000 for _, msg in ofs.notes) == \
            ([1, 2] if evict else [])
        if evict:                   # full: the add evicts the last evictable rule
            ofs.flow_mod(fm(7), T0 + 2)
            assert dsts(ofs) == [0, 7]
        else:                       # above the limit: refused
            with pytest.raises(OFPError):
                ofs.flow_mod(fm(7), T0 + 2)
            assert dsts(ofs) == kept


def test_table_stats_and_features_show_the_name_and_limit():
    ofs = switch(limit=LIMIT, name="acl", table_id=1)
    stats = ofs._mp_table(m.MultipartRequest(mp.OFPMP_TABLE, 0, None, version=OF10), T0)
    assert (stats[1].name, stats[1].max_entries) == ("acl", LIMIT)
    assert (stats[0].name, stats[0].max_entries) == ("table0", DEFAULT_MAX_ENTRIES)
    features = ofs._mp_table_features(m.MultipartRequest(mp.OFPMP_TABLE_FEATURES, 0, None), T0)
    assert (features[1].name, features[1].max_entries) == ("acl", LIMIT)
    assert (features[2].name, features[2].max_entries) == ("table2", DEFAULT_MAX_ENTRIES)


def test_the_config_schema_has_the_switchs_tables():
    assert schema.OPENFLOW_TABLES == flow_table.DEFAULT_N_TABLES


# --- the C front end over a real socket ------------------------------------------

PEER = textwrap.dedent("""
    import json, socket, sys
    from vswitch.ofproto.ofp import (ApplyActions, BarrierRequest, FlowMod, Hello, Match, Output, decode,
                                     encode, split_messages)
    from vswitch.ofproto.ofp.errors import error_name
    path, start, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(encode(Hello(versions=(4,), version=4)))
    buf, errors = b"", {}
    def wait(xid):
        global buf
        while True:
            raws, buf = split_messages(buf)
            for i, raw in enumerate(raws):
                msg = decode(raw)
                if type(msg).__name__ == "Error":
                    errors[msg.xid] = "/".join(error_name(4, msg.type, msg.code))
                elif msg.xid == xid:
                    buf = b"".join(raws[i + 1:]) + buf
                    return
            buf += s.recv(65536)
    for i in range(start, start + n):     # one add + barrier per round trip, as ovs-ofctl
        fm = FlowMod(command=0, priority=10, version=4, xid=2 * i,
                     match=Match.exact(eth_type=0x800, ip_proto=6, ipv4_dst=0x0A000000 + i, tcp_dst=80),
                     instructions=[ApplyActions([Output(2)])])
        s.sendall(encode(fm) + encode(BarrierRequest(version=4, xid=2 * i + 1)))
        wait(2 * i + 1)
    print(json.dumps(errors))
""")


def stream_through_socket(ofs, runs):
    """Each (start, n, settings or None): configure the table (if given),
    then a peer process streams n adds + barriers -> [(its errors by xid,
    adds the C front end had taken after it)]."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "of.sock")

        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_unix_server(lambda: OFConnection(Mgr(ofs), "test", False), path)
            outs = []
            for start, n, settings in runs:
                if settings is not None:
                    ofs.configure({}, 0, settings, time.monotonic())
                proc = subprocess.Popen([sys.executable, "-c", PEER, path, str(start), str(n)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONPATH=ROOT))
                while proc.poll() is None:
                    await asyncio.sleep(0.01)
                out, err = proc.communicate()
                assert proc.returncode == 0, err
                outs.append(({int(xid): name for xid, name in json.loads(out).items()}, ofs.front.taken))
            server.close()
            return outs
        return asyncio.run(main())


def test_the_c_front_end_never_lets_a_limited_table_exceed_its_limit():
    """First an unlimited stream, which the C front end takes; then a limit
    of 30 and 40 more adds: exactly 10 go in, every one beyond it gets
    TABLE_FULL (its barrier still answered, the connection up), and C takes
    none of them."""
    ofs = OFSwitch("br0", Host())
    unlimited, limited, limit = 20, 40, 30
    (first, taken_first), (second, taken_second) = stream_through_socket(ofs, [
        (0, unlimited, None), (unlimited, limited, {0: TableSettings("acl", limit, False)})])
    assert first == {} and taken_first > 0          # C took the unlimited stream
    assert ofs.tables.tables[0].count == limit
    assert sorted(xid // 2 for xid in second) == list(range(limit, unlimited + limited))
    assert set(second.values()) == {"FLOW_MOD_FAILED/TABLE_FULL"}
    assert taken_second == taken_first              # and none of the limited one


def test_an_evicting_table_streamed_through_the_socket_stays_at_its_limit():
    ofs = OFSwitch("br0", Host())
    ofs.configure({}, 0, {0: TableSettings("acl", 5, True)}, 0.0)
    (errors, taken), = stream_through_socket(ofs, [(0, 20, None)])
    # permanent rules are not evictable: refused past the limit, as refuse
    assert len(errors) == 15 and taken == 0 and ofs.tables.tables[0].count == 5


def test_an_eviction_reaches_a_controller_that_asked_for_its_reason():
    """As OVS: OF1.3's default async config has no EVICTION bit, so the
    controller hears nothing; after set-async with bit 5 it gets the
    flow-removed (reason 5) on the wire.  The refused add's error and the
    barrier after it are answered, and the connection stays up."""
    async def body():
        ofs = switch(limit=1, evict=True)
        mgr = Mgr(ofs)
        conns = []
        mgr.notify = lambda kind, msg: [c.send(msg) for c in conns if c.wants(kind, msg.reason)]
        ofs.notify = mgr.notify
        transport = Transport()
        conn = OFConnection(mgr, "ctl", True)
        conn.connection_made(transport)
        conn.data_received(encode(m.Hello(versions=(OF13,), version=OF13)))
        conns.append(conn)
        seen = []
        for n, asked in ((1, False), (2, False), (3, True)):
            if asked:
                conn.data_received(encode(m.SetAsync((0x3, 0), (0x7, 0x7), (0xF | 1 << OFPRR_EVICTION, 0),
                                                     version=OF13, xid=90)))
            transport.data = b""
            raw = fm(n, hard=10 + n)
            raw.xid = n
            conn.data_received(encode(raw) + encode(BarrierRequest(version=OF13, xid=100 + n)))
            seen.append([(type(msg).__name__, getattr(msg, "reason", None))
                         for msg in map(decode, split_messages(transport.data)[0])])
        transport.data = b""
        permanent = fm(9)
        permanent.xid = 9
        ofs.configure({}, 0, {0: TableSettings("acl", 1, False)}, T0)     # refuse from now on
        conn.data_received(encode(permanent) + encode(BarrierRequest(version=OF13, xid=109)))
        last = [(type(msg).__name__, msg.xid, getattr(msg, "code", None))
                for msg in map(decode, split_messages(transport.data)[0])]
        return seen, last, conn.closed, dsts(ofs)
    seen, last, closed, left = asyncio.run(body())
    assert seen == [[("BarrierReply", None)], [("BarrierReply", None)],
                    [("FlowRemoved", OFPRR_EVICTION), ("BarrierReply", None)]]
    assert [(kind, xid) for kind, xid, _ in last] == [("Error", 9), ("BarrierReply", 109)]
    assert not closed and left == [3]
