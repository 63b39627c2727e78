"""Numbers shared by both versions, in the internal (OF1.3, 32-bit) numbering.

Ports are always 32-bit inside vswitch; the OF1.0 codec maps its 16-bit
reserved ports (0xfff8..0xffff) onto these with `port_from_of10`/`port_to_of10`.
"""
from .errors import OFPError

OFP_VERSION_10 = 1
OFP_VERSION_13 = 4
VERSIONS = (OFP_VERSION_10, OFP_VERSION_13)

# Reserved ports (OF1.3 section 7.2.1)
OFPP_MAX = 0xFFFFFF00
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_FLOOD = 0xFFFFFFFB
OFPP_ALL = 0xFFFFFFFC
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF           # OF1.0 calls it OFPP_NONE (0xffff)
RESERVED_PORTS = {
    "in_port": OFPP_IN_PORT, "table": OFPP_TABLE, "normal": OFPP_NORMAL,
    "flood": OFPP_FLOOD, "all": OFPP_ALL, "controller": OFPP_CONTROLLER,
    "local": OFPP_LOCAL, "any": OFPP_ANY,
}
OF10_PORT_MAX = 0xFF00
OF10_RESERVED_BASE = 0xFFFF0000  # internal = of10 + base for of10 >= 0xff00

# Port config bits (OF1.3 section 7.2.1 ofp_port_config; OF1.0 also has
# NO_STP, NO_RECV_STP and NO_FLOOD)
OFPPC_PORT_DOWN = 1 << 0
OFPPC_NO_RECV = 1 << 2
OFPPC_NO_FLOOD = 1 << 4     # OF1.0
OFPPC_NO_FWD = 1 << 5
OFPPC_NO_PACKET_IN = 1 << 6

OFPG_MAX = 0xFFFFFF00
OFPG_ALL = 0xFFFFFFFC
OFPG_ANY = 0xFFFFFFFF
OFPM_MAX = 0xFFFF0000
OFPM_SLOWPATH = 0xFFFFFFFD
OFPM_CONTROLLER = 0xFFFFFFFE
OFPM_ALL = 0xFFFFFFFF
OFPQ_ALL = 0xFFFFFFFF
OFP_NO_BUFFER = 0xFFFFFFFF
OFPCML_NO_BUFFER = 0xFFFF
OFPTT_ALL = 0xFF
OFPTT_MAX = 0xFE

# flow-mod
OFPFC_ADD, OFPFC_MODIFY, OFPFC_MODIFY_STRICT, OFPFC_DELETE, OFPFC_DELETE_STRICT = range(5)
OFPFF_SEND_FLOW_REM = 1 << 0
OFPFF_CHECK_OVERLAP = 1 << 1
OFPFF_RESET_COUNTS = 1 << 2   # OF1.3 (OF1.0 bit 2 is EMERG)
OFPFF_NO_PKT_COUNTS = 1 << 3
OFPFF_NO_BYT_COUNTS = 1 << 4
# flow-removed reasons
OFPRR_IDLE_TIMEOUT, OFPRR_HARD_TIMEOUT, OFPRR_DELETE, OFPRR_GROUP_DELETE = range(4)
# OF1.4's, which OVS sends in every version (a connection gets them only if
# its async config asks: OVS's defaults for OF1.0 and OF1.3 do not)
OFPRR_METER_DELETE, OFPRR_EVICTION = 4, 5
# packet-in reasons
OFPR_NO_MATCH, OFPR_ACTION, OFPR_INVALID_TTL = range(3)
# port-status reasons
OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY = range(3)
# group-mod
OFPGC_ADD, OFPGC_MODIFY, OFPGC_DELETE = range(3)
OFPGT_ALL, OFPGT_SELECT, OFPGT_INDIRECT, OFPGT_FF = range(4)
# meter-mod
OFPMC_ADD, OFPMC_MODIFY, OFPMC_DELETE = range(3)
OFPMF_KBPS, OFPMF_PKTPS, OFPMF_BURST, OFPMF_STATS = 1, 2, 4, 8
OFPMBT_DROP, OFPMBT_DSCP_REMARK, OFPMBT_EXPERIMENTER = 1, 2, 0xFFFF
# roles
OFPCR_ROLE_NOCHANGE, OFPCR_ROLE_EQUAL, OFPCR_ROLE_MASTER, OFPCR_ROLE_SLAVE = range(4)
# switch config flags
OFPC_FRAG_NORMAL, OFPC_FRAG_DROP, OFPC_FRAG_REASM, OFPC_FRAG_MASK = 0, 1, 2, 3


def port_from_of10(port):
    return port + OF10_RESERVED_BASE if port >= OF10_PORT_MAX else port


def port_to_of10(port, error=("BAD_ACTION", "BAD_OUT_PORT")):
    if port >= OFPP_MAX:
        return port - OF10_RESERVED_BASE
    if port >= OF10_PORT_MAX:
        raise OFPError(*error, detail=f"port {port} does not fit OpenFlow 1.0")
    return port
