"""OpenFlow meters as datapath meters: which datapath meter a bridge's meter
is, configured as the meter table says, and its counters.

Design note.  xlate asks for the datapath meter of an OpenFlow meter when a
flow passes it (PipelineView.dp_meter) and emits ("meter", id): the megaflow
is cached and the C datapath meters every packet (csrc/meter.h).  A meter_mod
replaces the bridge's MeterEntry object and flushes the bridge's megaflows,
so the next translation sees an entry it has not configured and configures
the datapath meter afresh (full buckets, counters 0, as a new meter).  A
deleted meter's datapath meter is released at the next sync of that bridge.
Counters: the datapath's, for meters configured here.  Used from the switch's
upcall thread only (no lock of its own).
"""
from vswitch.datapath import dp_meters
from vswitch.ofproto.ofp.constants import OFPMBT_DSCP_REMARK, OFPMF_BURST, OFPMF_PKTPS

BAND_TYPES = {OFPMBT_DSCP_REMARK: dp_meters.BAND_DSCP_REMARK}


def _bands(entry):
    burst = bool(entry.flags & OFPMF_BURST)
    return [(BAND_TYPES.get(b.type, dp_meters.BAND_DROP), b.rate, b.burst_size if burst else 0,
             b.prec_level) for b in entry.bands]


class DatapathMeters:
    def __init__(self):
        self.by_meter = {}   # (bridge, OpenFlow meter id) -> (datapath meter id, MeterEntry)

    def dp_id(self, bridge, table, meter_id):
        """The datapath meter for `bridge`'s meter `meter_id` (in MeterTable
        `table`), configured from its current entry."""
        entry = table.meters[meter_id]
        known = self.by_meter.get((bridge, meter_id))
        if known is not None and known[1] is entry:
            return known[0]
        self.release_deleted(bridge, table)
        dp_id = known[0] if known is not None else dp_meters.allocate()
        dp_meters.configure(dp_id, bool(entry.flags & OFPMF_PKTPS), _bands(entry))
        self.by_meter[(bridge, meter_id)] = (dp_id, entry)
        return dp_id

    def release_deleted(self, bridge, table):
        for (br, mid), (dp_id, entry) in list(self.by_meter.items()):
            if br == bridge and mid not in table.meters:
                del self.by_meter[(br, mid)]
                dp_meters.release(dp_id)

    def release_bridge(self, bridge):
        for (br, mid), (dp_id, _) in list(self.by_meter.items()):
            if br == bridge:
                del self.by_meter[(br, mid)]
                dp_meters.release(dp_id)

    def stats(self, bridge, entry):
        """(packets, bytes, [(packets, bytes)] per band) the datapath counted
        for `entry`, or None if it never reached the datapath."""
        known = self.by_meter.get((bridge, entry.meter_id))
        if known is None or known[1] is not entry:
            return None
        return dp_meters.stats(known[0])
