"""802.1ag Continuity Check Message wire format (IEEE 802.1Q-2011 21.6).

Frame: [802.1Q tag] EtherType 0x8902, then the CFM header (MD level 3 bits,
version 5 bits, OpCode 1, Flags: RDI bit 7 and CCM interval bits 0-2, First
TLV Offset 70), Sequence Number, MEPID (13 bits), the 48-octet MAID, 16
octets reserved for ITU-T Y.1731, TLVs, End TLV: 75 octets without optional
TLVs. The MAID is an MD name (format none, DNS-like, MAC+integer or
character string) followed by a short MA name (VID, character string,
integer, RFC 2685 VPN ID, or Y.1731 ICC), zero padded.

Open vSwitch's "extended" mode borrows the Y.1731 octets: a 16-bit interval
in ms (when the interval code is 0), a 64-bit MPID and an opdown flag, and
sends to 01:23:20:00:00:30; decoding always exposes those fields.
"""
import struct
from dataclasses import dataclass, field

from vswitch.proto import MalformedFrame

ETH_TYPE_CFM = 0x8902
ETH_TYPE_VLAN = 0x8100
OPCODE_CCM = 1
FIRST_TLV_OFFSET = 70
MAID_LEN = 48
CCM_LEN = 75             # header to End TLV, no optional TLVs
CCM_ACCEPT_LEN = 74      # old Open vSwitch omitted the End TLV
RDI = 0x80
CCM_GROUP_BASE = bytes.fromhex("0180c2000030")     # + MD level (class 1)
OVS_EXTENDED_GROUP = bytes.fromhex("012320000030")

# CCM interval field (802.1Q Table 21-15), seconds.
INTERVALS = {1: 1 / 300, 2: 0.01, 3: 0.1, 4: 1.0, 5: 10.0, 6: 60.0, 7: 600.0}

MD_FORMATS = {"none": 1, "dns": 2, "mac-int": 3, "string": 4}
MA_FORMATS = {"vid": 1, "string": 2, "uint16": 3, "vpn-id": 4, "icc": 32}
_MD_NAMES = {v: k for k, v in MD_FORMATS.items()}
_MA_NAMES = {v: k for k, v in MA_FORMATS.items()}
_MA_FIXED_LEN = {"vid": 2, "uint16": 2, "vpn-id": 7, "icc": 13}

# TLVs a CCM may carry (802.1Q 21.5).
TLV_END, TLV_SENDER_ID, TLV_PORT_STATUS, TLV_INTERFACE_STATUS = 0, 1, 2, 4


def interval_code(ms: float) -> int:
    """The largest standard interval not above `ms` (as Open vSwitch picks)."""
    for code in sorted(INTERVALS, reverse=True):
        if INTERVALS[code] * 1000 <= ms + 1e-9:
            return code
    return 1


def interval_text(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"


def ccm_group(level: int) -> bytes:
    return CCM_GROUP_BASE[:5] + bytes([0x30 + level])


# -- MAID ----------------------------------------------------------------------

@dataclass(frozen=True)
class Maid:
    md_format: str = "string"
    md_name: str = "ovs"
    ma_format: str = "string"
    ma_name: str | int = "ovs"

    def encode(self) -> bytes:
        if self.md_format not in MD_FORMATS or self.ma_format not in MA_FORMATS:
            raise ValueError(f"unknown MAID format {self.md_format}/{self.ma_format}")
        md = _encode_md(self.md_format, self.md_name)
        ma = _encode_ma(self.ma_format, self.ma_name)
        out = bytes([MD_FORMATS[self.md_format]])
        if self.md_format != "none":
            out += bytes([len(md)]) + md
        out += bytes([MA_FORMATS[self.ma_format], len(ma)]) + ma
        if len(out) > MAID_LEN or (self.md_format != "none" and not md) or not ma:
            raise ValueError("MD and MA names do not fit the 48-octet MAID")
        return out.ljust(MAID_LEN, b"\0")

    @classmethod
    def decode(cls, raw: bytes) -> "Maid":
        try:
            md_format = _MD_NAMES[raw[0]]
            pos, md_name = 1, ""
            if md_format != "none":
                md_len = raw[1]
                if not 1 <= md_len <= 43:
                    raise MalformedFrame("bad-maid", f"MD name length {md_len}")
                md_name = _decode_md(md_format, raw[2:2 + md_len])
                pos = 2 + md_len
            ma_format = _MA_NAMES[raw[pos]]
            ma_len = raw[pos + 1]
            ma_raw = raw[pos + 2:pos + 2 + ma_len]
            if not ma_len or len(ma_raw) != ma_len or any(raw[pos + 2 + ma_len:]):
                raise MalformedFrame("bad-maid", "MA name length or padding")
            return cls(md_format, md_name, ma_format, _decode_ma(ma_format, ma_raw))
        except (KeyError, IndexError, ValueError, UnicodeDecodeError) as e:
            raise MalformedFrame("bad-maid", str(e)) from None

    def text(self) -> str:
        return f"{self.md_format}:{self.md_name}/{self.ma_format}:{self.ma_name}"


def _encode_md(fmt: str, name) -> bytes:
    if fmt == "none":
        return b""
    if fmt == "mac-int":            # "aa:bb:cc:dd:ee:ff:42"
        mac, _, number = str(name).rpartition(":")
        return bytes.fromhex(mac.replace(":", "")) + struct.pack("!H", int(number))
    return str(name).encode("ascii")


def _decode_md(fmt: str, raw: bytes) -> str:
    if fmt == "mac-int":
        if len(raw) != 8:
            raise ValueError("MAC+integer MD name must be 8 octets")
        return ":".join(f"{b:02x}" for b in raw[:6]) + f":{struct.unpack('!H', raw[6:])[0]}"
    return raw.decode("ascii")


def _encode_ma(fmt: str, name) -> bytes:
    if fmt in ("vid", "uint16"):
        limit = 4094 if fmt == "vid" else 65535
        if not 0 <= int(name) <= limit:
            raise ValueError(f"{fmt} MA name {name} out of range 0-{limit}")
        raw = struct.pack("!H", int(name))
    elif fmt == "vpn-id":           # 14 hex digits: 3-octet OUI + 4-octet index
        raw = bytes.fromhex(str(name).replace(":", ""))
    else:
        raw = str(name).encode("ascii")
    if fmt in _MA_FIXED_LEN and len(raw) != _MA_FIXED_LEN[fmt]:
        raise ValueError(f"{fmt} MA name must be {_MA_FIXED_LEN[fmt]} octets")
    return raw


def _decode_ma(fmt: str, raw: bytes):
    if fmt in _MA_FIXED_LEN and len(raw) != _MA_FIXED_LEN[fmt]:
        raise ValueError(f"{fmt} MA name of {len(raw)} octets")
    if fmt in ("vid", "uint16"):
        return struct.unpack("!H", raw)[0]
    if fmt == "vpn-id":
        return raw.hex()
    return raw.decode("ascii")


# -- CCM -------------------------------------------------------------------------

@dataclass(frozen=True)
class Ccm:
    mpid: int
    seq: int
    interval: int                    # the 3-bit code
    maid: bytes                      # the raw 48 octets (compared as such)
    level: int = 0
    rdi: bool = False
    version: int = 0
    interval_ms_x: int = 0           # Open vSwitch extended-mode fields
    mpid64: int = 0
    opdown: bool = False
    port_status: int | None = None   # TLV values, when present
    interface_status: int | None = None
    vlan: int | None = None
    src: bytes = bytes(6)
    dst: bytes = bytes(6)
    other_tlvs: tuple = field(default=())


def encode(ccm: Ccm, src_mac: bytes, dst: bytes | None = None,
           vlan: int | None = None, pcp: int = 0) -> bytes:
    """The Ethernet frame (no FCS) carrying `ccm`."""
    dst = dst or ccm_group(ccm.level)
    tag = b""
    if vlan is not None or pcp:
        tag = struct.pack("!HH", ETH_TYPE_VLAN, (pcp << 13) | ((vlan or 0) & 0xfff))
    body = struct.pack("!BBBBIH", (ccm.level << 5) | ccm.version, OPCODE_CCM,
                       (RDI if ccm.rdi else 0) | ccm.interval, FIRST_TLV_OFFSET,
                       ccm.seq, ccm.mpid & 0x1fff) + ccm.maid
    body += struct.pack("!HQB5x", ccm.interval_ms_x, ccm.mpid64, int(ccm.opdown))
    if ccm.port_status is not None:
        body += struct.pack("!BHB", TLV_PORT_STATUS, 1, ccm.port_status)
    if ccm.interface_status is not None:
        body += struct.pack("!BHB", TLV_INTERFACE_STATUS, 1, ccm.interface_status)
    body += bytes([TLV_END])
    return dst + src_mac + tag + struct.pack("!H", ETH_TYPE_CFM) + body


def is_cfm(frame: bytes) -> bool:
    """Cheap demultiplexing test: CFM EtherType, tagged or not."""
    return frame[12:14] == b"\x89\x02" or (
        frame[12:14] == b"\x81\x00" and frame[16:18] == b"\x89\x02")


def decode(frame: bytes) -> Ccm:
    """Parse an Ethernet frame carrying a CCM; raise MalformedFrame(reason)."""
    vlan, pos = None, 12
    if frame[12:14] == b"\x81\x00" and len(frame) >= 18:
        vlan = struct.unpack("!H", frame[14:16])[0] & 0xfff
        pos = 16
    if frame[pos:pos + 2] != b"\x89\x02":
        raise MalformedFrame("not-cfm")
    body = frame[pos + 2:]
    if len(body) < 4:
        raise MalformedFrame("short-pdu", f"{len(body)} octets")
    level, version = body[0] >> 5, body[0] & 0x1f
    if body[1] != OPCODE_CCM:
        raise MalformedFrame("not-ccm", f"opcode {body[1]}")
    if version != 0:
        raise MalformedFrame("bad-version", str(version))
    if body[3] != FIRST_TLV_OFFSET:
        raise MalformedFrame("bad-tlv-offset", str(body[3]))
    if len(body) < CCM_ACCEPT_LEN:
        raise MalformedFrame("short-pdu", f"{len(body)} octets")
    flags = body[2]
    seq, mpid = struct.unpack("!IH", body[4:10])
    maid = bytes(body[10:58])
    ms_x, mpid64, opdown = struct.unpack("!HQB", body[58:69])
    tlvs = _decode_tlvs(body[4 + FIRST_TLV_OFFSET:])
    return Ccm(mpid=mpid & 0x1fff, seq=seq, interval=flags & 0x07, maid=maid,
               level=level, rdi=bool(flags & RDI), version=version,
               interval_ms_x=ms_x, mpid64=mpid64, opdown=bool(opdown),
               port_status=_one_octet(tlvs.get(TLV_PORT_STATUS)),
               interface_status=_one_octet(tlvs.get(TLV_INTERFACE_STATUS)),
               vlan=vlan, src=bytes(frame[6:12]), dst=bytes(frame[:6]),
               other_tlvs=tuple(sorted(t for t in tlvs if t not in (
                   TLV_PORT_STATUS, TLV_INTERFACE_STATUS))))


def _decode_tlvs(data: bytes) -> dict:
    """TLVs up to the End TLV; trailing Ethernet padding is ignored."""
    tlvs, pos = {}, 0
    while pos < len(data):
        kind = data[pos]
        if kind == TLV_END:
            return tlvs
        if pos + 3 > len(data):
            raise MalformedFrame("bad-tlv", f"truncated TLV header type {kind}")
        (length,) = struct.unpack("!H", data[pos + 1:pos + 3])
        if pos + 3 + length > len(data):
            raise MalformedFrame("bad-tlv", f"TLV type {kind} overruns the frame")
        tlvs[kind] = bytes(data[pos + 3:pos + 3 + length])
        pos += 3 + length
    return tlvs                      # 74-octet CCM without End TLV


def _one_octet(value: bytes | None) -> int | None:
    if value is None:
        return None
    if len(value) != 1:
        raise MalformedFrame("bad-tlv", "status TLV length")
    return value[0]
