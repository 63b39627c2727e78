"""An OF1.3 rule's instructions as an OF1.0 action list (flow stats to an
OpenFlow 1.0 controller, e.g. `ovs-ofctl -O OpenFlow10 dump-flows`).

Design note.  OF1.0 has only an action list, so a bridge whose rules use
OF1.3 instructions cannot be dumped in plain OF1.0.  OVS answers with its
Nicira extensions (checked with a private OVS 3.1): goto_table becomes
resubmit(,TABLE) (NXAST_RESUBMIT_TABLE, in_port IN_PORT), write_metadata
NXAST_WRITE_METADATA; write_actions, clear_actions, meter and the
OF1.3 actions OF1.0 cannot express (push_vlan: implied by a set-vlan there;
MPLS, PBB, TTL copies, groups) are left out.  The only change from OVS's
order: write_metadata goes last (OVS puts it before the resubmit, which its
own ovs-ofctl then refuses to decode: "apply_actions must appear before
write_metadata"), and a set-field of a field OF1.0 has no action for is one
NXAST_REG_LOAD2 (an OXM TLV; ovs-ofctl prints it as set_field) where OVS
sends NXAST_REG_LOAD pieces of at most 64 bits ("load:...->NXM_...").  Used for replies only; a flow-mod in OF1.0 still gets
BAD_TYPE for what it cannot carry.
"""
import struct

from .actions import ACTION_CODECS, OF10_FIELD_ALIASES, SPECS_10, SetField
from .errors import OFPError
from .instructions import ApplyActions, GotoTable, WriteMetadata
from .oxm import FIELDS, oxm_header

NX_VENDOR_ID = 0x00002320
OFPAT10_VENDOR = 0xFFFF
NXAST_RESUBMIT_TABLE = 14
NXAST_WRITE_METADATA = 22
NXAST_REG_LOAD2 = 33
OFPP10_IN_PORT = 0xFFF8
NX_HEADER = struct.Struct("!HHIH")          # type, len, vendor, subtype
NX_RESUBMIT = struct.Struct("!HHIHHB3x")    # ... in_port, table
NX_WRITE_METADATA = struct.Struct("!HHIH6xQQ")
ACTION_ALIGN = 8
OF10_SET_FIELDS = {s.field for s in SPECS_10 if s.field} | set(OF10_FIELD_ALIASES)


def _reg_load2(action):
    field = FIELDS[action.field]
    oxm = oxm_header(field, False).to_bytes(4, "big") + action.value.to_bytes(field.size, "big")
    length = NX_HEADER.size + len(oxm)
    length += -length % ACTION_ALIGN
    body = NX_HEADER.pack(OFPAT10_VENDOR, length, NX_VENDOR_ID, NXAST_REG_LOAD2) + oxm
    return body + bytes(length - len(body))


def _action(action):
    """One OF1.3 action as OF1.0 bytes, or b"" if OF1.0 cannot carry it."""
    if isinstance(action, SetField) and action.field not in OF10_SET_FIELDS:
        return _reg_load2(action) if action.field in FIELDS else b""
    try:
        return ACTION_CODECS[1].encode_one(action)
    except OFPError:
        return b""


def encode_of10_program(instructions):
    out, tail = [], []
    for inst in instructions:
        if isinstance(inst, ApplyActions):
            out += [_action(a) for a in inst.actions]
        elif isinstance(inst, GotoTable):
            out.append(NX_RESUBMIT.pack(OFPAT10_VENDOR, NX_RESUBMIT.size, NX_VENDOR_ID,
                                        NXAST_RESUBMIT_TABLE, OFPP10_IN_PORT, inst.table_id))
        elif isinstance(inst, WriteMetadata):
            tail.append(NX_WRITE_METADATA.pack(OFPAT10_VENDOR, NX_WRITE_METADATA.size, NX_VENDOR_ID,
                                               NXAST_WRITE_METADATA, inst.metadata, inst.mask))
    return b"".join(out + tail)
