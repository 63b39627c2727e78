"""LACPDU wire format (IEEE 802.1AX-2008 clause 5.4.2 / 802.3ad 43.4.2).

A LACPDU is a Slow Protocols frame (EtherType 0x8809, subtype 1) sent to
01:80:c2:00:00:02: version 1, Actor TLV (type 1, length 20), Partner TLV
(type 2, length 20), Collector TLV (type 3, length 16), Terminator (0, 0) and
50 reserved octets: 110 octets after the EtherType. Decoding validates every
fixed field and raises `MalformedFrame` with a short reason; version > 1 is
accepted as the standard asks (fields are read by position).
"""
import struct
from dataclasses import dataclass

from vswitch.proto import MalformedFrame

SLOW_PROTOCOLS_MAC = bytes.fromhex("0180c2000002")
ETH_TYPE_SLOW = 0x8809
SUBTYPE_LACP = 1
PDU_LEN = 110            # from subtype through the reserved tail
MIN_FRAME = 14 + PDU_LEN

# Port state bits (802.1AX 5.4.2.2 item m).
ACTIVITY = 0x01
TIMEOUT = 0x02           # set = short timeout (fast rate)
AGGREGATION = 0x04
SYNCHRONIZATION = 0x08
COLLECTING = 0x10
DISTRIBUTING = 0x20
DEFAULTED = 0x40
EXPIRED = 0x80

STATE_NAMES = (          # the order and words of ovs-appctl lacp/show
    (ACTIVITY, "activity"), (TIMEOUT, "timeout"),
    (AGGREGATION, "aggregation"), (SYNCHRONIZATION, "synchronized"),
    (COLLECTING, "collecting"), (DISTRIBUTING, "distributing"),
    (DEFAULTED, "defaulted"), (EXPIRED, "expired"),
)


def state_words(state: int) -> list[str]:
    return [word for bit, word in STATE_NAMES if state & bit]


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        mac = text
    else:
        mac = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(mac) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return mac


@dataclass(frozen=True)
class PortInfo:
    """One side's information as carried in the Actor or Partner TLV."""
    system_priority: int = 0
    system: bytes = bytes(6)
    key: int = 0
    port_priority: int = 0
    port: int = 0
    state: int = 0

    _FMT = struct.Struct("!H6sHHHB3x")

    def pack(self) -> bytes:
        return self._FMT.pack(self.system_priority, self.system, self.key,
                              self.port_priority, self.port, self.state)

    @classmethod
    def unpack(cls, data: bytes) -> "PortInfo":
        return cls(*cls._FMT.unpack(data))

    def same_identity(self, other: "PortInfo") -> bool:
        """Equal in everything but the state octet."""
        return (self.system_priority, self.system, self.key, self.port_priority,
                self.port) == (other.system_priority, other.system, other.key,
                               other.port_priority, other.port)

    def with_state(self, state: int) -> "PortInfo":
        return PortInfo(self.system_priority, self.system, self.key,
                        self.port_priority, self.port, state)


@dataclass(frozen=True)
class Lacpdu:
    actor: PortInfo
    partner: PortInfo
    collector_max_delay: int = 0
    version: int = 1


def encode(pdu: Lacpdu, src_mac: bytes) -> bytes:
    """The whole Ethernet frame (no FCS) carrying `pdu`."""
    body = (struct.pack("!BB", SUBTYPE_LACP, pdu.version)
            + b"\x01\x14" + pdu.actor.pack()
            + b"\x02\x14" + pdu.partner.pack()
            + b"\x03\x10" + struct.pack("!H", pdu.collector_max_delay) + bytes(12)
            + b"\x00\x00" + bytes(50))
    return SLOW_PROTOCOLS_MAC + src_mac + struct.pack("!H", ETH_TYPE_SLOW) + body


def is_lacp(frame: bytes) -> bool:
    """Cheap demultiplexing test: Slow Protocols EtherType, LACP subtype."""
    return (len(frame) >= 15 and frame[12:14] == b"\x88\x09"
            and frame[14] == SUBTYPE_LACP)


def decode(frame: bytes) -> Lacpdu:
    """Parse an Ethernet frame; raise MalformedFrame(reason) if invalid."""
    if len(frame) < 15 or frame[12:14] != b"\x88\x09":
        raise MalformedFrame("not-slow-protocols")
    if frame[14] != SUBTYPE_LACP:
        raise MalformedFrame("not-lacp-subtype", str(frame[14]))
    body = frame[14:]
    if len(body) < PDU_LEN:
        raise MalformedFrame("short-pdu", f"{len(body)} octets after EtherType")
    if frame[:6] != SLOW_PROTOCOLS_MAC:
        raise MalformedFrame("bad-destination", mac_text(frame[:6]))
    version = body[1]
    if version < 1:
        raise MalformedFrame("bad-version", str(version))
    if body[2:4] != b"\x01\x14":
        raise MalformedFrame("bad-actor-tlv", body[2:4].hex())
    if body[22:24] != b"\x02\x14":
        raise MalformedFrame("bad-partner-tlv", body[22:24].hex())
    if version == 1 and body[42:44] != b"\x03\x10":
        raise MalformedFrame("bad-collector-tlv", body[42:44].hex())
    actor = PortInfo.unpack(body[4:22])
    partner = PortInfo.unpack(body[24:42])
    if actor.system == bytes(6):
        raise MalformedFrame("null-actor-system")
    (delay,) = struct.unpack("!H", body[44:46])
    return Lacpdu(actor, partner, delay, version)
