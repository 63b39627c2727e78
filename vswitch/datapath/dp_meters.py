"""Datapath meters (csrc/meter.h): process-wide ids, configuration, counters.

The C meter table is one array for the process (so a poll thread never sees a
meter move); this module hands out its ids, so that every bridge and every
Datapath object of the process gets its own.  VS_ACTION_METER ("meter", id)
in a megaflow's actions runs a packet through meter `id`.
"""
import threading

from ._datapath import ffi, lib

MAX_METERS = lib.VS_MAX_METERS
MAX_BANDS = lib.VS_METER_MAX_BANDS
BAND_DROP = lib.VS_METER_BAND_DROP
BAND_DSCP_REMARK = lib.VS_METER_BAND_DSCP_REMARK
F_PKTPS = lib.VS_METER_F_PKTPS

_lock = threading.Lock()   # guards _free and _next
_free = []
_next = 1                  # id 0 is never handed out: a zeroed action is no meter


def allocate():
    """A meter id no one else in this process uses; RuntimeError when all are taken."""
    global _next
    with _lock:
        if _free:
            return _free.pop()
        if _next >= MAX_METERS:
            raise RuntimeError(f"all {MAX_METERS - 1} datapath meters are in use")
        _next += 1
        return _next - 1


def release(meter_id):
    lib.vs_meter_del(meter_id)
    with _lock:
        _free.append(meter_id)


def configure(meter_id, pktps, bands):
    """bands: [(type, rate, burst, prec_level)], burst 0 = one second of rate.
    Buckets start full, counters at 0."""
    if not 0 < len(bands) <= MAX_BANDS:
        raise ValueError(f"a meter has 1..{MAX_BANDS} bands, not {len(bands)}")
    cbands = ffi.new("struct vs_meter_band_config[]", [
        {"type": t, "rate": r, "burst": b, "prec_level": p} for t, r, b, p in bands])
    if lib.vs_meter_set(meter_id, F_PKTPS if pktps else 0, cbands, len(bands)) < 0:
        raise ValueError(f"datapath meter {meter_id}: bad bands {bands!r}")


def stats(meter_id):
    """(packets, bytes, [(band packets, band bytes)]) or None if not configured."""
    out = ffi.new("struct vs_meter_stats *")
    if lib.vs_meter_get_stats(meter_id, out) < 0:
        return None
    return out.packets, out.bytes, [(out.band_packets[i], out.band_bytes[i]) for i in range(out.n_bands)]
