"""vs_of_front_scan (csrc/of_front.c) on malformed, truncated and random
input: it never reads or writes out of bounds (run under the same process:
a crash fails the run), and what it reports consumed ends on a message
boundary of the input, is made of whole messages only, and its replies and
records are exactly the barriers and taught flow-mods among them."""
import random
import struct

from vswitch.datapath._datapath import ffi, lib
from vswitch.ofproto.ofp import split_messages

from tests.unit.test_ofconn_front import FIRST_PORT, add, barrier, run, session, stream

OFP_HEADER_LEN = 8
OFPT_FLOW_MOD, OFPT_BARRIER_REQUEST = 14, 20
N_TEACH = 5
N_MSGS = 30                 # messages in the valid stream the fuzz starts from
N_RANDOM = 3000             # random mutations tried
MAX_FLIPS = 6               # bytes changed per mutation
SEED = 0x5CA11
LENGTH_OFFSET = 2           # ofp_header.length


def taught_front():
    """A front end the Python path taught the add() shape (table 0 on)."""
    async def body():
        ofs, conn, transport = session()
        stream(conn, N_TEACH)
        return ofs
    ofs = run(body)
    assert ofs.front.active()
    return ofs.front


def scan(front, data, out_cap=65536, rec_cap=1024):
    """-> (consumed, replies, n_records) of one vs_of_front_scan call on a
    buffer of exactly len(data) bytes (cffi copies it: a read past the end
    lands outside the allocation)."""
    buf = ffi.new("uint8_t[]", data) if data else ffi.NULL
    out = ffi.new("uint8_t[]", max(out_cap, 1))
    recs = ffi.new("struct vs_of_front_rec[]", max(rec_cap, 1))
    res = ffi.new("struct vs_of_front_result *")
    lib.vs_of_front_scan(front._c, buf, len(data), out, out_cap, recs, rec_cap, res)
    return res.consumed, bytes(ffi.buffer(out, res.out_len)), res.n_records


def boundaries(data):
    """Offsets at which whole messages of `data` end, framing by the
    headers' lengths while they make sense."""
    ends, pos = [0], 0
    while len(data) - pos >= OFP_HEADER_LEN:
        (length,) = struct.unpack_from("!H", data, pos + LENGTH_OFFSET)
        if length < OFP_HEADER_LEN or len(data) - pos < length:
            break
        pos += length
        ends.append(pos)
    return ends


def check(front, data, **caps):
    consumed, out, n_records = scan(front, data, **caps)
    assert consumed in boundaries(data)
    taken = split_messages(bytes(data[:consumed]))[0]
    barriers = [raw for raw in taken if raw[1] == OFPT_BARRIER_REQUEST]
    assert len(barriers) + n_records == len(taken)
    assert n_records == sum(1 for raw in taken if raw[1] == OFPT_FLOW_MOD)
    assert len(out) == OFP_HEADER_LEN * len(barriers)
    return consumed, n_records


def valid_stream():
    msgs = []
    for i in range(N_MSGS // 2):
        msgs += [add(FIRST_PORT + 500 + i, xid=2 * i + 1), barrier(2 * i + 2)]
    return b"".join(msgs)


def test_every_truncation_takes_the_whole_messages_before_it():
    front = taught_front()
    data = valid_stream()
    ends = boundaries(data)
    for cut in range(len(data) + 1):
        consumed, _ = check(front, data[:cut])
        assert consumed == max(e for e in ends if e <= cut)


def test_small_reply_and_record_room_stops_on_a_boundary():
    front = taught_front()
    data = valid_stream()
    for out_cap in (0, 1, OFP_HEADER_LEN - 1, OFP_HEADER_LEN, 3 * OFP_HEADER_LEN + 1):
        for rec_cap in (0, 1, 2, 5):
            _, n_records = check(front, data, out_cap=out_cap, rec_cap=rec_cap)
            assert n_records <= rec_cap


def test_random_mutations_never_take_a_partial_or_foreign_message():
    front = taught_front()
    data = valid_stream()
    rng = random.Random(SEED)
    for _ in range(N_RANDOM):
        b = bytearray(data)
        for _ in range(rng.randint(1, MAX_FLIPS)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        cut = rng.randrange(len(b) + 1)
        check(front, bytes(b[:cut]))


def test_random_bytes():
    front = taught_front()
    rng = random.Random(SEED + 1)
    for _ in range(N_RANDOM):
        n = rng.randrange(4 * OFP_HEADER_LEN * 8)
        check(front, bytes(rng.randrange(256) for _ in range(n)))
