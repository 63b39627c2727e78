"""What makes a revalidator round cheap without changing what it does
(issue 16): a report's key and mask are decoded from its dump record only
when a feature reads them, and only features that read reports are called;
whether a bridge has OpenFlow rules is a count kept by the tables' inserts
and removes, not a walk of its 254 tables."""
import pytest
from helpers.fake_datapath import Clock, FakeDatapath, configure

from vswitch.bridge.feature import MegaflowDelta
from vswitch.datapath import flowkey
from vswitch.ofproto.ofp import Match
from vswitch.ofproto.ofp.constants import OFPFC_ADD, OFPFC_DELETE
from vswitch.ofproto.ofp.messages import FlowMod
from vswitch.ofproto.ofswitch import OFSwitch
from vswitch.switch import Switch

KEY = {"in_port": 1, "dl_type": 0x0800, "nw_src": 0x0A000001, "nw_dst": 0x0A000002, "nw_proto": 17}
MASK = {name: flowkey.full_mask(name) for name in KEY}
TABLES_USED = (0, 3, 200)


class CountingRecord:
    """A dump record that counts how often its key and mask are decoded."""

    def __init__(self):
        self.reads = 0

    @property
    def key(self):
        self.reads += 1
        return flowkey.unpack(flowkey.pack(KEY))

    @property
    def mask(self):
        self.reads += 1
        return flowkey.unpack(flowkey.pack(MASK))


def delta_of(record, tags=frozenset()):
    return MegaflowDelta(None, None, set(tags), 3, 300, 0, 1.0, 2.0, record=record)


def test_delta_decodes_its_record_at_the_first_read_only():
    record = CountingRecord()
    delta = delta_of(record)
    assert record.reads == 0
    assert delta.key == flowkey.unpack(flowkey.pack(KEY)) and delta.key["nw_src"] == KEY["nw_src"]
    assert delta.mask["nw_proto"] == 0xFF
    assert record.reads == 2           # key once, mask once, however often read
    given = MegaflowDelta(KEY, MASK, set(), 1, 60, 0, 1.0, 1.0)
    assert given.key is KEY and given.mask is MASK


@pytest.fixture
def sw():
    switch = Switch(FakeDatapath(), clock=Clock())
    configure(switch, ["add-br", "br0"], ["add-port", "br0", "p1"], ["add-port", "br0", "p2"])
    yield switch
    switch.close()


def test_reports_decode_nothing_unless_a_feature_reads_the_key(sw):
    bridge = sw.bridges["br0"]
    record = CountingRecord()
    bridge.flow_stats(delta_of(record), sw.clock())
    assert record.reads == 0           # bonds and mirrors read tags and counters only
    assert {type(f).__name__ for f in bridge._stats_readers} == {"BondFeature", "NetflowFeature",
                                                                  "MirrorFeature"}
    configure(sw, ["--id=@n", "create", "NetFlow", 'targets="127.0.0.1:9"'],
              ["set", "Bridge", "br0", "netflow=@n"])
    bridge = sw.bridges["br0"]
    bridge.flow_stats(delta_of(record), sw.clock())
    assert record.reads == 1           # NetFlow keys its records by the 5-tuple


def flow_mod(command, table_id):
    return FlowMod(command=command, table_id=table_id, match=Match(), priority=0, instructions=[])


class Host:
    def flush_bridge(self, name):
        pass


def test_rule_count_follows_adds_and_deletes_in_every_table():
    ofs = OFSwitch("br0", Host())
    tables = ofs.tables
    assert ofs.mode() == "normal" and tables.rule_count.n == 0
    for table_id in TABLES_USED:
        ofs.flow_mod(flow_mod(OFPFC_ADD, table_id), 1.0)
    assert tables.rule_count.n == sum(len(t) for t in tables.tables) == len(TABLES_USED)
    assert ofs.mode() == "openflow"
    ofs.flow_mod(flow_mod(OFPFC_DELETE, TABLES_USED[0]), 2.0)
    assert tables.rule_count.n == len(TABLES_USED) - 1 and ofs.mode() == "openflow"
    ofs.flow_mod(flow_mod(OFPFC_DELETE, 0xFF), 3.0)   # OFPTT_ALL
    assert tables.rule_count.n == 0 and ofs.mode() == "normal"
