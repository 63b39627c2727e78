"""The lean OF1.3 flow-mod decoder against the table codec: on random
flow-mods (every OXM field, masks, actions of every kind, the instructions
it takes and those it leaves to the codec) and on mangled copies of them,
it returns exactly the table codec's FlowMod or None — never a message the
codec would refuse, never a different one — and ofp.decode gives the same
message or the same error either way."""
import glob
import os
import random
import struct

import os_ken
import pytest

from vswitch.ofproto import ofp
from vswitch.ofproto.ofp import codec
from vswitch.ofproto.ofp import instructions as ins
from vswitch.ofproto.ofp.flow_mod_fast import decode_flow_mod13
from vswitch.ofproto.ofp.oxm import FIELD_LIST, Match

N_MESSAGES = 3000
N_MANGLED = 4  # mangled copies per message
VALUE_FIELDS = [f for f in FIELD_LIST]


def random_match(rng):
    """Mostly a valid TCP/UDP/ARP/... match; sometimes any fields at all
    (prerequisites unmet, values wider than the field)."""
    match = Match()
    if rng.random() < 0.8:
        eth = rng.choice((0x0800, 0x86DD, 0x0806))
        match["eth_type"] = (eth, None)
        if eth != 0x0806:
            proto = rng.choice((6, 17, 1, 58))
            match["ip_proto"] = (proto, None)
            if eth == 0x0800:
                match["ipv4_dst"] = (rng.getrandbits(32), None)
                if rng.random() < 0.5:
                    bits = rng.randrange(1, 32)
                    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
                    match["ipv4_src"] = (rng.getrandbits(32) & mask, mask)
            if proto == 6:
                match["tcp_dst"] = (rng.getrandbits(16), None)
        else:
            match["arp_op"] = (rng.choice((1, 2)), None)
    for f in rng.sample(VALUE_FIELDS, rng.randrange(0, 3)):
        if f.name in match:
            continue
        wide = f.bits < f.size * 8 and rng.random() < 0.05   # a value too wide for the field
        value = rng.getrandbits(f.bits + wide)
        mask = rng.getrandbits(f.size * 8) if f.maskable and rng.random() < 0.3 else None
        match[f.name] = (value & mask if mask is not None else value, mask)
    if rng.random() < 0.5:
        match["in_port"] = (rng.randrange(1, 100), None)
    return match


def random_actions(rng):
    pool = [lambda: ofp.Output(rng.randrange(1, 0xFFFFFFFF), rng.randrange(0, 0x10000)),
            lambda: ofp.Output(rng.randrange(1, 10)),
            lambda: ofp.SetField("ipv4_dst", rng.getrandbits(32)),
            lambda: ofp.SetField("eth_src", rng.getrandbits(48)),
            lambda: ofp.PushVlan(),
            lambda: ofp.PopVlan(),
            lambda: ofp.Group(rng.randrange(0, 100)),
            lambda: ofp.DecNwTtl(),
            lambda: ofp.SetQueue(rng.randrange(0, 8))]
    return [rng.choice(pool)() for _ in range(rng.randrange(0, 4))]


def random_instructions(rng):
    out = []
    if rng.random() < 0.9:
        out.append(ins.ApplyActions(random_actions(rng)))
    if rng.random() < 0.2:
        out.append(ins.WriteActions(random_actions(rng)))
    if rng.random() < 0.05:
        out.append(ins.ClearActions())
    if rng.random() < 0.05:
        out.append(ins.Meter(rng.randrange(1, 10)))
    if rng.random() < 0.2:
        out.append(ins.GotoTable(rng.randrange(1, 254)))
    rng.shuffle(out)
    return out


def random_flow_mod(rng):
    msg = ofp.FlowMod(cookie=rng.getrandbits(64), cookie_mask=rng.getrandbits(64) if rng.random() < 0.2 else 0,
                      table_id=rng.randrange(0, 255), command=rng.randrange(0, 5),
                      idle_timeout=rng.randrange(0, 100), hard_timeout=rng.randrange(0, 100),
                      priority=rng.randrange(0, 0x10000), out_port=rng.choice((0xFFFFFFFF, 3)),
                      flags=rng.randrange(0, 32), match=random_match(rng),
                      instructions=random_instructions(rng), version=4, xid=rng.getrandbits(32))
    return codec.encode(msg)


def mangle(rng, data):
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:                       # flip a byte past the header
        pos = rng.randrange(8, len(data))
        data[pos] = rng.getrandbits(8)
    elif kind == 1:                     # truncate, header length fixed up
        data = data[:rng.randrange(8, len(data))]
        struct.pack_into("!H", data, 2, len(data))
    elif kind == 2:                     # header length wrong
        struct.pack_into("!H", data, 2, len(data) + rng.choice((-8, -1, 1, 8)))
    else:                               # bytes appended, header length fixed up
        data += bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 4, 8, 16))))
        struct.pack_into("!H", data, 2, len(data))
    return bytes(data)


def outcome(decoder, data):
    try:
        return decoder(data)
    except ofp.OFPError as err:
        return (err.type, err.code, err.version, err.xid, err.data)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_decoder_agrees_with_the_table_codec(seed):
    rng = random.Random(seed)
    taken = refused_by_both = left_to_codec = 0
    for _ in range(N_MESSAGES):
        original = random_flow_mod(rng)
        for data in [original] + [mangle(rng, original) for _ in range(N_MANGLED)]:
            want = outcome(codec.decode_by_table, data)
            fast = decode_flow_mod13(data)
            if isinstance(want, tuple):
                assert fast is None, (data.hex(), want)
                refused_by_both += 1
            elif fast is None:
                left_to_codec += 1
            else:
                assert fast == want, data.hex()
                taken += 1
            assert outcome(ofp.decode, data) == want
    # Each kind happened often: the comparison covered all three cases.
    assert taken > N_MESSAGES // 2
    assert refused_by_both > N_MESSAGES // 2
    assert left_to_codec > N_MESSAGES // 20


def test_osken_fixture_flow_mods():
    """os-ken's OF1.3 flow-mod fixtures (some are ovs-ofctl's own bytes):
    the lean decoder takes the plain ones and gives the table codec's
    message, and leaves the extension-laden ones to the codec."""
    taken = 0
    paths = sorted(glob.glob(os.path.join(os.path.dirname(os_ken.__file__), "tests", "packet_data",
                                          "of13", "*.packet")))
    flow_mods = [data for data in (open(p, "rb").read() for p in paths) if data[:2] == b"\x04\x0e"]
    assert len(flow_mods) > 10
    for data in flow_mods:
        want = outcome(codec.decode_by_table, data)
        fast = decode_flow_mod13(data)
        if fast is not None:
            assert fast == want
            taken += 1
    assert taken >= 3


def _add(table_id, port, priority=10):
    match = Match([("eth_type", (0x0800, None)), ("ip_proto", (6, None)), ("tcp_dst", (port, None))])
    return ofp.FlowMod(command=0, table_id=table_id, priority=priority, match=match,
                       instructions=[ins.ApplyActions([ofp.Output(2, 0)])], version=4, xid=port)


def test_repeated_instruction_section_decodes_to_one_shared_list():
    """Two flow-mods with the same instruction bytes get the same list
    object (FlowTables recognises it by identity); a different section gets
    its own, with its own actions."""
    from vswitch.ofproto.ofp.flow_mod_fast import is_cached_program
    a = decode_flow_mod13(codec.encode(_add(0, 80)))
    b = decode_flow_mod13(codec.encode(_add(0, 81)))
    other = _add(0, 82)
    other.instructions = [ins.ApplyActions([ofp.Output(3, 0)])]
    c = decode_flow_mod13(codec.encode(other))
    assert a.instructions is b.instructions and is_cached_program(a.instructions)
    assert a.match != b.match
    assert c.instructions is not a.instructions
    assert c.instructions == [ins.ApplyActions([ofp.Output(3, 0)])]
    assert not is_cached_program(list(a.instructions))


def test_flow_tables_do_not_reuse_a_callers_mutated_list():
    """A caller's own list, mutated between two flow-mods, gives each rule
    the actions it had when its flow-mod was applied."""
    from vswitch.ofproto.flow_table import FlowTables
    tables = FlowTables()
    first, second = _add(0, 80), _add(0, 81)
    second.instructions = first.instructions
    tables.flow_mod(first, 0.0)
    first.instructions[0] = ins.ApplyActions([ofp.Output(7, 0)])
    tables.flow_mod(second, 0.0)
    got = {r.match["tcp_dst"][0]: r.instructions for r in tables.tables[0]}
    assert got[80] == [ins.ApplyActions([ofp.Output(2, 0)])]
    assert got[81] == [ins.ApplyActions([ofp.Output(7, 0)])]


def test_flow_tables_share_decoded_lists():
    """Rules added from repeated decoded sections share one list."""
    from vswitch.ofproto.flow_table import FlowTables
    tables = FlowTables()
    for port in (80, 81, 82):
        tables.flow_mod(decode_flow_mod13(codec.encode(_add(0, port))), 0.0)
    lists = {id(r.instructions) for r in tables.tables[0]}
    assert len(lists) == 1 and len(tables.tables[0]) == 3


class _NoDatapath:
    def flush_bridge(self, name):
        """No datapath: nothing to flush."""


def test_repeated_bad_program_is_refused_every_time():
    """A decoded instruction list is checked once while it repeats only if
    it passed: the same bad section (output to port 0) is refused with
    BAD_OUT_PORT each time, and a good one after it is added."""
    from vswitch.ofproto.ofswitch import OFSwitch
    ofs = OFSwitch("br0", _NoDatapath())
    bad = []
    for port in (80, 81):
        fm = _add(0, port)
        fm.instructions = [ins.ApplyActions([ofp.Output(0, 0)])]
        with pytest.raises(ofp.OFPError) as err:
            ofs.handle(decode_flow_mod13(codec.encode(fm)), 0.0)
        bad.append((err.value.type, err.value.code))
    ofs.handle(decode_flow_mod13(codec.encode(_add(0, 82))), 0.0)
    ofs.handle(decode_flow_mod13(codec.encode(_add(0, 83))), 0.0)
    want = ofp.OFPError("BAD_ACTION", "BAD_OUT_PORT")
    assert bad == [(want.type, want.code)] * 2
    assert {r.match["tcp_dst"][0] for r in ofs.tables.tables[0]} == {82, 83}


def test_callers_list_made_bad_after_a_good_flow_mod_is_refused():
    """A caller's own instruction list that passed once and is then changed
    to output:0 is checked again (only decoder-kept lists skip the check)."""
    from vswitch.ofproto.ofswitch import OFSwitch
    ofs = OFSwitch("br0", _NoDatapath())
    first, second = _add(0, 80), _add(0, 81)
    second.instructions = first.instructions
    ofs.handle(first, 0.0)
    first.instructions[0] = ins.ApplyActions([ofp.Output(0, 0)])
    with pytest.raises(ofp.OFPError) as err:
        ofs.handle(second, 0.0)
    want = ofp.OFPError("BAD_ACTION", "BAD_OUT_PORT")
    assert (err.value.type, err.value.code) == (want.type, want.code)
    assert {r.match["tcp_dst"][0] for r in ofs.tables.tables[0]} == {80}


def _layout_flow_mod(eth_type, proto, l4_field, port, dst=0x0A000001):
    match = Match([("eth_type", (eth_type, None)), ("ip_proto", (proto, None)),
                   ("ipv4_dst", (dst, None)), (l4_field, (port, None))])
    return codec.encode(ofp.FlowMod(command=0, priority=5, match=match,
                                    instructions=[ins.ApplyActions([ofp.Output(2, 0)])], version=4, xid=port))


def test_compiled_layout_agrees_with_the_table_codec_on_each_repeat():
    """Once a match layout is compiled, every later message of the same
    length is still decoded as the codec does: other values, a header that
    differs in a later field (tcp_dst -> udp_dst), and prerequisites that no
    longer hold after a passing check was kept (eth_type IPv6 with ipv4_dst,
    ip_proto UDP with tcp_dst) are refused with the codec's error."""
    from vswitch.ofproto.ofp import flow_mod_fast
    flow_mod_fast._LAYOUTS.clear()
    cases = [(0x0800, 6, "tcp_dst", 80), (0x0800, 6, "tcp_dst", 81),    # learned, then taken
             (0x86DD, 6, "tcp_dst", 82),                                # BAD_PREREQ (ipv4_dst)
             (0x0800, 17, "tcp_dst", 83),                               # BAD_PREREQ (tcp_dst)
             (0x0800, 17, "udp_dst", 84), (0x0800, 6, "tcp_dst", 85),   # another layout, then back
             (0x0800, 6, "udp_dst", 86)]                                # BAD_PREREQ (udp_dst)
    refused = taken = 0
    for case in cases:
        data = _layout_flow_mod(*case)
        want = outcome(codec.decode_by_table, data)
        fast = decode_flow_mod13(data)
        if isinstance(want, tuple):
            assert fast is None and want[:2] == ("BAD_MATCH", "BAD_PREREQ"), case
            assert outcome(ofp.decode, data) == want
            refused += 1
        else:
            assert fast == want, case
            taken += 1
    assert (taken, refused) == (4, 3)
    assert flow_mod_fast._LAYOUTS, "the layout was compiled"
