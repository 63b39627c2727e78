"""One OpenFlow table as a classifier: subtables per match mask, staged
lookup, prefix tracking.  Pure data structure; no locks (the OpenFlow state
is touched only by the daemon's main loop, see DESIGN.md).

Design note (after OVS lib/classifier.c; the ideas, not the code).

  * Subtables.  Rules with the same set of (field, mask) pairs share a
    subtable: a dict from the tuple of masked values to the rules with that
    exact match (several priorities), so a lookup costs one hash probe per
    subtable instead of one comparison per rule.  Subtables are visited in
    order of the highest priority they hold and the walk stops at the first
    one that cannot beat the current winner (equal priorities are still
    visited: ties go to the older rule, as the old list did).
  * Staged lookup.  A subtable's fields are split into stages (metadata and
    in_port, L2, L3, L4); each stage but the last keeps the set of masked-key
    prefixes its rules have (as hashes, with counts: memory per rule matters
    at a million rules, and a collision only makes the lookup go on to the
    next stage, a wider mask, never a wrong one).  A packet whose prefix is absent misses there,
    and only the fields up to that stage enter the megaflow mask: a miss on
    eth_type does not make every megaflow match on tcp_dst.
  * Prefix tracking.  For IPv4/IPv6 src/dst matched by a CIDR prefix, a
    subtable keeps the sorted prefixes its rules use.  When the packet's
    prefix is not among them, the subtable misses and the mask only needs
    the bits up to the first one in which the packet differs from every
    stored prefix (longest common prefix with the sorted neighbours, + 1),
    so a /32 rule next to a /8 rule does not force /32 masks on all traffic.

The mask `lookup()` returns is sound: any packet equal to the looked-up one
on the mask bits gets the same winner (tests/unit/test_of_classifier.py
checks this against the linear reference on random rules and packets).
"""
import itertools
from bisect import bisect_left, insort
from operator import attrgetter

from vswitch.ofproto.ofp.oxm import FIELDS, full

# Lookup stages (OVS: metadata, L2, L3, L4).  A field not listed goes last,
# which is always correct, only less selective.
STAGE_META, STAGE_L2, STAGE_L3, STAGE_L4 = range(4)
_STAGE_FIELDS = {
    STAGE_META: ("in_port", "in_phy_port", "metadata", "tunnel_id", "tun_ipv4_src", "tun_ipv4_dst"),
    STAGE_L2: ("eth_dst", "eth_src", "eth_type", "vlan_vid", "vlan_pcp", "mpls_label", "mpls_tc",
               "mpls_bos", "pbb_isid"),
    STAGE_L3: ("ip_dscp", "ip_ecn", "ip_proto", "ipv4_src", "ipv4_dst", "arp_op", "arp_spa", "arp_tpa",
               "arp_sha", "arp_tha", "ipv6_src", "ipv6_dst", "ipv6_flabel", "ipv6_exthdr"),
}
STAGE_OF = {name: stage for stage, names in _STAGE_FIELDS.items() for name in names}
PREFIX_FIELDS = ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst")
RULE_ORDER = attrgetter("priority_key")   # (-priority, seq): best first
_BY_SEQ, _BY_PRIORITY = attrgetter("seq"), attrgetter("priority")


def best_first(rules):
    """`rules` in RULE_ORDER, by two stable sorts on plain attributes (age,
    then priority descending): a quarter of the time of the property key for
    a flow dump of 100k rules (no tuple built per rule)."""
    out = sorted(rules, key=_BY_SEQ)
    out.sort(key=_BY_PRIORITY, reverse=True)
    return out
_ORDER_CACHE = {}   # tuple of field names -> the same names in stage order
_FULL = {}          # field -> all-ones mask of its width
# (fields in stage order, their masks as matched) -> signature: a flow-mod's
# signature without a full-mask lookup per field (a table holds few)
_SIGNATURES = {}
MAX_CACHED_SIGNATURES = 4096


def _full(name):
    bits = _FULL.get(name)
    if bits is None:
        bits = _FULL[name] = full(name)
    return bits


def field_sort_key(name):
    field = FIELDS.get(name)
    return STAGE_OF.get(name, STAGE_L4), field.order if field else (True, 0)


def prefix_len(name, mask):
    """CIDR length if `mask` is a non-empty prefix of the field, else None."""
    bits = FIELDS[name].bits
    inverted = full(name) ^ mask
    if mask and not inverted & (inverted + 1):
        return bits - inverted.bit_length()
    return None


class PrefixSet:
    """The `plen`-bit prefixes one subtable's rules use on one field, with
    counts (rules share prefixes) and a sorted copy made by the first lookup
    that needs it (a bulk load before traffic does not pay for it), then
    kept up to date (a flow-mod amid traffic costs one insertion, not the
    next lookup a sort)."""
    __slots__ = ("shift", "plen", "width", "counts", "_sorted")

    def __init__(self, name, plen):
        self.width = FIELDS[name].bits
        self.plen, self.shift = plen, self.width - plen
        self.counts, self._sorted = {}, None

    def add(self, value):
        p = value >> self.shift
        n = self.counts.get(p, 0)
        self.counts[p] = n + 1
        if not n and self._sorted is not None:
            insort(self._sorted, p)

    def discard(self, value):
        p = value >> self.shift
        n = self.counts[p] - 1
        if n:
            self.counts[p] = n
        else:
            del self.counts[p]
            if self._sorted is not None:
                del self._sorted[bisect_left(self._sorted, p)]

    def miss_mask(self, value):
        """None if some rule has the packet's prefix; else the mask of the
        leading bits that prove none has."""
        p = value >> self.shift
        if p in self.counts:
            return None
        ordered = self._sorted
        if ordered is None:
            ordered = self._sorted = sorted(self.counts)
        i = bisect_left(ordered, p)
        common = 0
        for q in ordered[max(0, i - 1):i + 1]:
            common = max(common, self.plen - (p ^ q).bit_length())
        need = common + 1
        return ((1 << need) - 1) << (self.width - need)


class Subtable:
    """Rules sharing one mask signature ((field, mask), ...) in stage order."""
    __slots__ = ("signature", "stages", "stage_sets", "stage_ends", "names", "buckets", "prio_counts",
                 "max_priority", "prefixes", "n_rules")

    def __init__(self, signature):
        self.signature = signature
        # stages: [(pairs of this stage, cumulative pairs up to it)], non-empty ones only
        self.stages = []
        cumulative, current, last = [], [], None
        for name, mask in signature:
            stage = STAGE_OF.get(name, STAGE_L4)
            if last is not None and stage != last:
                self.stages.append((tuple(current), tuple(cumulative)))
                current = []
            current.append((name, mask))
            cumulative.append((name, mask))
            last = stage
        self.stages.append((tuple(current), tuple(cumulative)))
        self.stage_sets = [{} for _ in self.stages[:-1]]   # hash(key prefix) -> rule count
        # (stage set, length of the key prefix it counts): insert/remove walk
        # these without a generator (a flow-mod's insert is on ovs-ofctl's
        # round trip)
        ends = itertools.accumulate(len(pairs) for pairs, _ in self.stages)
        self.stage_ends = tuple(zip(self.stage_sets, ends))
        self.names = tuple(name for name, _ in signature)
        self.buckets = {}          # full masked key -> the rule, or [rules] best first if several
        self.prio_counts = {}      # priority -> rules
        self.max_priority = -1
        self.prefixes = []         # [(field, PrefixSet)]
        for name, mask in signature:
            plen = prefix_len(name, mask) if name in PREFIX_FIELDS else None
            if plen is not None:
                self.prefixes.append((name, PrefixSet(name, plen)))
        self.n_rules = 0

    def key_of(self, match):
        return tuple([match[name][0] for name in self.names])

    def insert(self, rule, key):
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = rule     # most keys hold one rule: no list for it
        else:
            bucket = [bucket, rule] if type(bucket) is not list else bucket + [rule]
            bucket.sort(key=RULE_ORDER)
            self.buckets[key] = bucket
        for counts, end in self.stage_ends:
            prefix = hash(key[:end])
            counts[prefix] = counts.get(prefix, 0) + 1
        for name, pset in self.prefixes:
            pset.add(rule.match[name][0])
        self.prio_counts[rule.priority] = self.prio_counts.get(rule.priority, 0) + 1
        self.n_rules += 1
        if rule.priority > self.max_priority:
            self.max_priority = rule.priority
            return True
        return False

    def remove(self, rule, key):
        """-> True if the subtable's highest priority changed."""
        bucket = self.buckets[key]
        if type(bucket) is not list:
            del self.buckets[key]
        else:
            bucket = [r for r in bucket if r is not rule]
            self.buckets[key] = bucket[0] if len(bucket) == 1 else bucket
        for counts, end in self.stage_ends:
            prefix = hash(key[:end])
            n = counts[prefix] - 1
            if n:
                counts[prefix] = n
            else:
                del counts[prefix]
        for name, pset in self.prefixes:
            pset.discard(rule.match[name][0])
        n = self.prio_counts[rule.priority] - 1
        self.n_rules -= 1
        if n:
            self.prio_counts[rule.priority] = n
            return False
        del self.prio_counts[rule.priority]
        if rule.priority == self.max_priority:
            self.max_priority = max(self.prio_counts, default=-1)
            return True
        return False

    def rules(self):
        for bucket in self.buckets.values():
            if type(bucket) is list:
                yield from bucket
            else:
                yield bucket


def _or_mask(mask, pairs):
    for name, bits in pairs:
        mask[name] = mask.get(name, 0) | bits


class RuleCount:
    """The rules of a set of classifiers (one bridge's tables), counted by
    their inserts and removes: whether a bridge has any rule is asked on
    every revalidator round and upcall (OFSwitch.mode), and visiting its 254
    tables for it cost ~16 µs a time, ~70 µs a round (issue 16)."""
    __slots__ = ("n",)

    def __init__(self):
        self.n = 0


class Classifier:
    """One OpenFlow table.  Rules need .match (normalized Match), .priority
    and .priority_key ((-priority, seq)); they are kept by identity.
    `total`: a RuleCount shared with the bridge's other tables."""

    def __init__(self, total=None):
        self.subtables = {}        # signature -> Subtable
        self._ordered = []         # subtables by max_priority, best first (lazily re-sorted)
        self._dirty = False
        self.count = 0
        self.total = total if total is not None else RuleCount()

    def __len__(self):
        return self.count

    def __iter__(self):
        """Rules best first (priority, then age), as the old sorted list."""
        return iter(best_first(self.all_rules()))

    def all_rules(self):
        for st in self.subtables.values():
            yield from st.rules()

    @staticmethod
    def signature_of(match):
        """((field, mask), ...) in stage order; the field order of a given
        set of names is sorted once per process (flow-mods repeat them)."""
        names = tuple(match)
        order = _ORDER_CACHE.get(names)
        if order is None:
            order = _ORDER_CACHE[names] = tuple(sorted(names, key=field_sort_key))
        masks = (order, tuple([match[name][1] for name in order]))
        sig = _SIGNATURES.get(masks)
        if sig is None:
            if len(_SIGNATURES) >= MAX_CACHED_SIGNATURES:   # arbitrary masks: start afresh
                _SIGNATURES.clear()
            sig = _SIGNATURES[masks] = tuple([(name, mask if mask is not None else _full(name))
                                              for name, mask in zip(*masks)])
        return sig

    def _subtable_for(self, match, create=False, sig=None):
        sig = sig or self.signature_of(match)
        st = self.subtables.get(sig)
        if st is None and create:
            st = self.subtables[sig] = Subtable(sig)
            self._ordered.append(st)
            self._dirty = True
        return st

    @staticmethod
    def signature_key(sig, match):
        """The subtable key of `match` under its signature `sig` (what
        Subtable.key_of gives), for a find_exact and insert in a row."""
        return tuple([match[name][0] for name, _ in sig])

    def insert(self, rule, sig=None, key=None):
        st = self._subtable_for(rule.match, create=True, sig=sig)
        if st.insert(rule, key if key is not None else st.key_of(rule.match)):
            self._dirty = True
        self.count += 1
        self.total.n += 1

    def remove(self, rule):
        st = self._subtable_for(rule.match)
        if st.remove(rule, st.key_of(rule.match)):
            self._dirty = True
        self.count -= 1
        self.total.n -= 1
        if not st.n_rules:
            del self.subtables[st.signature]
            self._ordered.remove(st)

    def find_exact(self, match, priority, sig=None, key=None):
        """The rule with exactly this (normalized) match and priority."""
        st = self._subtable_for(match, sig=sig)
        if st is None:
            return None
        bucket = st.buckets.get(key if key is not None else st.key_of(match))
        for rule in bucket if type(bucket) is list else (bucket,):
            if rule is not None and rule.priority == priority:
                return rule
        return None

    def with_priority(self, priority):
        """Rules of one priority (only subtables that have it are read)."""
        for st in self.subtables.values():
            if priority in st.prio_counts:
                yield from (r for r in st.rules() if r.priority == priority)

    def loose(self, match):
        """Rules `match` selects loosely (rule.match is a subset of it): only
        subtables whose masks cover every bit `match` asks for are read."""
        want = [(name, match.effective_mask(name)) for name in match]
        for st in self.subtables.values():
            have = dict(st.signature)
            if any(bits & ~have.get(name, 0) for name, bits in want):
                continue
            if not want:
                yield from st.rules()
                continue
            idx = [(i, match[name][0] & bits, bits) for i, (name, _) in enumerate(st.signature)
                   for n2, bits in want if n2 == name]
            for key, bucket in st.buckets.items():
                if all(key[i] & bits == value for i, value, bits in idx):
                    yield from bucket if type(bucket) is list else (bucket,)

    def lookup(self, packet):
        """-> (winner or None, {field: mask bits the decision depended on})."""
        if self._dirty:
            self._ordered.sort(key=lambda st: -st.max_priority)
            self._dirty = False
        mask = {}
        best, best_prio = None, -1
        for st in self._ordered:
            if st.max_priority < best_prio:
                break
            if st.prefixes and self._prefix_miss(st, packet, mask):
                continue
            bucket = self._staged(st, packet, mask)
            if bucket is not None:
                rule = bucket[0] if type(bucket) is list else bucket
                if best is None or rule.priority_key < best.priority_key:
                    best, best_prio = rule, rule.priority
        return best, mask

    @staticmethod
    def _prefix_miss(st, packet, mask):
        """True (and the proving bits added to mask) if a prefix field rules
        the whole subtable out; the narrowest proof is used."""
        proof = None
        for name, pset in st.prefixes:
            value = packet.get(name)
            if value is None:
                return False
            bits = pset.miss_mask(value)
            if bits is not None and (proof is None or bits < proof[1]):
                proof = (name, bits)
        if proof is None:
            return False
        mask[proof[0]] = mask.get(proof[0], 0) | proof[1]
        return True

    @staticmethod
    def _staged(st, packet, mask):
        key = ()
        last = len(st.stages) - 1
        for i, (pairs, cumulative) in enumerate(st.stages):
            try:
                key += tuple([packet[name] & bits for name, bits in pairs])
            except KeyError:      # the packet lacks a field: no rule here matches
                _or_mask(mask, cumulative)
                return None
            if i < last and hash(key) not in st.stage_sets[i]:
                _or_mask(mask, cumulative)
                return None
        _or_mask(mask, st.stages[-1][1])
        return st.buckets.get(key)
