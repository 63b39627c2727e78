"""Fixed-layout structures described by a struct format and field names.

`Struct(cls, "!I4xQ", "port_no packets")` decodes to `cls(port_no=..,
packets=..)` and encodes back; `conv` gives per-field (from_wire, to_wire)
conversions (16-bit OF1.0 ports, NUL-padded names, MACs as ints).  Layout
tables built from these read like the spec's C structs.
"""
import struct

from .constants import port_from_of10, port_to_of10
from .wire import cstr, cstr_pack


class Struct:
    def __init__(self, cls, fmt, names, **conv):
        self.cls, self.fmt, self.names = cls, fmt, names.split()
        self.size = struct.calcsize(fmt)
        self.conv = conv
        assert len(self.names) == len(struct.unpack(fmt, bytes(self.size))), (cls, fmt)

    def unpack(self, reader):
        """-> {name: value} (for callers that add variable-length parts)."""
        values = reader.unpack(self.fmt)
        out = {}
        for name, value in zip(self.names, values):
            out[name] = self.conv[name][0](value) if name in self.conv else value
        return out

    def decode(self, reader, **extra):
        return self.cls(**self.unpack(reader), **extra)

    def encode(self, obj, **override):
        values = []
        for name in self.names:
            value = override[name] if name in override else getattr(obj, name)
            values.append(self.conv[name][1](value) if name in self.conv else value)
        return struct.pack(self.fmt, *values)


def text(size):
    return (cstr, lambda s: cstr_pack(s, size))


MAC = (lambda raw: int.from_bytes(raw, "big"), lambda v: v.to_bytes(6, "big"))
PORT10 = (port_from_of10, lambda p: port_to_of10(p, ("BAD_REQUEST", "BAD_PORT")))
