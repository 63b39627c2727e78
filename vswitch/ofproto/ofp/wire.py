"""Bounds-checked reading of OpenFlow structures.

A Reader walks a buffer; any read past its end raises the OFPError the caller
named for this structure (BAD_REQUEST/BAD_LEN for a message body, BAD_MATCH/
BAD_LEN inside a match, BAD_ACTION/BAD_LEN inside an action list...), so no
struct.error or IndexError ever leaves the codec.
"""
import struct

from .errors import OFPError

BAD_LEN = ("BAD_REQUEST", "BAD_LEN")
_STRUCTS = {}   # format -> struct.Struct: parsing each format once per process, not per read


def compiled(fmt):
    s = _STRUCTS.get(fmt)
    if s is None:
        s = _STRUCTS[fmt] = struct.Struct(fmt)
    return s


class Reader:
    def __init__(self, buf, error=BAD_LEN, start=0, end=None):
        self.buf = buf
        self.pos = start
        self.end = len(buf) if end is None else end
        self.error = error

    def remaining(self):
        return self.end - self.pos

    def fail(self, detail="truncated"):
        raise OFPError(*self.error, detail=detail)

    def unpack(self, fmt):
        s = _STRUCTS.get(fmt) or compiled(fmt)
        size = s.size
        if size > self.end - self.pos:
            self.fail(f"needs {size} bytes, {self.remaining()} left")
        values = s.unpack_from(self.buf, self.pos)
        self.pos += size
        return values

    def take(self, n):
        if n < 0 or n > self.remaining():
            self.fail(f"needs {n} bytes, {self.remaining()} left")
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def peek(self, fmt):
        s = _STRUCTS.get(fmt) or compiled(fmt)
        if s.size > self.end - self.pos:
            self.fail()
        return s.unpack_from(self.buf, self.pos)

    def sub(self, n, error=None):
        """A Reader over the next n bytes (consumed from this one)."""
        if n < 0 or n > self.remaining():
            self.fail(f"element of {n} bytes, {self.remaining()} left")
        r = Reader(self.buf, error or self.error, self.pos, self.pos + n)
        self.pos += n
        return r

    def rest(self):
        return self.take(self.remaining())

    def tlvs(self, header="!HH", min_len=4, align=1, error=None):
        """Iterate (type, Reader over the whole element) for type/length lists."""
        while self.remaining() > 0:
            values = self.peek(header)
            t, length = values[0], values[-1]   # a length-only header gives (length, length)
            if length < min_len or length % align:
                raise OFPError(*(error or self.error), detail=f"element length {length}")
            yield t, self.sub(length, error)


def pad8(n):
    return (n + 7) // 8 * 8 - n


def cstr(raw):
    """Fixed-size NUL-padded field -> str."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def cstr_pack(text, size):
    return text.encode()[:size - 1].ljust(size, b"\0")
