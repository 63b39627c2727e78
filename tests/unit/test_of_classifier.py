"""The classifier against the old linear table (kept here as the reference):
same winners, and the megaflow mask it returns never hides another winner."""
import random

import pytest

from vswitch.ofproto.classifier import Classifier, prefix_len
from vswitch.ofproto.flow_table import FlowTables, Rule
from vswitch.ofproto.ofp import ApplyActions, FlowMod, Match, Output
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT
from vswitch.ofproto.ofp.oxm import full

FIELD_VALUES = {   # small value sets so random packets hit random rules
    "in_port": [1, 2, 3],
    "metadata": [0, 5],
    "eth_type": [0x800, 0x806],
    "ip_proto": [6, 17],
    "tcp_dst": [22, 80, 443],
    "ipv4_src": [0x0A000001, 0x0A000102, 0x0A010203, 0x0B000001, 0xC0A80001],
    "ipv4_dst": [0x0A000001, 0x0A0000FF, 0x14000001, 0xC0A80101],
}
PREFIX_LENS = [8, 16, 24, 31, 32]


def linear_lookup(rules, packet):
    """The old FlowTables.lookup: priority order, union of every considered
    rule's mask down to the winner's priority."""
    mask, winner = {}, None
    for rule in sorted(rules, key=lambda r: (-r.priority, r.seq)):
        if winner is not None and rule.priority < winner.priority:
            break
        for name in rule.match:
            mask[name] = mask.get(name, 0) | rule.match.effective_mask(name)
        if winner is None and rule.match.matches(packet):
            winner = rule
    return winner, mask


def random_match(rng):
    fields = {}
    if rng.random() < 0.3:
        fields["in_port"] = (rng.choice(FIELD_VALUES["in_port"]), None)
    if rng.random() < 0.15:
        fields["metadata"] = (rng.choice(FIELD_VALUES["metadata"]) & 4, 4)
    if rng.random() < 0.85:
        fields["eth_type"] = (0x800, None)
        for name in ("ipv4_src", "ipv4_dst"):
            if rng.random() < 0.6:
                plen = rng.choice(PREFIX_LENS)
                m = full(name) ^ ((1 << (32 - plen)) - 1)
                fields[name] = (rng.choice(FIELD_VALUES[name]) & m, m)
        if rng.random() < 0.5:
            fields["ip_proto"] = (6, None)
            if rng.random() < 0.6:
                fields["tcp_dst"] = (rng.choice(FIELD_VALUES["tcp_dst"]), None)
    elif rng.random() < 0.5:
        fields["eth_type"] = (0x806, None)
    return Match(fields).normalized()


def random_packet(rng):
    p = {name: rng.choice(values) for name, values in FIELD_VALUES.items()}
    if p["eth_type"] != 0x800:
        for name in ("ip_proto", "tcp_dst", "ipv4_src", "ipv4_dst"):
            del p[name]
    elif p["ip_proto"] != 6:
        del p["tcp_dst"]
    if rng.random() < 0.3:   # sometimes off the value sets altogether
        for name in ("ipv4_src", "ipv4_dst"):
            if name in p:
                p[name] = rng.getrandbits(32)
    return p


def agreeing_packet(rng, packet, mask):
    """Random packet equal to `packet` on the mask bits (same fields present)."""
    out = {}
    for name, value in packet.items():
        m = mask.get(name, 0)
        out[name] = (value & m) | (rng.getrandbits(full(name).bit_length()) & ~m & full(name))
    return out


def build(rng, n_rules):
    classifier, rules = Classifier(), []
    for seq in range(n_rules):
        rule = Rule(0, rng.randint(0, 12), random_match(rng), [], seq=seq)
        if classifier.find_exact(rule.match, rule.priority) is not None:
            continue
        classifier.insert(rule)
        rules.append(rule)
    return classifier, rules


def check_lookups(rng, classifier, rules, n_packets):
    for _ in range(n_packets):
        packet = random_packet(rng)
        winner, mask = classifier.lookup(packet)
        assert winner is linear_lookup(rules, packet)[0]
        for name, bits in mask.items():
            assert bits and not bits & ~full(name), (name, bits)
        for _ in range(8):
            other = agreeing_packet(rng, packet, mask)
            assert classifier.lookup(other)[0] is winner, (packet, other, mask)


@pytest.mark.parametrize("seed", range(12))
def test_random_rules_same_winner_and_sound_mask(seed):
    rng = random.Random(seed)
    classifier, rules = build(rng, rng.choice([5, 30, 120]))
    check_lookups(rng, classifier, rules, 150)
    for rule in rng.sample(rules, len(rules) // 2):     # removal keeps it right
        classifier.remove(rule)
        rules.remove(rule)
    assert len(classifier) == len(rules)
    check_lookups(rng, classifier, rules, 100)
    more, added = build(rng, 40)[1], 0            # inserts once the lookups built their indexes
    for rule in more:
        if classifier.find_exact(rule.match, rule.priority) is None:
            rule.seq = 1000 + added
            classifier.insert(rule)
            rules.append(rule)
            added += 1
    check_lookups(rng, classifier, rules, 100)


def test_mask_is_no_wider_than_the_linear_one_on_average():
    """Staging and prefix tracking must actually narrow the masks."""
    rng = random.Random(99)
    classifier, rules = build(rng, 200)
    ours = theirs = 0
    for _ in range(300):
        packet = random_packet(rng)
        ours += sum(bin(b).count("1") for b in classifier.lookup(packet)[1].values())
        theirs += sum(bin(b).count("1") for b in linear_lookup(rules, packet)[1].values())
    assert ours < theirs


def test_prefix_tracking_keeps_slash32_out_of_other_masks():
    c = Classifier()
    slash32 = Rule(0, 20, Match(eth_type=(0x800, None), ipv4_dst=(0x0A000001, None)), [], seq=0)
    slash8 = Rule(0, 10, Match(eth_type=(0x800, None), ipv4_dst=(0x0A000000, 0xFF000000)), [], seq=1)
    c.insert(slash32)
    c.insert(slash8)
    winner, mask = c.lookup({"eth_type": 0x800, "ipv4_dst": 0x0AF00000})   # 10.240.0.0
    assert winner is slash8
    # 10.240/16 differs from 10.0.0.1 at bit 9: 9 bits prove the /32 cannot match
    assert mask == {"eth_type": 0xFFFF, "ipv4_dst": 0xFF800000}
    assert c.lookup({"eth_type": 0x800, "ipv4_dst": 0x0A000001}) == (slash32, {"eth_type": 0xFFFF,
                                                                              "ipv4_dst": 0xFFFFFFFF})


def test_prefix_len():
    assert prefix_len("ipv4_src", 0xFFFFFF00) == 24 and prefix_len("ipv4_src", 0xFFFFFFFF) == 32
    assert prefix_len("ipv4_src", 0xFF00FF00) is None and prefix_len("ipv4_src", 0) is None


def _fm(command, match, priority=100, **kw):
    return FlowMod(command=command, match=Match(match), priority=priority,
                   instructions=[ApplyActions([Output(1)])], **kw)


def test_flow_mods_touch_only_selected_subtables():
    """Strict delete of one of many rules; loose delete by a prefix."""
    t = FlowTables(n_tables=2)
    for i in range(300):
        t.flow_mod(_fm(OFPFC_ADD, {"eth_type": (0x800, None), "ipv4_dst": (0x0A000000 + i, None)},
                       priority=i % 7), 0.0)
    t.flow_mod(_fm(OFPFC_ADD, {"in_port": (1, None)}), 0.0)
    [(gone, _)] = t.flow_mod(_fm(OFPFC_DELETE_STRICT, {"eth_type": (0x800, None),
                                                      "ipv4_dst": (0x0A000005, None)}, priority=5), 0.0)
    assert gone.match["ipv4_dst"][0] == 0x0A000005 and len(t.rules()) == 300
    removed = t.flow_mod(_fm(OFPFC_DELETE, {"eth_type": (0x800, None),
                                            "ipv4_dst": (0x0A000000, 0xFFFFFFF0)}), 0.0)
    assert sorted(r.match["ipv4_dst"][0] - 0x0A000000 for r, _ in removed) == \
        [i for i in range(16) if i != 5]
    assert len(t.rules()) == 285 and t.lookup(0, {"in_port": 1})[0].match == {"in_port": (1, None)}


def test_expiry_heap_returns_exactly_the_due_rules():
    """Hard and idle timeouts of many rules; traffic pushes idle deadlines
    back; a deleted rule's deadline is ignored."""
    from vswitch.ofproto.ofp.constants import OFPRR_HARD_TIMEOUT, OFPRR_IDLE_TIMEOUT
    t = FlowTables(n_tables=1)
    rng = random.Random(5)
    timeouts = {}
    for i in range(200):
        hard, idle = rng.choice((0, 5, 10, 20)), rng.choice((0, 3, 8))
        t.flow_mod(_fm(OFPFC_ADD, {"in_port": (i + 1, None)}, idle_timeout=idle, hard_timeout=hard), 0.0)
        timeouts[i + 1] = (hard, idle)
    busy = {p for p in timeouts if p % 3 == 0}            # these see traffic at t=6
    for rule in t.rules():
        if rule.match["in_port"][0] in busy:
            rule.account(1, 60, now=6.0)
    t.flow_mod(_fm(OFPFC_DELETE_STRICT, {"in_port": (1, None)}), 0.0)
    timeouts.pop(1)

    def deadline(port):
        hard, idle = timeouts[port]
        last = 6.0 if port in busy else 0.0
        return min(d for d in (hard or None, (last + idle) if idle else None) if d is not None)

    timed = [p for p, (h, i) in timeouts.items() if h or i]
    assert t.next_expiry() == min(deadline(p) for p in timed)
    gone = t.expire(9.5)
    assert sorted(r.match["in_port"][0] for r, _ in gone) == sorted(p for p in timed if deadline(p) <= 9.5)
    for rule, reason in gone:
        hard, idle = timeouts[rule.match["in_port"][0]]
        assert reason == (OFPRR_HARD_TIMEOUT if hard and hard <= 9.5 else OFPRR_IDLE_TIMEOUT)
    left = [p for p in timed if deadline(p) > 9.5]
    assert t.next_expiry() == min(deadline(p) for p in left)
    assert len(t.rules()) == 199 - len(gone)


def test_prefix_tracking_after_changes_made_amid_lookups():
    """Prefixes added and removed after lookups began (the sorted copy is
    then kept up to date) still give masks that separate the packet from
    every stored prefix."""
    c = Classifier()

    def rule(seq, last_octet):
        return Rule(0, 10, Match(eth_type=(0x800, None), ipv4_dst=(0x0A000000 + last_octet, None)), [], seq=seq)
    for seq, octet in enumerate((100, 200)):
        c.insert(rule(seq, octet))
    assert c.lookup({"eth_type": 0x800, "ipv4_dst": 0x0A000001})[0] is None
    two = rule(5, 2)
    c.insert(two)
    winner, mask = c.lookup({"eth_type": 0x800, "ipv4_dst": 0x0A000003})
    assert winner is None and mask["ipv4_dst"] == 0xFFFFFFFF      # .3 vs .2 differ in the last bit
    c.remove(two)
    winner, mask = c.lookup({"eth_type": 0x800, "ipv4_dst": 0x0A000003})
    assert winner is None and mask["ipv4_dst"] == 0xFFFFFFC0      # now .100 is the nearest: 26 bits
