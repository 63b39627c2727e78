"""OpenFlow messages as version-independent dataclasses.

Every message carries `version` (1 or 4) and `xid`.  Fields use the internal
numbering (32-bit ports, OF1.3 names); the version codecs convert.  OF1.0
flow-mods carry their action list as [ApplyActions(actions)] and their
packet-in's in_port as match {"in_port"}.
"""
from dataclasses import dataclass, field

from .constants import OFP_NO_BUFFER, OFPG_ANY, OFPP_ANY
from .oxm import Match


@dataclass(kw_only=True)
class Message:
    version: int = 4
    xid: int = 0


@dataclass
class Hello(Message):
    versions: tuple = None   # the version bitmap element, None if absent


@dataclass
class Error(Message):
    type: int
    code: int
    data: bytes = b""
    experimenter: int = None  # OFPET_EXPERIMENTER: code is exp_type


@dataclass
class EchoRequest(Message):
    data: bytes = b""


@dataclass
class EchoReply(Message):
    data: bytes = b""


@dataclass
class ExperimenterMsg(Message):
    experimenter: int
    exp_type: int = 0         # absent in OF1.0 vendor messages
    data: bytes = b""


@dataclass
class FeaturesRequest(Message):
    pass


@dataclass
class Port:
    port_no: int
    hw_addr: int = 0
    name: str = ""
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0       # kbps, OF1.3 only
    max_speed: int = 0


@dataclass
class FeaturesReply(Message):
    datapath_id: int
    n_buffers: int = 0
    n_tables: int = 254
    auxiliary_id: int = 0     # OF1.3
    capabilities: int = 0
    actions: int = 0          # OF1.0: supported action bitmap
    ports: list = field(default_factory=list)  # OF1.0 only


@dataclass
class GetConfigRequest(Message):
    pass


@dataclass
class GetConfigReply(Message):
    flags: int = 0
    miss_send_len: int = 128


@dataclass
class SetConfig(Message):
    flags: int = 0
    miss_send_len: int = 128


@dataclass
class PacketIn(Message):
    buffer_id: int = OFP_NO_BUFFER
    total_len: int = 0
    reason: int = 0
    table_id: int = 0
    cookie: int = 0
    match: Match = field(default_factory=Match)
    data: bytes = b""


@dataclass
class FlowRemoved(Message):
    cookie: int = 0
    priority: int = 0
    reason: int = 0
    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    packet_count: int = 0
    byte_count: int = 0
    match: Match = field(default_factory=Match)


@dataclass
class PortStatus(Message):
    reason: int
    port: Port


@dataclass
class PacketOut(Message):
    buffer_id: int = OFP_NO_BUFFER
    in_port: int = 0
    actions: list = field(default_factory=list)
    data: bytes = b""


@dataclass
class FlowMod(Message):
    cookie: int = 0
    cookie_mask: int = 0
    table_id: int = 0
    command: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = 0x8000
    buffer_id: int = OFP_NO_BUFFER
    out_port: int = OFPP_ANY
    out_group: int = OFPG_ANY
    flags: int = 0
    match: Match = field(default_factory=Match)
    instructions: list = field(default_factory=list)


@dataclass
class Bucket:
    weight: int = 0
    watch_port: int = OFPP_ANY
    watch_group: int = OFPG_ANY
    actions: list = field(default_factory=list)


@dataclass
class GroupMod(Message):
    command: int
    type: int
    group_id: int
    buckets: list = field(default_factory=list)


@dataclass
class PortMod(Message):
    port_no: int
    hw_addr: int = 0
    config: int = 0
    mask: int = 0
    advertise: int = 0


@dataclass
class TableMod(Message):
    table_id: int
    config: int = 0


@dataclass
class MeterBand:
    type: int = 1             # OFPMBT_DROP
    rate: int = 0
    burst_size: int = 0
    prec_level: int = 0       # dscp-remark
    experimenter: int = 0     # experimenter band


@dataclass
class MeterMod(Message):
    command: int
    flags: int
    meter_id: int
    bands: list = field(default_factory=list)


@dataclass
class MultipartRequest(Message):
    type: int
    flags: int = 0
    body: object = None       # see multipart.py for the body of each type


@dataclass
class MultipartReply(Message):
    type: int
    flags: int = 0
    body: object = None


@dataclass
class BarrierRequest(Message):
    pass


@dataclass
class BarrierReply(Message):
    pass


@dataclass
class QueueGetConfigRequest(Message):
    port: int


@dataclass
class QueueGetConfigReply(Message):
    port: int
    queues: bytes = b""       # raw ofp_packet_queue list (vswitch has no queues)


@dataclass
class RoleRequest(Message):
    role: int
    generation_id: int = 0


@dataclass
class RoleReply(Message):
    role: int
    generation_id: int = 0


@dataclass
class GetAsyncRequest(Message):
    pass


@dataclass
class GetAsyncReply(Message):
    """Each mask is (master/equal mask, slave mask)."""
    packet_in_mask: tuple = (0, 0)
    port_status_mask: tuple = (0, 0)
    flow_removed_mask: tuple = (0, 0)


@dataclass
class SetAsync(Message):
    packet_in_mask: tuple = (0, 0)
    port_status_mask: tuple = (0, 0)
    flow_removed_mask: tuple = (0, 0)


__all__ = [n for n, v in list(globals().items()) if isinstance(v, type) and v.__module__ == __name__]
