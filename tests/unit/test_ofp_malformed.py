"""Malformed and unsupported input: only OFPError comes out, with the error
type/code the spec names, numbered as os-ken's copy of each spec numbers them."""
import glob
import os
import random
import struct

import os_ken
import pytest
from os_ken.ofproto import ofproto_v1_0 as of10
from os_ken.ofproto import ofproto_v1_3 as of13

from vswitch.ofproto import ofp

FLOW_MOD_FIXED = struct.Struct("!QQBBHHHIIIH2x")


def frame(version, mtype, body, xid=1):
    return struct.pack("!BBHI", version, mtype, 8 + len(body), xid) + body


def oxm(number, value, mask=None, length=None):
    payload = value + (mask or b"")
    n = len(payload) if length is None else length
    return struct.pack("!HBB", 0x8000, number << 1 | (mask is not None), n) + payload


def flow_mod(oxms=b"", instructions=b"", command=0, match_type=1):
    length = 4 + len(oxms)
    match = struct.pack("!HH", match_type, length) + oxms + bytes((8 - length % 8) % 8)
    fixed = FLOW_MOD_FIXED.pack(0, 0, 0, command, 0, 0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return frame(4, 14, fixed + match + instructions)


def apply_actions(actions):
    return struct.pack("!HH4x", 4, 8 + len(actions)) + actions


ETH_IP = oxm(5, b"\x08\x00")
IP_TCP = oxm(10, b"\x06")


def error_of(data):
    with pytest.raises(ofp.OFPError) as info:
        ofp.decode(data)
    return info.value.type, info.value.code


@pytest.mark.parametrize("data, want", [
    (b"\x04\x00\x00", ("BAD_REQUEST", "BAD_LEN")),                              # truncated header
    (frame(4, 2, b"")[:-1] + b"", ("BAD_REQUEST", "BAD_LEN")),
    (struct.pack("!BBHI", 4, 2, 100, 1), ("BAD_REQUEST", "BAD_LEN")),           # length says more
    (struct.pack("!BBHI", 4, 5, 8, 1) + b"xx", ("BAD_REQUEST", "BAD_LEN")),     # length says less
    (frame(4, 5, b"junk"), ("BAD_REQUEST", "BAD_LEN")),                         # features-request body
    (frame(2, 5, b""), ("BAD_REQUEST", "BAD_VERSION")),
    (frame(4, 99, b""), ("BAD_REQUEST", "BAD_TYPE")),
    (frame(1, 24, b""), ("BAD_REQUEST", "BAD_TYPE")),                           # role request is not OF1.0
    (frame(4, 18, struct.pack("!HH4x", 77, 0)), ("BAD_REQUEST", "BAD_MULTIPART")),
    (frame(1, 16, struct.pack("!HH", 9, 0)), ("BAD_REQUEST", "BAD_MULTIPART")),
    (frame(4, 24, struct.pack("!I4xQ", 9, 0)), ("ROLE_REQUEST_FAILED", "BAD_ROLE")),
    (flow_mod(command=9), ("FLOW_MOD_FAILED", "BAD_COMMAND")),
    (flow_mod(match_type=0), ("BAD_MATCH", "BAD_TYPE")),
    (flow_mod(oxm(0, b"\x00\x00\x01", length=3)), ("BAD_MATCH", "BAD_LEN")),    # in_port is 4 bytes
    (flow_mod(oxm(0, b"\x00\x00\x00\x01", length=40)), ("BAD_MATCH", "BAD_LEN")),  # runs past the match
    (flow_mod(oxm(0, b"\x00\x00\x00\x01", b"\xff\xff\xff\x00")), ("BAD_MATCH", "BAD_MASK")),
    (flow_mod(oxm(3, b"\x00\x00\x00\x00\x00\x0f", b"\xff" * 5 + b"\x00")), ("BAD_MATCH", "BAD_WILDCARDS")),
    (flow_mod(oxm(60, b"\x00\x01")), ("BAD_MATCH", "BAD_FIELD")),
    (flow_mod(ETH_IP + ETH_IP), ("BAD_MATCH", "DUP_FIELD")),
    (flow_mod(ETH_IP + oxm(14, b"\x00\x50")), ("BAD_MATCH", "BAD_PREREQ")),      # tcp_dst without ip_proto
    (flow_mod(oxm(5, b"\x08\x06") + oxm(11, b"\x0a\x00\x00\x01")), ("BAD_MATCH", "BAD_PREREQ")),  # ipv4 on ARP
    (flow_mod(oxm(7, b"\x03")), ("BAD_MATCH", "BAD_PREREQ")),                  # vlan_pcp without a VLAN
    (flow_mod(oxm(6, b"\x00\x00") + oxm(7, b"\x03")), ("BAD_MATCH", "BAD_PREREQ")),  # ... untagged
    (flow_mod(oxm(5, b"\x86\xdd") + IP_TCP + oxm(19, b"\x08")), ("BAD_MATCH", "BAD_PREREQ")),  # icmpv4 on v6
    (flow_mod(oxm(6, b"\x20\x00")), ("BAD_MATCH", "BAD_VALUE")),               # vlan_vid is 13 bits
    (flow_mod(instructions=apply_actions(struct.pack("!HH4x", 99, 8))), ("BAD_ACTION", "BAD_TYPE")),
    (flow_mod(instructions=apply_actions(struct.pack("!HHIH6x", 0, 10, 1, 0))), ("BAD_ACTION", "BAD_LEN")),
    (flow_mod(instructions=apply_actions(struct.pack("!HHIH6x", 0, 8, 1, 0) + bytes(8))), ("BAD_ACTION", "BAD_LEN")),
    (flow_mod(instructions=apply_actions(struct.pack("!HHH2x", 17, 8, 0x0800))), ("BAD_ACTION", "BAD_ARGUMENT")),
    (flow_mod(instructions=apply_actions(struct.pack("!HH", 25, 16) + oxm(60, b"\x00\x01") + bytes(6))),
     ("BAD_ACTION", "BAD_SET_TYPE")),
    (flow_mod(instructions=struct.pack("!HH4x", 42, 8)), ("BAD_INSTRUCTION", "UNKNOWN_INST")),
    (flow_mod(instructions=struct.pack("!HHB3x", 1, 16, 1)), ("BAD_INSTRUCTION", "BAD_LEN")),
    (flow_mod(instructions=struct.pack("!HHB3x", 1, 8, 255)), ("BAD_INSTRUCTION", "BAD_TABLE_ID")),
    (frame(4, 15, struct.pack("!HBxI", 7, 0, 1)), ("GROUP_MOD_FAILED", "BAD_COMMAND")),
    (frame(4, 15, struct.pack("!HBxI", 0, 9, 1)), ("GROUP_MOD_FAILED", "BAD_TYPE")),
    (frame(4, 15, struct.pack("!HBxI", 0, 0, 1) + struct.pack("!HHII4x", 12, 0, 0, 0)),
     ("GROUP_MOD_FAILED", "BAD_BUCKET")),
    (frame(4, 29, struct.pack("!HHI", 0, 1, 1) + struct.pack("!HHII4x", 7, 16, 1, 1)),
     ("METER_MOD_FAILED", "BAD_BAND")),
    (frame(4, 29, struct.pack("!HHI", 5, 1, 1)), ("METER_MOD_FAILED", "BAD_COMMAND")),
])
def test_malformed(data, want):
    assert error_of(data) == want


@pytest.mark.parametrize("err, version, osken", [
    (("BAD_REQUEST", "BAD_LEN"), 4, (of13.OFPET_BAD_REQUEST, of13.OFPBRC_BAD_LEN)),
    (("BAD_REQUEST", "BAD_LEN"), 1, (of10.OFPET_BAD_REQUEST, of10.OFPBRC_BAD_LEN)),
    (("BAD_REQUEST", "BAD_MULTIPART"), 4, (of13.OFPET_BAD_REQUEST, of13.OFPBRC_BAD_MULTIPART)),
    (("BAD_REQUEST", "BAD_MULTIPART"), 1, (of10.OFPET_BAD_REQUEST, of10.OFPBRC_BAD_STAT)),
    (("BAD_ACTION", "BAD_EXPERIMENTER"), 1, (of10.OFPET_BAD_ACTION, of10.OFPBAC_BAD_VENDOR)),
    (("BAD_MATCH", "BAD_PREREQ"), 4, (of13.OFPET_BAD_MATCH, of13.OFPBMC_BAD_PREREQ)),
    (("BAD_MATCH", "DUP_FIELD"), 4, (of13.OFPET_BAD_MATCH, of13.OFPBMC_DUP_FIELD)),
    (("BAD_INSTRUCTION", "UNKNOWN_INST"), 4, (of13.OFPET_BAD_INSTRUCTION, of13.OFPBIC_UNKNOWN_INST)),
    (("FLOW_MOD_FAILED", "OVERLAP"), 4, (of13.OFPET_FLOW_MOD_FAILED, of13.OFPFMFC_OVERLAP)),
    (("FLOW_MOD_FAILED", "OVERLAP"), 1, (of10.OFPET_FLOW_MOD_FAILED, of10.OFPFMFC_OVERLAP)),
    (("FLOW_MOD_FAILED", "TABLE_FULL"), 1, (of10.OFPET_FLOW_MOD_FAILED, of10.OFPFMFC_ALL_TABLES_FULL)),
    (("GROUP_MOD_FAILED", "UNKNOWN_GROUP"), 4, (of13.OFPET_GROUP_MOD_FAILED, of13.OFPGMFC_UNKNOWN_GROUP)),
    (("METER_MOD_FAILED", "UNKNOWN_METER"), 4, (of13.OFPET_METER_MOD_FAILED, of13.OFPMMFC_UNKNOWN_METER)),
    (("PORT_MOD_FAILED", "BAD_PORT"), 1, (of10.OFPET_PORT_MOD_FAILED, of10.OFPPMFC_BAD_PORT)),
    (("ROLE_REQUEST_FAILED", "STALE"), 4, (of13.OFPET_ROLE_REQUEST_FAILED, of13.OFPRRFC_STALE)),
    (("TABLE_FEATURES_FAILED", "EPERM"), 4, (of13.OFPET_TABLE_FEATURES_FAILED, of13.OFPTFFC_EPERM)),
    (("HELLO_FAILED", "INCOMPATIBLE"), 1, (of10.OFPET_HELLO_FAILED, of10.OFPHFC_INCOMPATIBLE)),
])
def test_error_numbers_per_version(err, version, osken):
    assert ofp.OFPError(*err).numbers(version) == osken
    assert ofp.error_name(version, *osken) == err


def test_of10_has_no_bad_match_type_but_still_answers():
    """OF1.0 lacks OFPET_BAD_MATCH; the reply must still be a valid OF1.0 error."""
    t, c = ofp.OFPError("BAD_MATCH", "BAD_PREREQ").numbers(1)
    assert (t, c) == (of10.OFPET_BAD_REQUEST, of10.OFPBRC_EPERM)


def test_error_reply_bytes_carry_xid_and_request():
    bad = flow_mod(ETH_IP + ETH_IP)
    with pytest.raises(ofp.OFPError) as info:
        ofp.decode(bad)
    reply = ofp.error_reply(info.value)
    version, mtype, length, xid, etype, code = struct.unpack_from("!BBHIHH", reply)
    assert (version, mtype, length, xid) == (4, of13.OFPT_ERROR, 12 + 64, 1)
    assert (etype, code) == (of13.OFPET_BAD_MATCH, of13.OFPBMC_DUP_FIELD)
    assert reply[12:] == bad[:64]


def test_split_messages_keeps_partial_tail():
    a, b = frame(4, 2, b"abc", xid=1), frame(4, 20, b"", xid=2)
    msgs, rest = ofp.split_messages(a + b + b[:5])
    assert msgs == [a, b] and rest == b[:5]
    with pytest.raises(ofp.OFPError):
        ofp.split_messages(struct.pack("!BBHI", 4, 0, 4, 0))


def test_mutated_fixtures_only_raise_ofperror():
    """Random byte flips and truncations of every golden fixture: decode either
    succeeds or raises OFPError; anything else would drop the connection."""
    data_dir = os.path.join(os.path.dirname(os_ken.__file__), "tests", "packet_data")
    rng = random.Random(4)
    fixtures = [open(p, "rb").read() for d in ("of10", "of13")
                for p in sorted(glob.glob(os.path.join(data_dir, d, "*.packet")))]
    for raw in fixtures:
        for _ in range(40):
            data = bytearray(raw)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(8, len(data)) if len(data) > 8 else 0] = rng.randrange(256)
            if rng.random() < 0.3 and len(data) > 9:
                data = data[:rng.randrange(8, len(data))]
                data[2:4] = len(data).to_bytes(2, "big")
            try:
                ofp.decode(bytes(data))
            except ofp.OFPError:
                pass
