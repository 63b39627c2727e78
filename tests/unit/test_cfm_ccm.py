"""CCM and MAID codec: a frame Open vSwitch 3.1 sent, scapy's OAM dissector
and tshark's CFM dissector as independent decoders."""
import os
import shutil
import subprocess

import pytest
from scapy.contrib.oam import OAM
from scapy.layers.l2 import Ether
from scapy.packet import bind_layers
from scapy.utils import wrpcap

from vswitch.cfm import ccm as C
from vswitch.proto import MalformedFrame

bind_layers(Ether, OAM, type=0x8902)     # scapy binds OAM only under 802.1Q

# Captured with tcpdump from ovs-vswitchd 3.1 (cfm_mpid=1, cfm_interval=100,
# no remote MEP yet so RDI is set), sequence number 7.
OVS_SRC = bytes.fromhex("c2d06b2a516c")
OVS_CCM = bytes.fromhex(
    "0180c2000030" "c2d06b2a516c" "8902"
    "00018346" "00000007" "0001" "04036f7673" "02036f7673") + bytes(38 + 16 + 1)
OVS_MAID = C.Maid("string", "ovs", "string", "ovs").encode()


def test_decodes_what_open_vswitch_sends():
    ccm = C.decode(OVS_CCM)
    assert (ccm.level, ccm.version, ccm.mpid, ccm.seq) == (0, 0, 1, 7)
    assert ccm.rdi and ccm.interval == 3 and C.INTERVALS[3] == 0.1
    assert ccm.maid == OVS_MAID
    assert C.Maid.decode(ccm.maid) == C.Maid()            # our defaults are OVS's
    assert ccm.dst == C.ccm_group(0) and ccm.src == OVS_SRC


def test_encodes_exactly_what_open_vswitch_sends():
    ccm = C.Ccm(mpid=1, seq=7, interval=3, maid=OVS_MAID, rdi=True)
    assert C.encode(ccm, OVS_SRC) == OVS_CCM


def test_scapy_reads_our_ccm():
    maid = C.Maid("none", "", "vid", 100).encode()     # Y.1731 MEG ID layout
    frame = C.encode(C.Ccm(mpid=4095, seq=123456, interval=4, maid=maid, level=5,
                           rdi=True), bytes.fromhex("020000000001"))
    oam = Ether(frame)[OAM]
    assert (oam.mel, oam.version, oam.opcode) == (5, 0, 1)
    assert oam.flags.RDI and oam.period == 4 and oam.tlv_offset == 70
    assert (oam.seq_num, oam.mep_id) == (123456, 4095)
    assert (oam.meg_id.resv, oam.meg_id.format, oam.meg_id.length) == (1, 1, 2)
    assert oam.end_tlv == 0
    assert Ether(frame).dst == "01:80:c2:00:00:35"          # class 1 group + level


def test_we_read_scapys_ccm():
    frame = bytes(Ether(src="02:00:00:00:00:02", dst="01:80:c2:00:00:32")
                  / OAM(opcode=1, mel=2, flags="RDI", period=6, seq_num=99, mep_id=77))
    ccm = C.decode(frame)
    assert (ccm.level, ccm.mpid, ccm.seq, ccm.interval, ccm.rdi) == (2, 77, 99, 6, True)


MAIDS = [
    C.Maid("string", "ovs", "string", "ovs"),
    C.Maid("none", "", "string", "a" * 45),
    C.Maid("dns", "cfm.example.net", "uint16", 4242),
    C.Maid("mac-int", "02:11:22:33:44:55:513", "vid", 4094),
    C.Maid("string", "md", "vpn-id", "00112233445566"),
    C.Maid("string", "md", "icc", "ICC0000000042"),
]


@pytest.mark.parametrize("maid", MAIDS, ids=lambda m: m.text()[:30])
def test_maid_formats_round_trip(maid):
    raw = maid.encode()
    assert len(raw) == 48
    assert C.Maid.decode(raw) == maid


@pytest.mark.parametrize("maid", [
    C.Maid("string", "x" * 40, "string", "y" * 10),       # too long together
    C.Maid("string", "", "string", "ovs"),                 # empty MD name
    C.Maid("string", "md", "vid", 70000),                  # VID is 2 octets
    C.Maid("bogus", "md", "string", "ma"),
])
def test_impossible_maids_are_refused(maid):
    with pytest.raises(ValueError):
        maid.encode()


def test_status_tlvs_and_vlan_round_trip():
    ccm = C.Ccm(mpid=9, seq=1, interval=4, maid=OVS_MAID, port_status=2,
                interface_status=1)
    frame = C.encode(ccm, bytes(6), vlan=10, pcp=5)
    back = C.decode(frame)
    assert (back.port_status, back.interface_status, back.vlan) == (2, 1, 10)
    assert C.is_cfm(frame)


def _flip(frame: bytes, offset: int, value: int) -> bytes:
    return frame[:offset] + bytes([value]) + frame[offset + 1:]


@pytest.mark.parametrize("frame,reason", [
    (OVS_CCM[:12] + b"\x08\x00" + OVS_CCM[14:], "not-cfm"),
    (OVS_CCM[:16], "short-pdu"),
    (_flip(OVS_CCM, 15, 3), "not-ccm"),                  # a Loopback Message
    (_flip(OVS_CCM, 14, 0x01), "bad-version"),
    (_flip(OVS_CCM, 17, 69), "bad-tlv-offset"),
    (OVS_CCM[:14 + 60], "short-pdu"),
    (OVS_CCM[:-1] + b"\x02\x00\x05\x01", "bad-tlv"),     # Port Status overruns
    (OVS_CCM[:-1] + b"\x02\x00\x02\x01\x02\x00", "bad-tlv"),   # status of 2 octets
])
def test_malformed_ccms_name_their_reason(frame, reason):
    with pytest.raises(MalformedFrame) as e:
        C.decode(frame)
    assert e.value.reason == reason


def test_maid_garbage_is_malformed():
    with pytest.raises(MalformedFrame):
        C.Maid.decode(bytes([4, 60]) + bytes(46))
    with pytest.raises(MalformedFrame):
        C.Maid.decode(bytes([4, 3]) + b"ovs" + bytes([2, 3]) + b"ovs" + b"\x01" + bytes(37))


def test_74_octet_ccm_of_old_open_vswitch_is_accepted():
    assert C.decode(OVS_CCM[:-1]).mpid == 1


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_tshark_decodes_our_ccms_without_complaint(tmp_path):
    frames = [C.encode(C.Ccm(mpid=i + 1, seq=i, interval=1 + i % 7,
                             maid=maid.encode(), level=i % 8, rdi=bool(i % 2)),
                       bytes.fromhex("020000000001"))
              for i, maid in enumerate(MAIDS)]
    pcap = os.path.join(tmp_path, "ccm.pcap")
    wrpcap(pcap, [Ether(f) for f in frames])
    fields = ["cfm.md.level", "cfm.opcode", "cfm.ccm.seq.num", "cfm.ccm.ma.ep.id",
              "cfm.flags.interval", "cfm.maid.md.name.format", "cfm.maid.ma.name.format",
              "_ws.expert"]
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-E", "separator=|",
                          *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("|") for line in out.strip().splitlines()]
    assert len(rows) == len(frames)
    for i, (row, maid) in enumerate(zip(rows, MAIDS)):
        assert row[:5] == [str(i % 8), "1", str(i), str(i + 1), str(1 + i % 7)]
        assert row[5] == str(C.MD_FORMATS[maid.md_format])
        assert row[6] == str(C.MA_FORMATS[maid.ma_format])
        assert row[7] == "", f"tshark expert info on frame {i}: {row[7]}"
